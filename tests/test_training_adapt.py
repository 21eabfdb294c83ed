"""``lowres adapt``: run folder, settings precedence, packs vs users' files, one-line errors, seeds."""

from __future__ import annotations

import json

import pytest
from training_support import install_toy_registry, save_tiny_model, write_corpus

from lowres_adapters import hookimpl
from lowres_adapters.artifact import read_metadata, read_tensors
from lowres_adapters.cli import main
from lowres_adapters.data.examples import PackData, TextExample
from lowres_adapters.specs import LanguagePack
from lowres_adapters.testing.tiny import TINY_CORPUS


@pytest.fixture
def files(tmp_path):
    install_toy_registry()
    model_dir = save_tiny_model(tmp_path / "model")
    train, held_out = write_corpus(tmp_path)
    return {"model": str(model_dir), "train": str(train), "held_out": str(held_out), "tmp": tmp_path}


def run_cli(args, capsys):
    try:
        main(args)
        code = 0
    except SystemExit as done:
        code = done.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_adapt_with_own_files_writes_a_complete_run_folder(files, capsys):
    run_dir = files["tmp"] / "run"
    code, out, err = run_cli(["adapt", "tum", "--model", files["model"], "--adapter", "toy", "--text", files["train"],
                              "--eval-text", files["held_out"], "--max-steps", "15", "--lr", "1e-2",
                              "--output", str(run_dir), "--json"], capsys)
    assert code == 0, err
    names = {path.name for path in run_dir.iterdir()}
    assert {"lowres_adapter.json", "adapter.safetensors", "README.md", "metrics.json", "train_log.jsonl",
            "run_config.json"} <= names
    assert "checkpoints" not in names
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics == json.loads(out)
    assert metrics["eval_split"] == "test" and metrics["eval_examples"] == 3
    # the held-out lines are among the training lines: 15 steps must lower bits/char
    assert metrics["adapted"]["bits_per_char"] < metrics["base"]["bits_per_char"]
    assert "bits/char on held-out test (3 texts): base" in err
    assert "trainable parameters:" in err
    metadata = read_metadata(run_dir)
    assert (metadata.adapter_type, metadata.language, metadata.recipe, metadata.objective) == ("toy", "tum",
                                                                                               "language", "clm")
    assert set(read_tensors(run_dir)) == {"toy_tum.down.weight", "toy_tum.down.bias", "toy_tum.up.weight",
                                          "toy_tum.up.bias"}
    log = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["event"] == "train"] == list(range(1, 16))


def test_settings_precedence_recipe_then_file_then_cli(files, capsys, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('adapter = "toy"\n[loop]\nlr = 5e-3\nbatch_size = 4\nmax_steps = 3\n'
                      '[adapter_config]\nrank = 2\n', encoding="utf-8")
    run_dir = tmp_path / "run"
    code, _, err = run_cli(["adapt", "tum", "--config", str(config), "--model", files["model"], "--text",
                            files["train"], "--eval-text", files["held_out"], "--lr", "2e-3", "--quiet",
                            "--set", "loop.warmup_ratio=0.5", "--output", str(run_dir)], capsys)
    assert code == 0, err
    resolved = json.loads((run_dir / "run_config.json").read_text())
    loop = resolved["loop"]
    assert loop["lr"] == 2e-3  # CLI over file
    assert loop["batch_size"] == 4 and loop["max_steps"] == 3  # file over recipe defaults
    assert loop["max_length"] == 128 and loop["schedule"] == "cosine"  # the language recipe's decoder defaults
    assert loop["warmup_ratio"] == 0.5
    assert resolved["adapter_config"] == {"rank": 2}


def test_free_text_runs_packed_by_default_and_each_switch_turns_off(files, capsys, tmp_path):
    def start_of(name, *extra):
        run_dir = tmp_path / name
        code, _, err = run_cli(["adapt", "tum", "--model", files["model"], "--adapter", "toy", "--text",
                                files["train"], "--eval-text", files["held_out"], "--max-steps", "2", "--quiet",
                                "--output", str(run_dir), *extra], capsys)
        assert code == 0, err
        loop = json.loads((run_dir / "run_config.json").read_text())["loop"]
        return loop, json.loads((run_dir / "train_log.jsonl").read_text().splitlines()[0])

    loop, start = start_of("fast")
    assert loop["packing"] and loop["masked_only_logits"] and loop["vocab_trim"] and loop["token_cache"]
    assert start["train_rows"] < start["train_examples"]  # short lines share rows
    loop, start = start_of("plain", "--set", "loop.packing=false", "--set", "loop.vocab_trim=false")
    assert not loop["packing"] and not loop["vocab_trim"] and loop["masked_only_logits"]
    assert start["train_rows"] == start["train_examples"]


class FullPlugin:
    @hookimpl
    def register_adapter_types(self, register):
        from lowres_adapters.builtin.full_finetune import FULL

        register(FULL)


def test_start_line_says_what_is_frozen(files, capsys, tmp_path):
    from lowres_adapters.registry import get_registry

    get_registry().add_plugin(FullPlugin(), name="full_plugin")

    def start_line(adapter):
        code, _, err = run_cli(["adapt", "tum", "--model", files["model"], "--adapter", adapter, "--text",
                                files["train"], "--eval-text", files["held_out"], "--max-steps", "1",
                                "--output", str(tmp_path / adapter)], capsys)
        assert code == 0, err
        return next(line for line in err.splitlines() if line.startswith("trainable parameters:"))

    assert start_line("toy").endswith("; everything else frozen")
    full = start_line("full")
    assert "(100.000%)" in full and full.endswith("; nothing frozen")


def test_yaml_config_is_read(files, capsys, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("adapter: toy\nloop:\n  max_steps: 2\n", encoding="utf-8")
    code, _, err = run_cli(["adapt", "tum", "--config", str(config), "--model", files["model"], "--text",
                            files["train"], "--eval-text", files["held_out"], "--quiet", "--output",
                            str(tmp_path / "run")], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["training"]["steps"] == 2


@pytest.mark.parametrize("content, message", [
    ('[loop]\nmax_stepz = 3\n', "unknown setting(s) max_stepz"),
    ('colour = "red"\n', "unknown setting(s) colour"),
    ('[loop]\nlr = -1.0\n', "lr must be > 0"),
    ('[loop\n', "invalid TOML"),
])
def test_bad_config_is_one_line_error(files, capsys, tmp_path, content, message):
    config = tmp_path / "bad.toml"
    config.write_text(content, encoding="utf-8")
    code, _, err = run_cli(["adapt", "tum", "--config", str(config), "--text", files["train"]], capsys)
    assert code == 1
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_unknown_language_without_files_is_one_line_error(files, capsys):
    code, _, err = run_cli(["adapt", "tum"], capsys)
    assert code == 1 and err.count("\n") == 1
    assert "no language pack for 'tum'" in err and "--text" in err


def test_unknown_adapter_type_is_one_line_error(files, capsys):
    code, _, err = run_cli(["adapt", "tum", "--model", files["model"], "--adapter", "nosuch", "--text",
                            files["train"], "--eval-text", files["held_out"], "--quiet"], capsys)
    assert code == 1 and err.strip().count("\n") == 0 and "nosuch" in err


class TinyPack:
    """A throwaway language pack ``tum`` whose data are the tiny corpus."""

    @hookimpl
    def register_language_packs(self, register):
        def load(directory):
            lines = [TextExample(text, f"t{i}", "tum") for i, text in enumerate(TINY_CORPUS)]
            return PackData(text={"train": lines * 3, "test": lines[:2]})

        register(LanguagePack(code="tum", script="Latn", name="Tumbuka", description="test pack",
                              fetch=lambda directory: None, load=load, default_recipe="language"))


def test_pack_without_fetched_data_says_what_to_run(files, capsys, tmp_path, monkeypatch):
    from lowres_adapters.registry import get_registry

    monkeypatch.setenv("LOWRES_CACHE", str(tmp_path / "cache"))
    get_registry().add_plugin(TinyPack(), name="tiny_pack")
    code, _, err = run_cli(["adapt", "tum", "--model", files["model"], "--adapter", "toy"], capsys)
    assert code == 1 and err.count("\n") == 1
    assert "run `lowres data fetch tum`" in err


def test_pack_data_are_used_when_fetched(files, capsys, tmp_path, monkeypatch):
    from lowres_adapters.data.cache import write_manifest
    from lowres_adapters.paths import data_dir
    from lowres_adapters.registry import get_registry

    monkeypatch.setenv("LOWRES_CACHE", str(tmp_path / "cache"))
    get_registry().add_plugin(TinyPack(), name="tiny_pack")
    data_dir("tum").mkdir(parents=True)
    write_manifest(data_dir("tum"), {"code": "tum"})
    run_dir = tmp_path / "run"
    code, _, err = run_cli(["adapt", "tum", "--model", files["model"], "--adapter", "toy", "--max-steps", "2",
                            "--quiet", "--output", str(run_dir)], capsys)
    assert code == 0, err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["eval_examples"] == 2
    assert read_metadata(run_dir).script == "Latn"


def test_checkpoints_of_an_unfinished_run_need_resume(files, capsys, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints" / "step-2").mkdir(parents=True)
    code, _, err = run_cli(["adapt", "tum", "--model", files["model"], "--adapter", "toy", "--text", files["train"],
                            "--eval-text", files["held_out"], "--output", str(run_dir)], capsys)
    assert code == 1 and "--resume" in err


def test_seeds_report_mean_and_std(files, capsys, tmp_path):
    output = tmp_path / "seeds"
    code, out, err = run_cli(["adapt", "tum", "--model", files["model"], "--adapter", "toy", "--text",
                              files["train"], "--eval-text", files["held_out"], "--max-steps", "4", "--lr", "1e-2",
                              "--seeds", "1,2,3", "--quiet", "--output", str(output), "--json"], capsys)
    assert code == 0, err
    summary = json.loads((output / "seeds.json").read_text())
    assert summary == json.loads(out)
    per_seed = [summary["per_seed"][seed]["bits_per_char"] for seed in ("1", "2", "3")]
    figure = summary["adapted"]["bits_per_char"]
    assert figure["n"] == 3 and figure["values"] == per_seed
    assert figure["mean"] == pytest.approx(sum(per_seed) / 3)
    assert figure["std"] > 0  # different seeds, different adapters
    assert {path.name for path in output.iterdir()} == {"seed-1", "seed-2", "seed-3", "seeds.json"}
    assert "bits/char over seeds 1,2,3" in err


def test_bad_seeds_are_one_line_error(files, capsys):
    code, _, err = run_cli(["adapt", "tum", "--seeds", "1,x"], capsys)
    assert code == 1 and "--seeds" in err and err.count("\n") == 1


def test_publish_uploads_the_run_folder_to_the_hub(files, capsys, tmp_path, monkeypatch):
    from hub_support import ALICE
    from huggingface_hub import HfApi

    monkeypatch.setenv("HF_TOKEN", ALICE)
    run_dir = tmp_path / "run"
    code, _, err = run_cli(["adapt", "tum", "--model", files["model"], "--adapter", "toy", "--text", files["train"],
                            "--eval-text", files["held_out"], "--max-steps", "2", "--quiet", "--output",
                            str(run_dir), "--publish", "alice/tum-toy"], capsys)
    assert code == 0, err
    api = HfApi(token=ALICE)
    assert {"adapter.safetensors", "lowres_adapter.json", "README.md"} <= set(api.list_repo_files("alice/tum-toy"))
    uploaded = api.hf_hub_download("alice/tum-toy", "adapter.safetensors")
    assert open(uploaded, "rb").read() == (run_dir / "adapter.safetensors").read_bytes()


def test_full_fine_tuning_keeps_the_whole_softmax(files, capsys, tmp_path):
    from lowres_adapters.registry import get_registry

    get_registry().add_plugin(FullPlugin(), name="full_plugin")
    code, _, err = run_cli(["adapt", "tum", "--model", files["model"], "--adapter", "full", "--text", files["train"],
                            "--eval-text", files["held_out"], "--max-steps", "1", "--output", str(tmp_path / "full")],
                           capsys)
    assert code == 0, err
    assert "note: vocabulary trimming off for language: the output matrix trains" in err
    code, _, err = run_cli(["adapt", "tum", "--model", files["model"], "--adapter", "toy", "--text", files["train"],
                            "--eval-text", files["held_out"], "--max-steps", "1", "--output", str(tmp_path / "toy")],
                           capsys)
    assert code == 0 and "vocabulary trimming off" not in err
