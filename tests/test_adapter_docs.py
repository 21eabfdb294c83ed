"""The code in docs/adapters.md runs, and the sizes example measures what it claims."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def test_python_blocks_in_adapters_md_run():
    text = (ROOT / "docs" / "adapters.md").read_text("utf-8")
    blocks = PYTHON_BLOCK.findall(text)  # ```python skip blocks do not match: they need a real install
    assert len(blocks) >= 4
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/adapters.md", "exec"), namespace)  # noqa: S102 - our own docs
    assert namespace["report"].trainable["llama"] > 0
    assert str(namespace["model"].active_adapters) == "Stack[Fuse[text, graph], task]"


@pytest.fixture
def sizes_module():
    spec = importlib.util.spec_from_file_location("adapter_sizes_example", ROOT / "examples" / "adapter_sizes.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_sizes_example_saves_four_bytes_per_parameter(sizes_module):
    rows = sizes_module.measure("tiny:llama", ["seq_bn", "lora", "prompt_tuning"])
    for row in rows:
        header = row["bytes"] - 4 * row["trainable"]
        assert 0 < header < 4096, row  # float32 tensors plus the safetensors JSON header, nothing else
    assert [row["type"] for row in rows] == ["seq_bn", "lora", "prompt_tuning"]
