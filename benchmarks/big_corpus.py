"""Adapting on a text file bigger than memory: tokenise time, token-store size, peak RSS, time to first step.

The corpus is the real Chichewa Bible text of the ``nya`` pack (``lowres data fetch nya``), repeated
into ``/tmp`` until it reaches ``--megabytes`` (never commit it). Each measurement runs in a fresh
process (so peak RSS is its own): SmolLM2-135M is loaded in float32 first (its RSS is the model's
footprint), then the corpus goes through :func:`~lowres_adapters.training.token_store.stream_token_cache`,
the packed, vocabulary-trimmed job is built on the memory-mapped features and the loop trains
``--steps`` steps (q_proj weights only: the corpus path is what is measured, not the adapter).

``--copies N`` measures a file of N copies of the ``--megabytes`` file. Tokenising works line by
line, so the token store of N copies is exactly N copies of the small file's store: the script
writes it under the big file's own key (content hash of the big file) instead of tokenising the
whole file again, and reports the measured tokenise rate of the small file for the full pass.

    OMP_NUM_THREADS=1 python benchmarks/big_corpus.py --megabytes 100 --copies 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

MODEL = Path.home() / ".cache/lowres-adapters/models/HuggingFaceTB--SmolLM2-135M-Instruct"
VERSES = Path.home() / ".cache/lowres-adapters/data/nya/verses.jsonl"
RESULTS = Path(__file__).parent / "results" / "big_corpus.json"


def rss_mb() -> float:
    """Current resident set size in MB (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_corpus(path: Path, megabytes: int) -> Path:
    """Write the nya verses, repeated, to ``path`` until it holds ``megabytes`` MB (whole lines)."""
    if path.exists():
        return path
    texts = [json.loads(line)["nya"] for line in VERSES.open(encoding="utf-8")]
    block = ("\n".join(texts) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for _ in range(-(-megabytes * 2**20 // len(block))):
            out.write(block)
    return path


def load_tokenizer():
    """SmolLM2's tokenizer, padding with EOS (the token store's key includes the special tokens)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def repeat_file(small: Path, copies: int, big: Path) -> Path:
    if not big.exists():
        with big.open("wb") as out:
            for _ in range(copies):
                with small.open("rb") as source:
                    shutil.copyfileobj(source, out, 1 << 24)
    return big


def seed_store(small: Path, big: Path, copies: int, root: Path) -> None:
    """Write the big file's token store as ``copies`` copies of the small file's (see the module docstring)."""
    from lowres_adapters.training.batching import tokenize_for_clm
    from lowres_adapters.training.token_store import cache_entry

    tokenizer = load_tokenizer()
    small_entry, _, _ = cache_entry(small, tokenizer, tokenize_for_clm, 128, root=root)
    big_entry, content, variant = cache_entry(big, tokenizer, tokenize_for_clm, 128, root=root)
    if (big_entry / "meta.json").exists():
        return
    meta = json.loads((small_entry / "meta.json").read_text())
    big_entry.mkdir(parents=True)
    for name in ("ids.bin", "lengths.bin"):
        with (big_entry / name).open("wb") as out:
            for _ in range(copies):
                with (small_entry / name).open("rb") as source:
                    shutil.copyfileobj(source, out, 1 << 24)
    meta.update(content=content, variant=variant, examples=meta["examples"] * copies, tokens=meta["tokens"] * copies)
    (big_entry / "meta.json").write_text(json.dumps(meta, indent=1))


def measure(corpus: Path, root: Path, steps: int) -> dict:
    """In this process: load the model, open the corpus through the token store, train ``steps`` steps."""
    start = time.perf_counter()
    import torch
    from transformers import AutoModelForCausalLM

    from lowres_adapters.training.batching import CausalCollator, tokenize_for_clm
    from lowres_adapters.training.loop import TrainingJob, select_parameters, train
    from lowres_adapters.training.loop_settings import SpeedSettings
    from lowres_adapters.training.objectives import causal_lm_loss
    from lowres_adapters.training.settings import LoopSettings
    from lowres_adapters.training.speed import speed_up_job
    from lowres_adapters.training.token_store import stream_token_cache

    torch.manual_seed(0)
    tokenizer = load_tokenizer()
    model = AutoModelForCausalLM.from_pretrained(MODEL, torch_dtype=torch.float32)
    model_rss = rss_mb()
    model_loaded = time.perf_counter()
    features, from_cache = stream_token_cache(corpus, tokenizer, tokenize_for_clm, 128, root=root)
    tokenised = time.perf_counter()
    job = TrainingJob(model=model, parameters=select_parameters(model, ("*q_proj*",)), train_features=features,
                      collate=CausalCollator(tokenizer.pad_token_id), loss_fn=causal_lm_loss)
    job = speed_up_job(job, SpeedSettings(packing=True, masked_only_logits=True, vocab_trim=True),
                       objective="clm", tokenizer=tokenizer, row_length=128)
    job_built = time.perf_counter()
    first_step: list[float] = []
    train(job, LoopSettings(max_steps=steps, lr=1e-3, batch_size=8, progress=False),
          callbacks=[lambda report: first_step.append(time.perf_counter()) if not first_step else None])
    entry_bytes = sum(f.stat().st_size for f in Path(features.ids.filename).parent.iterdir())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"corpus_bytes": corpus.stat().st_size, "from_cache": from_cache, "examples": len(features),
            "tokens": int(features.offsets[-1]), "packed_rows": len(job.train_features),
            "token_store_bytes": entry_bytes, "model_rss_mb": round(model_rss), "peak_rss_mb": round(peak),
            
            "seconds": {"model_load": round(model_loaded - start, 1),
                        "open_corpus": round(tokenised - model_loaded, 1),
                        "pack_and_trim": round(job_built - tokenised, 1),
                        "first_step": round(first_step[0] - job_built, 1),
                        "corpus_to_first_step": round(first_step[0] - model_loaded, 1)}}


def run_child(corpus: Path, root: Path, steps: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, __file__, "--child", str(corpus), "--root", str(root),
                           "--steps", str(steps)], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/big_corpus"))
    parser.add_argument("--root", type=Path, default=None, help="token store folder (default WORKDIR/tokens)")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    root = args.root or args.workdir / "tokens"
    if args.child is not None:
        print(json.dumps(measure(args.child, root, args.steps)))
        return
    baseline = make_corpus(args.workdir / "nya_verses.txt", 1)  # the pack's text once: the model's training footprint
    small = make_corpus(args.workdir / f"nya_{args.megabytes}mb.txt", args.megabytes)
    results = {"command": " ".join(["python", "benchmarks/big_corpus.py", *sys.argv[1:]]),
               "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, OMP_NUM_THREADS=1",
               "baseline": run_child(baseline, root, args.steps),
               "small_cold": run_child(small, root, args.steps), "small_warm": run_child(small, root, args.steps)}
    print(json.dumps(results["small_cold"]), file=sys.stderr)
    if args.copies > 1:
        big = repeat_file(small, args.copies, args.workdir / f"nya_{args.megabytes * args.copies}mb.txt")
        seed_store(small, big, args.copies, root)
        results["big_warm"] = run_child(big, root, args.steps)
    for name in ("small_cold", "small_warm", "big_warm"):
        if name in results:
            results[name]["peak_above_baseline_mb"] = results[name]["peak_rss_mb"] - results["baseline"]["peak_rss_mb"]
    cold = results["small_cold"]
    rate = cold["corpus_bytes"] / cold["seconds"]["open_corpus"]
    results["tokenise_mb_per_s"] = round(rate / 2**20, 2)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
