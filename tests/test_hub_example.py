"""examples/load_two_lines.py runs end to end (publish to a loopback Hub, load in two lines)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[1] / "examples" / "load_two_lines.py"


def test_load_two_lines_demo_runs() -> None:
    result = subprocess.run([sys.executable, str(EXAMPLE), "--demo", "--prompt", "Mulungu", "--max-new-tokens", "4"],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("published alice/tiny-lora-demo@")
    assert lines[1].startswith("loaded alice/tiny-lora-demo:") and lines[2].startswith("Mulungu")
