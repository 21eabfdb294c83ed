"""Adapting on a text file bigger than memory, through the real CLI: time to first step, peak RSS, tokens/s.

Each measurement is one ``lowres adapt nya --text FILE --max-steps N`` process (one thread), so its
peak RSS is its own (``wait4``). The corpus is the real Chichewa Bible text of the ``nya`` pack
(``lowres data fetch nya``), repeated into ``--workdir`` until it reaches ``--megabytes`` (never
commit it). The runs read and write their token store under ``WORKDIR/cache`` (the user's models
and data are linked in), so the user's cache is left alone and a first run really tokenises.

What is measured, per run: seconds from the process start to each stage line it prints (see
``STAGES``) and to the first training step written to ``train_log.jsonl``; peak RSS; the loop's
tokens/s; the peak RSS up to the first step (``VmHWM`` then: the corpus, the job and one step,
without the held-out scoring at the end, whose full-vocabulary logits are the run's largest
allocation). The model's own footprint is the RSS of a process that only loads it; the "baseline" is
the same CLI run on the pack's own 3.9 MB text, so ``*_above_baseline`` is what the corpus costs (a
warm-up run before it fills the base model's cached scores and the baseline's token store).

``--copies N`` also measures a file of N copies of the ``--megabytes`` file. Tokenising works line
by line, so the token store of N copies is exactly N copies of the small file's store: the script
writes it under the big file's own key (the big file's content hash) instead of tokenising the
whole file again (at the measured rate that pass would take ``size / rate``; reported as an
estimate), then measures the CLI run on it twice: ``big_warm`` is the first run on the store (it
checks the file and derives the offsets and the packing plan, as the first run after a tokenising
pass does), ``big_rerun`` the next one (the check remembered, offsets and plan memory-mapped).

    OMP_NUM_THREADS=1 python benchmarks/big_corpus.py --megabytes 50 --copies 20 --steps 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

CACHE = Path.home() / ".cache/lowres-adapters"
MODEL = CACHE / "models/HuggingFaceTB--SmolLM2-135M-Instruct"
VERSES = CACHE / "data/nya/verses.jsonl"
RESULTS = Path(__file__).parent / "results" / "big_corpus.json"
LOWRES = Path(sys.executable).parent / "lowres"
STAGES = {"data_checked": "loading ", "corpus_open": "training text ", "job_built": "language: "}
"""The lines ``lowres adapt`` prints after each stage: the ``--text`` file checked (before the model
loads), the token store opened (after the model loaded; the tokenising pass on a first run), the
packed, vocabulary-trimmed job built."""


def make_corpus(path: Path, megabytes: float) -> Path:
    """Write the nya verses, repeated, to ``path`` until it holds ``megabytes`` MB (whole lines)."""
    if path.exists():
        return path
    texts = [json.loads(line)["nya"] for line in VERSES.open(encoding="utf-8")]
    block = ("\n".join(texts) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for _ in range(max(1, round(megabytes * 2**20 / len(block)))):
            out.write(block)
    return path


def repeat_file(small: Path, copies: int, big: Path) -> Path:
    if not big.exists():
        with big.open("wb") as out:
            for _ in range(copies):
                with small.open("rb") as source:
                    shutil.copyfileobj(source, out, 1 << 24)
    return big


def benchmark_cache(workdir: Path) -> Path:
    """``WORKDIR/cache``: the runs' own token store and base scores, the user's models and data linked in."""
    cache = workdir / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    for name in ("models", "data"):
        if not (cache / name).exists():
            (cache / name).symlink_to(CACHE / name)
    return cache


def seed_store(small: Path, big: Path, copies: int, cache: Path) -> None:
    """Write the big file's token store as ``copies`` copies of the small file's (see the module docstring)."""
    from lowres_adapters.models import load_base_model
    from lowres_adapters.training.batching import tokenize_for_clm
    from lowres_adapters.training.token_store import cache_entry

    _, tokenizer = load_base_model(str(MODEL))  # the tokenizer as the CLI sets it up (pad token: the key)
    root = cache / "tokens"
    small_entry, _, _ = cache_entry(small, tokenizer, tokenize_for_clm, 128, root=root)
    big_entry, content, variant = cache_entry(big, tokenizer, tokenize_for_clm, 128, root=root)
    if not (small_entry / "meta.json").exists():
        raise SystemExit(f"no token store for {small} (keyed {small_entry.name}): did the CLI's pad token change?")
    if (big_entry / "meta.json").exists():
        return
    meta = json.loads((small_entry / "meta.json").read_text())
    staging = big_entry.with_name(big_entry.name + ".seeding")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in ("ids.bin", "lengths.bin"):
        with (staging / name).open("wb") as out:
            for _ in range(copies):
                with (small_entry / name).open("rb") as source:
                    shutil.copyfileobj(source, out, 1 << 24)
    shutil.copy(small_entry / "vocabulary.npy", staging / "vocabulary.npy")
    meta.update(content=content, variant=variant, examples=meta["examples"] * copies, tokens=meta["tokens"] * copies)
    (staging / "meta.json").write_text(json.dumps(meta, indent=1))
    os.replace(staging, big_entry)


def store_sizes(cache: Path) -> dict[str, int]:
    """Bytes on disk of each token-store entry, by its examples count (one entry per corpus here)."""
    sizes = {}
    for meta in sorted((cache / "tokens").glob("*/meta.json")):
        examples = json.loads(meta.read_text())["examples"]
        sizes[f"{examples} examples"] = sum(path.stat().st_size for path in meta.parent.iterdir())
    return sizes


def child_env(cache: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
            "LOWRES_CACHE": str(cache)}


def model_footprint(cache: Path) -> float:
    """RSS (MB) of a process that has loaded the model as ``lowres adapt`` loads it, and nothing else."""
    code = ("import os; from pathlib import Path; from lowres_adapters.models import load_base_model; "
            f"load_base_model({str(MODEL)!r}); "
            "print(int(Path('/proc/self/statm').read_text().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20)")
    done = subprocess.run([sys.executable, "-c", code], env=child_env(cache), capture_output=True, text=True,
                          check=True)
    return round(float(done.stdout.strip().splitlines()[-1]))


def peak_rss_so_far(pid: int) -> float:
    """Peak RSS (MB) of a running process so far (``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_cli(corpus: Path, cache: Path, workdir: Path, steps: int, name: str) -> dict:
    """Run ``lowres adapt nya --text CORPUS`` once and return what it took."""
    run_dir = workdir / "runs" / name
    args = [str(LOWRES), "adapt", "nya", "--text", str(corpus), "--max-steps", str(steps), "--save-every", "0",
            "--eval-examples", "20", "--quiet", "--overwrite", "--output", str(run_dir)]
    shutil.rmtree(run_dir, ignore_errors=True)
    start = time.perf_counter()
    child = subprocess.Popen(args, env=child_env(cache), stderr=subprocess.PIPE, text=True)
    seen: dict[str, float] = {}
    lines: list[str] = []

    def read_stderr() -> None:
        for line in child.stderr:
            lines.append(line.rstrip())
            for stage, prefix in STAGES.items():
                if line.startswith(prefix) and stage not in seen:
                    seen[stage] = time.perf_counter() - start

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    log = run_dir / "train_log.jsonl"
    peak_to_first_step = 0.0
    while child.poll() is None and "first_step" not in seen:  # the first step's record is flushed when done
        if log.exists() and any(json.loads(line).get("event") == "train" for line in log.read_text().splitlines()):
            seen["first_step"] = time.perf_counter() - start
            peak_to_first_step = peak_rss_so_far(child.pid)
        time.sleep(0.1)
    _, status, usage = os.wait4(child.pid, 0)
    reader.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n" + "\n".join(lines[-20:]))
    records = [json.loads(line) for line in log.read_text().splitlines()]
    train = [record for record in records if record.get("event") == "train"]
    start_record = next(record for record in records if record.get("event") == "start")
    opened = next(line for line in lines if line.startswith(STAGES["corpus_open"]))
    return {"corpus_bytes": corpus.stat().st_size, "from_cache": "token cache reused" in opened,
            "training_text_line": opened, "train_examples": start_record.get("train_examples"),
            "train_rows": start_record.get("train_rows"), "peak_rss_mb": round(usage.ru_maxrss / 1024),
            "peak_rss_to_first_step_mb": round(peak_to_first_step),
            "tokens_per_s": train[-1]["tokens_per_s"], "steps": len(train),
            "seconds_from_start": {stage: round(seen[stage], 1) for stage in (*STAGES, "first_step")},
            "seconds": {"pack_and_trim": round(seen["job_built"] - seen["corpus_open"], 1),
                        "first_step": round(seen["first_step"] - seen["job_built"], 1),
                        "whole_run": round(time.perf_counter() - start, 1)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=float, default=50)
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/big_corpus"))
    parser.add_argument("--keep", action="store_true", help="keep the corpora and token stores in --workdir")
    args = parser.parse_args()
    cache = benchmark_cache(args.workdir)
    baseline = make_corpus(args.workdir / "nya_verses.txt", 0)  # the pack's text once
    small = make_corpus(args.workdir / f"nya_{args.megabytes:g}mb.txt", max(args.megabytes, 8))  # not the baseline
    results: dict = {"command": " ".join(["python", "benchmarks/big_corpus.py", *sys.argv[1:]]),
                     "machine": f"{platform.machine()} {os.cpu_count()} cores (shared), OMP_NUM_THREADS=1",
                     "model_rss_mb": model_footprint(cache)}
    run_cli(baseline, cache, args.workdir, args.steps, "warm-up")  # scores the base model once (cached after)
    for name, corpus in (("baseline", baseline), ("small_cold", small), ("small_warm", small)):
        results[name] = run_cli(corpus, cache, args.workdir, args.steps, name)
        print(name, json.dumps(results[name]), file=sys.stderr, flush=True)
    if args.copies > 1:
        big = repeat_file(small, args.copies, args.workdir / f"nya_{args.megabytes * args.copies:g}mb.txt")
        seed_store(small, big, args.copies, cache)
        results["big_warm"] = run_cli(big, cache, args.workdir, args.steps, "big_warm")
        results["big_rerun"] = run_cli(big, cache, args.workdir, args.steps, "big_rerun")
    base = results["baseline"]
    for name in ("baseline", "small_cold", "small_warm", "big_warm", "big_rerun"):
        if name in results:
            run = results[name]
            run["peak_above_model_mb"] = run["peak_rss_mb"] - results["model_rss_mb"]
            run["peak_above_baseline_mb"] = run["peak_rss_mb"] - base["peak_rss_mb"]
            run["peak_to_first_step_above_model_mb"] = run["peak_rss_to_first_step_mb"] - results["model_rss_mb"]
            run["first_step_after_baseline_s"] = round(run["seconds_from_start"]["first_step"]
                                                       - base["seconds_from_start"]["first_step"], 1)
    cold, warm = results["small_cold"]["seconds_from_start"], results["small_warm"]["seconds_from_start"]
    tokenising = (cold["corpus_open"] - cold["data_checked"]) - (warm["corpus_open"] - warm["data_checked"])
    rate = results["small_cold"]["corpus_bytes"] / tokenising  # the cold run's extra time: the tokenising pass
    results["tokenise_mb_per_s"] = round(rate / 2**20, 2)
    if "big_warm" in results:
        results["big_cold_tokenise_estimate_s"] = round(results["big_warm"]["corpus_bytes"] / rate)
    results["token_store_bytes"] = store_sizes(cache)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
