"""Plant known bugs in a copy of the tree and check that the test suite catches each one.

Usage: python scripts/mutation_check.py [--only NAME ...] [--no-baseline] [--keep] [--list]

For every mutation the tree is copied (without .venv, .git, runs and caches) to a temporary folder,
one line of library code is replaced, and the tests that cover that code are run there with
``PYTHONPATH`` pointing at the copy, so the copy's ``lowres_adapters`` is imported rather than the
editable install (checked before any test runs). A mutation is *caught* when at least one of its
tests fails. With the baseline on (default), the same tests are first run on an unmutated copy and
must pass, so a failure is the planted bug's and not the machine's. Prints a Markdown table;
exits 1 when a mutation survives or the baseline fails.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".venv", ".git", "runs", "__pycache__", ".pytest_cache", "*.egg-info", ".mypy_cache",
                              ".ruff_cache")


@dataclass(frozen=True)
class Mutation:
    """One planted bug: replace ``old`` (which must occur exactly once) by ``new`` in ``path``.

    Attributes:
        name: Short name (``--only`` selects by it).
        description: What the bug does, for the table.
        path: File to change, relative to the repository root.
        old: Exact source text to replace.
        new: What replaces it.
        tests: Test files (or node ids) to run, fastest first: the first failure stops the run.
    """

    name: str
    description: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTATIONS = (
    Mutation(
        name="rng-restore",
        description="`restore_rng_state` returns without restoring anything",
        path="lowres_adapters/training/checkpoint.py",
        old='    """Put back RNG states captured by :func:`capture_rng_state`."""\n',
        new='    """Put back RNG states captured by :func:`capture_rng_state`."""\n    return\n',
        tests=("tests/test_training_loop.py", "tests/test_training_resume.py"),
    ),
    Mutation(
        name="load-skips-weights",
        description="`load` attaches the adapter but never loads its saved weights",
        path="lowres_adapters/loading.py",
        old="    handle.load_adapter_state_dict(adapter_tensors)\n",
        new="",
        tests=("tests/test_hub_publish_load.py", "tests/test_eval_run.py"),
    ),
    Mutation(
        name="packing-encoder-mask",
        description="packed MLM rows: every token attends to every example of its row",
        path="lowres_adapters/training/packing.py",
        old='batch["attention_mask"] = ((same_example & ~padding[:, None, :]) | eye).long()',
        new='batch["attention_mask"] = ((~padding[:, None, :]) | eye).long()',
        tests=("tests/test_packing.py", "tests/test_fast_lm.py"),
    ),
    Mutation(
        name="packing-decoder-positions",
        description="packed CLM rows: positions run on across examples (one causal sequence per row)",
        path="lowres_adapters/training/packing.py",
        old="position_ids[row, start:stop] = torch.arange(length) + self.position_offset",
        new="position_ids[row, start:stop] = torch.arange(start, stop) + self.position_offset",
        tests=("tests/test_packing.py", "tests/test_fast_lm.py"),
    ),
    Mutation(
        name="mlm-all-positions",
        description="masked LM loss scores every position, not only the masked ones",
        path="lowres_adapters/training/fast_lm.py",
        old="    selected = labels != IGNORE_INDEX  # (batch, seq)\n",
        new="    selected = torch.ones_like(labels, dtype=torch.bool)  # (batch, seq)\n",
        tests=("tests/test_fast_lm.py",),
    ),
    Mutation(
        name="clm-all-positions",
        description="causal LM loss scores every position, padding and ignored labels included",
        path="lowres_adapters/training/fast_lm.py",
        old="    selected = next_labels != IGNORE_INDEX\n",
        new="    selected = torch.ones_like(next_labels, dtype=torch.bool)\n",
        tests=("tests/test_fast_lm.py",),
    ),
    Mutation(
        name="dataset-held-out-trained",
        description="`--text hf:...`: the held-out examples are scored but also trained on",
        path="lowres_adapters/training/recipes/language.py",
        old="        kept = kept.select(0, len(kept) - held_out)\n",
        new="",
        tests=("tests/test_dataset_text_runs.py::test_a_saved_dataset_trains_on_the_batches_of_the_same_text_file",),
    ),
)


@dataclass
class Outcome:
    """What running a mutation's tests gave."""

    mutation: Mutation
    caught: bool
    first_failure: str
    seconds: float


def copy_tree(destination: Path) -> Path:
    """Copy the repository (without virtualenv, git data, runs and caches) to ``destination``."""
    shutil.copytree(ROOT, destination, ignore=SKIP)
    return destination


def apply(mutation: Mutation, tree: Path) -> None:
    """Plant ``mutation`` in ``tree``.

    Raises:
        SystemExit: The source text to replace is not there exactly once (the code moved on).
    """
    path = tree / mutation.path
    source = path.read_text(encoding="utf-8")
    count = source.count(mutation.old)
    if count != 1:
        raise SystemExit(f"{mutation.name}: expected the text to replace once in {mutation.path}, found {count}; "
                         "update scripts/mutation_check.py")
    path.write_text(source.replace(mutation.old, mutation.new), encoding="utf-8")


def environment(tree: Path) -> dict[str, str]:
    """Return the environment that makes Python import ``tree``'s package first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tree), env.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check_imports_copy(tree: Path) -> None:
    """Fail unless ``lowres_adapters`` (and the plugin's entry point) resolve inside ``tree``."""
    probe = ("import lowres_adapters, lowres_adapters.training.checkpoint as c; "
             "print(lowres_adapters.__file__); print(c.__file__)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tree, env=environment(tree), capture_output=True,
                          text=True, check=True)
    for line in done.stdout.split():
        if not Path(line).resolve().is_relative_to(tree.resolve()):
            raise SystemExit(f"the copy is not what gets imported: {line} (expected under {tree})")


def run_tests(tree: Path, tests: tuple[str, ...]) -> tuple[bool, str, str]:
    """Run ``tests`` in ``tree``; return (passed, first failing test id or '', pytest's last lines)."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-rf", *tests]
    done = subprocess.run(command, cwd=tree, env=environment(tree), capture_output=True, text=True)
    failures = re.findall(r"^(?:FAILED|ERROR) (\S+)", done.stdout, flags=re.MULTILINE)
    tail = "\n".join(done.stdout.strip().splitlines()[-5:])
    return done.returncode == 0, (failures[0] if failures else ""), tail


def run_mutation(mutation: Mutation, workdir: Path) -> Outcome:
    """Copy the tree, plant ``mutation``, run its tests."""
    tree = copy_tree(workdir / mutation.name)
    apply(mutation, tree)
    check_imports_copy(tree)
    started = time.monotonic()
    passed, first_failure, tail = run_tests(tree, mutation.tests)
    if passed:
        print(f"  {mutation.name}: SURVIVED\n{tail}", file=sys.stderr)
    elif not first_failure:
        first_failure = "(pytest failed without a test failure)\n" + tail
    return Outcome(mutation, not passed, first_failure, time.monotonic() - started)


def table(outcomes: list[Outcome]) -> str:
    """Return the results as a Markdown table."""
    lines = ["| mutation | planted bug | tests run | caught by (first failure) | result |",
             "|---|---|---|---|---|"]
    for outcome in outcomes:
        mutation = outcome.mutation
        tests = ", ".join(f"`{Path(test).name}`" for test in mutation.tests)
        failure = f"`{outcome.first_failure.split('/')[-1]}`" if outcome.caught else "-"
        result = f"caught ({outcome.seconds:.0f} s)" if outcome.caught else "**SURVIVED**"
        lines.append(f"| {mutation.name} | {mutation.description} (`{mutation.path}`) | {tests} | {failure} | {result} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=None, help="Run only these mutations (by name).")
    parser.add_argument("--no-baseline", action="store_true", help="Skip the unmutated run of the same tests.")
    parser.add_argument("--keep", action="store_true", help="Keep the copies (their folder is printed).")
    parser.add_argument("--list", action="store_true", help="List the mutations and exit.")
    args = parser.parse_args()
    if args.list:
        for mutation in MUTATIONS:
            print(f"{mutation.name}: {mutation.description}")
        return 0
    chosen = [m for m in MUTATIONS if args.only is None or m.name in args.only]
    unknown = set(args.only or ()) - {m.name for m in MUTATIONS}
    if unknown:
        raise SystemExit(f"unknown mutation(s): {', '.join(sorted(unknown))}; see --list")
    workdir = Path(tempfile.mkdtemp(prefix="lowres-mutations-"))
    try:
        if not args.no_baseline:
            tests = tuple(dict.fromkeys(test for mutation in chosen for test in mutation.tests))
            tree = copy_tree(workdir / "baseline")
            check_imports_copy(tree)
            print(f"baseline: {len(tests)} test files on an unmutated copy", file=sys.stderr)
            passed, first_failure, tail = run_tests(tree, tests)
            if not passed:
                print(f"baseline fails ({first_failure or 'see below'}): fix the suite first\n{tail}", file=sys.stderr)
                return 1
        outcomes = []
        for mutation in chosen:
            print(f"mutation {mutation.name} ...", file=sys.stderr)
            outcomes.append(run_mutation(mutation, workdir))
        print(table(outcomes))
        return 0 if all(outcome.caught for outcome in outcomes) else 1
    finally:
        if args.keep:
            print(f"copies kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
