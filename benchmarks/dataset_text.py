"""Tokenising a ``datasets`` dataset (``--text hf:...``) into the token store, against the same texts as a file.

The corpus is the ``nya`` pack's Chichewa verses (``lowres data fetch nya``), ``--copies`` times over,
written once as a ``.txt`` file, once as a ``save_to_disk`` folder and once as a ``.jsonl`` data file.
Each is streamed into a fresh token store with the SmolLM2-135M tokenizer (one thread) by the path the
CLI takes (:func:`stream_token_cache` on the file; :func:`open_dataset_text` rows for the datasets), and
the script checks that the three stores hold the same ids. Results: ``benchmarks/results/dataset_text.json``.

    OMP_NUM_THREADS=1 python benchmarks/dataset_text.py --copies 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

CACHE = Path.home() / ".cache/lowres-adapters"
MODEL = CACHE / "models/HuggingFaceTB--SmolLM2-135M-Instruct"
VERSES = CACHE / "data/nya/verses.jsonl"
RESULTS = Path(__file__).parent / "results" / "dataset_text.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=3, help="Times the verses are repeated.")
    args = parser.parse_args()
    import datasets
    from transformers import AutoTokenizer

    from lowres_adapters.data.dataset_text import open_dataset_text
    from lowres_adapters.training.batching import tokenize_for_clm
    from lowres_adapters.training.token_store import stream_token_cache

    texts = [json.loads(line)["nya"] for line in VERSES.open(encoding="utf-8")] * args.copies
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    work = Path(tempfile.mkdtemp(prefix="dataset-text-"))
    try:
        text_file = work / "verses.txt"
        text_file.write_text("\n".join(texts) + "\n", encoding="utf-8")
        datasets.disable_progress_bars()
        datasets.Dataset.from_dict({"text": texts}).save_to_disk(str(work / "saved"))
        (work / "verses.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
        sources = {"txt file (--text FILE)": str(text_file),
                   "save_to_disk folder (--text hf:FOLDER)": f"hf:{work / 'saved'}",
                   "jsonl data file, streaming (--text hf:FILE.jsonl)": f"hf:{work / 'verses.jsonl'}"}
        runs, reference = [], None
        for name, source in sources.items():
            started = time.perf_counter()
            if source.startswith("hf:"):
                corpus = open_dataset_text(source, "nya")
                features, _ = stream_token_cache(corpus.texts(), tokenizer, tokenize_for_clm, 128,
                                                 source_key=corpus.content_key, root=work / "tokens")
            else:
                features, _ = stream_token_cache(source, tokenizer, tokenize_for_clm, 128, root=work / "tokens")
            seconds = time.perf_counter() - started
            ids = np.asarray(features.ids)
            reference = ids if reference is None else reference
            runs.append({"source": name, "seconds": round(seconds, 2), "examples": len(features),
                         "tokens": int(features.token_count),
                         "text_mb_per_s": round(text_file.stat().st_size / 2**20 / seconds, 2),
                         "same_ids_as_txt": bool(np.array_equal(ids, reference))})
            print(runs[-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results = {"command": f"OMP_NUM_THREADS=1 python benchmarks/dataset_text.py --copies {args.copies}",
               "text_mb": round(len("\n".join(texts).encode()) / 2**20, 2), "datasets": datasets.__version__,
               "threads": os.environ.get("OMP_NUM_THREADS"), "load_average": os.getloadavg(), "runs": runs}
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
