"""``lowres publish`` and ``lowres load`` against the loopback Hub."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import HfApi

import hub_support
from hub_support import ALICE
from lowres_adapters.cli import main


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hub_support.save_tiny_base(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="module")
def base_id(base_dir: Path) -> str:
    return hub_support.publish_tiny_base(base_dir, "alice/tiny-base-cli")


@pytest.fixture
def run_dir(tmp_path: Path, base_dir: Path, base_id: str) -> Path:
    hub_support.use_toy_registry()
    return hub_support.make_run_folder(tmp_path / "run", base_dir, base_model=base_id)


def run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_publish_then_load_with_a_prompt(run_dir: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_TOKEN", ALICE)
    code, out, err = run(["publish", str(run_dir), "alice/cli-run", "--private", "--revision", "v1"], capsys)
    assert code == 0, err
    oid = HfApi(token=ALICE).list_repo_refs("alice/cli-run").branches
    target = {branch.name: branch.target_commit for branch in oid}["v1"]
    assert f"published alice/cli-run@{target}" in out and ALICE not in out + err
    code, out, err = run(["load", "alice/cli-run", "--revision", "v1", "--prompt", "Mulungu",
                          "--max-new-tokens", "5"], capsys)
    assert code == 0, err
    assert out.startswith("Mulungu") and "toy_bias adapter 'lang' for nya" in err


def test_errors_are_one_line_without_traceback(run_dir: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    code, out, err = run(["publish", str(run_dir), "alice/cli-anonymous"], capsys)
    assert code == 1 and err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    code, out, err = run(["load", "alice/cli-never-published"], capsys)
    assert code == 1 and err.count("\n") == 1 and "repository not found" in err
