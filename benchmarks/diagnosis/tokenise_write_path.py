"""The token store's write path on the nya text: before (transformers call, per-token flatten) vs after (``_write``).

A/B in one process, twice each: ``OMP_NUM_THREADS=1 python benchmarks/diagnosis/tokenise_write_path.py``
(figures in benchmarks/results/big_corpus.md). Needs ``lowres data fetch nya`` and the converted SmolLM2."""
import json, sys, time, tempfile
from pathlib import Path
import numpy as np
from transformers import AutoTokenizer
import lowres_adapters.training.batching as batching
import lowres_adapters.training.token_store as store
tok = AutoTokenizer.from_pretrained(str(Path.home()/".cache/lowres-adapters/models/HuggingFaceTB--SmolLM2-135M-Instruct"))
texts = [json.loads(l)["nya"] for l in open(Path.home()/".cache/lowres-adapters/data/nya/verses.jsonl")]
mb = sum(len(t.encode()) + 1 for t in texts) / 2**20

def old_write(staging, texts, tokenizer, fn, max_length, progress):
    it = iter(texts)
    with open(staging / "ids.bin", "wb") as out:
        while batch := [t for _, t in zip(range(1024), it)]:
            kept = [t for t in batch if t.strip()]
            enc = tokenizer(kept, add_special_tokens=False)["input_ids"]
            feats = [{"input_ids": ([tokenizer.bos_token_id] + list(ids) + [tokenizer.eos_token_id])[:max_length]} for ids in enc]
            lengths = np.fromiter((len(f["input_ids"]) for f in feats), dtype=np.int64, count=len(feats))
            flat = np.fromiter((t for f in feats for t in f["input_ids"]), dtype=np.uint32, count=int(lengths.sum()))
            out.write(flat.tobytes())

for name, write in (("before", old_write), ("after", store._write)) * 2:
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        write(Path(d), iter(texts), tok, batching.tokenize_for_clm, 128, None)
        print(name, f"{mb / (time.perf_counter() - t):.2f} MB/s", flush=True)
