"""`lowres new`: each scaffold's own tests pass, the packages register, and they train end to end
(tiny model, a temporary entry-point dist-info instead of pip, no network)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from training_support import save_tiny_model

from lowres_adapters.cli import main
from lowres_adapters.errors import LowresError

SCAFFOLDS = {  # kind -> (name, distribution, package)
    "adapter-type": ("foo", "lowres-adapter-foo", "lowres_adapter_foo"),
    "lang-pack": ("xyz", "lowres-lang-xyz", "lowres_lang_xyz"),
    "alignment-loss": ("l_one", "lowres-loss-l-one", "lowres_loss_l_one"),
    "data-source": ("tabs", "lowres-source-tabs", "lowres_source_tabs"),
}


def _new(kind: str, name: str, directory: Path, *extra: str) -> None:
    try:
        main(["new", kind, name, "--directory", str(directory), *extra])
    except SystemExit as done:  # pragma: no cover - only on failure
        raise AssertionError(f"lowres new exited {done.code}") from None


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Scaffold every kind and 'install' each through a dist-info holding its entry point."""
    root = tmp_path_factory.mktemp("scaffolds")
    site = root / "site"
    folders = {}
    for kind, (name, dist, package) in SCAFFOLDS.items():
        _new(kind, name, root / name, *(["--language-name", "Xyzish"] if kind == "lang-pack" else []))
        info = site / f"{package}-0.1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
        (info / "entry_points.txt").write_text(f"[lowres_adapters]\n{name} = {package}.plugin\n")
        folders[kind] = root / name
    folders["site"] = site
    return folders


def _env(packages: dict[str, Path], cache: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, LOWRES_STRICT_PLUGINS="1", OMP_NUM_THREADS="1")
    paths = [str(packages[kind]) for kind in SCAFFOLDS] + [str(packages["site"]), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    if cache is not None:
        env["LOWRES_CACHE"] = str(cache)
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


@pytest.mark.parametrize("kind", sorted(SCAFFOLDS))
def test_a_scaffold_passes_its_own_tests(packages: dict[str, Path], kind: str) -> None:
    folder = packages[kind]
    result = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], _env(packages), folder)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_scaffolds_import_only_the_plugin_api(packages: dict[str, Path]) -> None:
    from test_plugin_imports import library_imports

    for kind in SCAFFOLDS:
        assert library_imports(packages[kind]) <= {"lowres_adapters.plugin"}, kind


def test_scaffolds_register_and_train_end_to_end(packages: dict[str, Path], tmp_path: Path) -> None:
    env = _env(packages, cache=tmp_path / "cache")
    lowres = [sys.executable, "-m", "lowres_adapters"]
    listed = _run(lowres + ["plugins"], env, tmp_path)
    assert listed.returncode == 0 and "error" not in listed.stdout, listed.stdout + listed.stderr
    for name, _, package in SCAFFOLDS.values():
        assert f"{package}.plugin" in listed.stdout
    assert _run(lowres + ["data", "fetch", "xyz"], env, tmp_path).returncode == 0
    model = save_tiny_model(tmp_path / "tiny")
    language = _run(lowres + ["adapt", "xyz", "--model", str(model), "--adapter", "foo", "--max-steps", "1",
                              "--output", str(tmp_path / "run")], env, tmp_path)
    assert language.returncode == 0, language.stderr[-2000:]
    assert "adapter 'foo'" in language.stderr and (tmp_path / "run" / "adapter.safetensors").exists()
    aligned = _run(lowres + ["adapt", "xyz", "--model", str(model), "--recipe", "prompt-align", "--adapter", "foo",
                             "--set", "recipe_options.align_loss=l_one", "--max-steps", "1",
                             "--output", str(tmp_path / "aligned")], env, tmp_path)
    assert aligned.returncode == 0, aligned.stderr[-2000:]
    assert "align_loss_l_one" in (tmp_path / "aligned" / "metrics.json").read_text()


def _import_scaffolded_type(packages: dict[str, Path], monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(packages["adapter-type"]))
    for module in [m for m in sys.modules if m.startswith("lowres_adapter_foo")]:
        monkeypatch.delitem(sys.modules, module)
    from lowres_adapter_foo.adapter import FOO_TYPE

    return FOO_TYPE


def test_prompt_align_teacher_is_the_bare_base_with_a_scaffolded_type(packages, monkeypatch) -> None:
    from lowres_adapters.testing.tiny import tiny_model
    from lowres_adapters.training.alignment import AlignmentObjective, build_alignment_loss, require_disabling

    spec = _import_scaffolded_type(packages, monkeypatch)
    pristine, tokenizer = tiny_model("llama")
    model, _ = tiny_model("llama")
    handle = spec.attach(model, "xyz", spec.config_class())
    handle.activate()
    require_disabling(handle, "prompt-align's frozen teacher")  # passes: the type can switch off
    with torch.no_grad():
        for parameter in handle.trainable_parameters().values():
            parameter.add_(0.5)  # make the adapter matter
    batch = tokenizer(["the cat sat", "a dog ran far"], return_tensors="pt", padding=True)
    loss_fn, needs = build_alignment_loss("cosine", {})
    objective = AlignmentObjective(loss_fn, needs, handle, cache_limit=0)
    teacher = objective.teacher_side(batch["input_ids"], batch["attention_mask"]).pooled
    reference = AlignmentObjective(loss_fn, needs, None, base_model=pristine, cache_limit=0)
    base = reference.teacher_side(batch["input_ids"], batch["attention_mask"]).pooled
    student, _ = objective.student_side(handle.model, batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(teacher, base)
    assert float((student.pooled.detach() - base).abs().max()) > 1e-3  # the student is the adapted model


def test_a_type_that_cannot_switch_off_is_refused_in_one_line() -> None:
    from lowres_adapters.handles import ParameterSetAdapter
    from lowres_adapters.testing.tiny import tiny_model
    from lowres_adapters.training.alignment import require_disabling

    model, _ = tiny_model("llama")
    handle = ParameterSetAdapter(model, "stuck", None, [n for n, _ in model.named_parameters() if "norm" in n][-1:])
    with pytest.raises(LowresError) as raised:
        require_disabling(handle, "prompt-align's frozen teacher")
    message = str(raised.value)
    assert "\n" not in message and "cannot switch itself off" in message and "'stuck'" in message


def test_new_refuses_an_existing_folder_and_a_bad_name(tmp_path: Path, capsys) -> None:
    (tmp_path / "taken").mkdir()
    for args, expected in ((["adapter-type", "foo", "--directory", str(tmp_path / "taken")], "already exists"),
                           (["adapter-type", "Foo-Bar", "--directory", str(tmp_path / "x")], "is not a name"),
                           (["lang-pack", "swahili", "--directory", str(tmp_path / "y")], "ISO 639-3")):
        with pytest.raises(SystemExit) as done:
            main(["new", *args])
        assert done.value.code == 1
        err = capsys.readouterr().err
        assert err.startswith("error:") and expected in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.parametrize("kind", sorted(SCAFFOLDS))
def test_every_placeholder_is_filled(kind: str) -> None:
    import re

    from lowres_adapters.scaffold import render

    files = render(kind, SCAFFOLDS[kind][0])
    left = re.findall(r"__[A-Z][A-Z_]*__", "".join(files) + "".join(files.values()))
    assert not left and "pyproject.toml" in files and f"{SCAFFOLDS[kind][2]}/plugin.py" in files
