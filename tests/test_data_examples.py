"""The data example in examples/ runs and prints what docs/data.md says it prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "data_sources.py"


def test_data_sources_example_runs():
    result = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120, check=True)
    lines = result.stdout.splitlines()
    assert lines[0] == "text: 2 unique lines, first: 'Moni, muli bwanji?' (nya.txt:1)"
    assert lines[1] == "parallel: [('eng-nya.tsv:1', 'Hello', 'Moni'), ('eng-nya.tsv:2', 'Thank you very much', 'Zikomo kwambiri')]"
    assert lines[3:] == ["graph [eng]: dog is a type of animal.", "graph [swa]: mbwa is a synonym of dog."]
