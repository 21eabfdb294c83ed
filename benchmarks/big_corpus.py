"""Adapting on a text file bigger than memory, through the real CLI: time to first step, peak RSS, tokens/s.

Each measurement is one ``lowres adapt nya --text FILE --max-steps N`` process (one thread), so its
peak RSS is its own (``wait4``). The corpus is the real Chichewa Bible text of the ``nya`` pack
(``lowres data fetch nya``), repeated into ``--workdir`` until it reaches ``--megabytes`` and then
copied ``--copies`` times (1.08 GB by default; never commit it). The runs read and write their
token store under ``WORKDIR/cache`` (the user's models and data are linked in), so the user's cache
is left alone and a first run really tokenises.

Runs: ``baseline`` is the CLI on the pack's own 3.9 MB text (one segment: tokenised before training,
vocabulary trimmed), ``baseline_no_trim`` the same with ``loop.vocab_trim=false`` (what a text of
several segments trains with); ``big_first_run`` is the first run on the big file: it checks the
file, tokenises the first segment, then trains while the rest is tokenised in a background thread;
``big_second_run`` runs the same command again (the pass continues from the segments the first run
finished). A warm-up run before them fills the base model's cached scores.

What is measured, per run: seconds from the process start to each stage line it prints (see
``STAGES``) and to the first training step written to ``train_log.jsonl``; peak RSS; the loop's
tokens/s; the peak RSS up to the first step (``VmHWM`` then: the corpus, the job and one step,
without the held-out scoring at the end, whose full-vocabulary logits are the run's largest
allocation); the peak RSS of the background tokenising process (a child of the run) and of both
together (sampled every 0.5 s); the background pass's progress lines (MB of text tokenised, seconds). The model's own
footprint is the RSS of a process that only loads it.

    OMP_NUM_THREADS=1 python benchmarks/big_corpus.py --megabytes 50 --copies 20 --steps 6
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
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
loads), the token store's first segment ready (after the model loaded; its tokenising on a first
run), the packed (and, for one segment, vocabulary-trimmed) job built."""
PASS_LINE = re.compile(r"segment (\d+) done \(([\d,.]+) MB of text, (\d+) s\)")
"""The background pass's progress line (every 30 s at most)."""


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


def store_sizes(cache: Path) -> dict[str, int]:
    """Bytes on disk of each token-store entry (its segments), by its examples count (one entry per corpus here)."""
    sizes = {}
    for entry in sorted(path for path in (cache / "tokens").iterdir() if path.is_dir()):
        metas = [json.loads(meta.read_text()) for meta in entry.glob("segment-*/meta.json")]
        examples = sum(meta["examples"] for meta in metas)
        last = " (all)" if any(meta.get("last") for meta in metas) else " (pass unfinished)"
        sizes[f"{examples} examples in {len(metas)} segments{last}"] = sum(
            path.stat().st_size for path in entry.rglob("*") if path.is_file())
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


def _status_mb(pid: int, field: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def sample_background(pid: int, done: threading.Event, seen: dict) -> None:
    """Record the peak RSS of the run's child processes (the background tokenising pass) and of the run
    and its children together, every 0.5 s until ``done``."""
    while not done.wait(0.5):
        children = _children(pid)
        for child in children:
            seen["children_peak_mb"] = max(seen.get("children_peak_mb", 0.0), _status_mb(child, "VmHWM"))
        total = _status_mb(pid, "VmRSS") + sum(_status_mb(child, "VmRSS") for child in children)
        seen["with_children_peak_mb"] = max(seen.get("with_children_peak_mb", 0.0), total)


def run_cli(corpus: Path, cache: Path, workdir: Path, steps: int, name: str, *extra: str) -> dict:
    """Run ``lowres adapt nya --text CORPUS`` once and return what it took."""
    run_dir = workdir / "runs" / name
    args = [str(LOWRES), "adapt", "nya", "--text", str(corpus), "--max-steps", str(steps), "--save-every", "0",
            "--eval-examples", "20", "--quiet", "--overwrite", "--output", str(run_dir), *extra]
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
    sampled: dict = {}
    finished = threading.Event()
    sampler = threading.Thread(target=sample_background, args=(child.pid, finished, sampled), daemon=True)
    sampler.start()
    log = run_dir / "train_log.jsonl"
    peak_to_first_step = 0.0
    while child.poll() is None and "first_step" not in seen:  # the first step's record is flushed when done
        if log.exists() and any(json.loads(line).get("event") == "train" for line in log.read_text().splitlines()):
            seen["first_step"] = time.perf_counter() - start
            peak_to_first_step = peak_rss_so_far(child.pid)
        time.sleep(0.1)
    _, status, usage = os.wait4(child.pid, 0)
    finished.set()
    sampler.join()
    reader.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n" + "\n".join(lines[-20:]))
    records = [json.loads(line) for line in log.read_text().splitlines()]
    train = [record for record in records if record.get("event") == "train"]
    start_record = next(record for record in records if record.get("event") == "start")
    opened = next(line for line in lines if line.startswith(STAGES["corpus_open"]))
    passes = [PASS_LINE.search(line) for line in lines]
    progress = [{"segments": int(m[1]), "text_mb": float(m[2].replace(",", "")), "seconds": int(m[3])}
                for m in passes if m]
    return {"corpus_bytes": corpus.stat().st_size, "from_cache": "token cache reused" in opened,
            "background_pass": progress, "notes": [line for line in lines if line.startswith("note:")],
            "training_text_line": opened, "train_examples": start_record.get("train_examples"),
            "train_rows": start_record.get("train_rows"), "peak_rss_mb": round(usage.ru_maxrss / 1024),
            "peak_rss_to_first_step_mb": round(peak_to_first_step),
            "background_process_peak_rss_mb": round(sampled.get("children_peak_mb", 0.0)),
            "run_and_background_peak_rss_mb": round(sampled.get("with_children_peak_mb", 0.0)),
            "tokens_per_s": train[-1]["tokens_per_s"], "steps": len(train),
            "seconds_from_start": {stage: round(seen[stage], 1) for stage in (*STAGES, "first_step")},
            "seconds": {"pack_and_trim": round(seen["job_built"] - seen["corpus_open"], 1),
                        "first_step": round(seen["first_step"] - seen["job_built"], 1),
                        "whole_run": round(time.perf_counter() - start, 1)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=float, default=50)
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/big_corpus"))
    parser.add_argument("--keep", action="store_true", help="keep the corpora and token stores in --workdir")
    args = parser.parse_args()
    cache = benchmark_cache(args.workdir)
    baseline = make_corpus(args.workdir / "nya_verses.txt", 0)  # the pack's text once
    small = make_corpus(args.workdir / f"nya_{args.megabytes:g}mb.txt", max(args.megabytes, 8))
    big = repeat_file(small, args.copies, args.workdir / f"nya_{args.megabytes * args.copies:g}mb.txt")
    results: dict = {"command": " ".join(["OMP_NUM_THREADS=1 python", "benchmarks/big_corpus.py", *sys.argv[1:]]),
                     "machine": f"{platform.machine()} {os.cpu_count()} cores (shared), OMP_NUM_THREADS=1",
                     "load_before": os.getloadavg(), "model_rss_mb": model_footprint(cache)}
    run_cli(baseline, cache, args.workdir, args.steps, "warm-up")  # scores the base model once (cached after)
    runs = (("baseline", baseline, ()), ("baseline_no_trim", baseline, ("--set", "loop.vocab_trim=false")),
            ("big_first_run", big, ()), ("big_second_run", big, ()))
    for name, corpus, extra in runs:
        results[name] = run_cli(corpus, cache, args.workdir, args.steps, name, *extra)
        results[name]["load_after"] = os.getloadavg()
        print(name, json.dumps(results[name]), file=sys.stderr, flush=True)
    base = results["baseline"]
    for name, _, _ in runs:
        run = results[name]
        run["peak_above_model_mb"] = run["peak_rss_mb"] - results["model_rss_mb"]
        run["peak_above_baseline_mb"] = run["peak_rss_mb"] - base["peak_rss_mb"]
        run["peak_to_first_step_above_model_mb"] = run["peak_rss_to_first_step_mb"] - results["model_rss_mb"]
        run["first_step_after_baseline_s"] = round(run["seconds_from_start"]["first_step"]
                                                   - base["seconds_from_start"]["first_step"], 1)
        if run["background_pass"]:
            last = run["background_pass"][-1]
            run["background_pass_mb_per_s"] = round(last["text_mb"] / max(last["seconds"], 1), 2)
    results["token_store_bytes"] = store_sizes(cache)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
