"""examples/evaluate_metrics.py runs and prints every metric."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "evaluate_metrics.py"


def test_evaluate_metrics_example_runs():
    result = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    for expected in ("bits/char", "pseudo-perplexity", "chrF++ signature: nrefs:1", "entity F1",
                     "QA: exact match 100, F1 100", "± "):
        assert expected in result.stdout
