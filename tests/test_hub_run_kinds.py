"""Every run kind loads in two lines: tiny runs of each recipe, published to the loopback Hub, loaded
with ``load("owner/name")`` in a fresh process give the run folder's outputs (max abs diff <= 1e-5);
a task run's loaded model predicts the labels the run itself predicted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import hub_support
import lowres_adapters.training.recipes.task as task_module
import lowres_adapters.training.adapt as adapt_module
from hub_support import ALICE, PROBE_TEXT
from lowres_adapters import hub
from lowres_adapters.data.examples import LabeledExample, PackData, TaskData, TextExample
from lowres_adapters.registry import get_registry, reset_registry
from lowres_adapters.testing.tiny import TINY_CORPUS
from lowres_adapters.training.adapt import adapt
from lowres_adapters.training.task_scoring import predict, score_predictions
from test_training_recipes import CHICHEWA, ENGLISH, TinyGraphPlugin
from test_vocabulary_extension import tibetan_like_text

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::FutureWarning")]
SENTENCES = [LabeledExample(text=text, label="nya" if index % 2 == 0 else "eng", id=str(index))
             for index, text in enumerate(TINY_CORPUS)]
TOLERANCE = 1e-5

_CHILD = """
import json, sys
import torch
from safetensors.torch import save_file
from lowres_adapters import load
out = {}
for repo in json.loads(sys.argv[1]):
    model, tokenizer = load(repo, token=sys.argv[3])
    ids = tokenizer(sys.argv[4], return_tensors="pt").input_ids
    with torch.no_grad():
        out[repo] = model(input_ids=ids).logits.contiguous()
save_file(out, sys.argv[2])
"""


def probe(model, tokenizer) -> torch.Tensor:
    ids = tokenizer(PROBE_TEXT, return_tensors="pt").input_ids  # (1, seq)
    with torch.no_grad():
        return model(input_ids=ids).logits  # (1, seq, vocab) or (1, labels) for a task run


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Train one tiny run of each kind on a base model published to the loopback Hub."""
    reset_registry(None)
    tmp = tmp_path_factory.mktemp("kinds")
    base_id = hub_support.publish_tiny_base(hub_support.save_tiny_base(tmp / "base"), "alice/tiny-base-run-kinds")
    train, held_out = tmp / "train.txt", tmp / "heldout.txt"
    train.write_text("\n".join(TINY_CORPUS * 4) + "\n", encoding="utf-8")
    held_out.write_text("\n".join(TINY_CORPUS[:3]) + "\n", encoding="utf-8")
    pairs = tmp / "pairs.tsv"
    pairs.write_text("".join(f"{en}\t{ny}\n" for en, ny in zip(ENGLISH, CHICHEWA)) * 3, encoding="utf-8")
    tibetan = tibetan_like_text(240, seed=3)
    (tmp / "bo.txt").write_text("\n".join(tibetan[:200]) + "\n", encoding="utf-8")
    (tmp / "bo-held.txt").write_text("\n".join(tibetan[200:]) + "\n", encoding="utf-8")
    common = dict(model=base_id, text=str(train), eval_text=str(held_out), pairs=str(pairs), eval_pairs=str(pairs),
                  max_steps=2, batch_size=4, lr=5e-3, progress=False, echo=lambda line: None)
    get_registry().add_plugin(TinyGraphPlugin(), name="tiny_graph_plugin")
    folders: dict[str, Path] = {}

    def run(kind: str, language: str = "nya", **settings) -> None:
        folders[kind] = adapt(language, output=str(tmp / kind), **{**common, **settings}).run_dir

    run("language", adapter="lora")
    run("graph", recipe="graph", adapter="seq_bn", recipe_options={"source": "tiny_graph"})
    run("cpt", recipe="cpt", adapter="lora")
    run("sft", recipe="sft", adapter="ia3")
    run("cpt_sft", recipe="cpt_sft", adapter="lora")
    run("prompt_align", recipe="prompt-align", max_train_examples=10)
    run("vocabulary", language="adx", adapter="seq_bn", text=str(tmp / "bo.txt"),
        eval_text=str(tmp / "bo-held.txt"), extend_vocab=40)
    run("lang_seq_bn", adapter="seq_bn", seed=7)
    task_data = TaskData(kind="sequence_classification", labels=("eng", "nya"),
                         splits={"train": SENTENCES * 4, "test": SENTENCES})
    pack = PackData(text={"train": [TextExample(t, str(i), "nya") for i, t in enumerate(TINY_CORPUS)] * 4},
                    tasks={"topic": task_data})
    predictions: dict[str, list[str]] = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(adapt_module, "load_run_data", lambda language, settings: (pack, None))

        def recording(model, head, tokenizer, task, examples, **options):  # the run's own predictions
            predicted = predict(model, head, tokenizer, task, examples, **options)
            predictions[current[0]] = predicted
            return score_predictions(task, examples, predicted)

        patch.setattr(task_module, "evaluate_task", recording)
        current = ["task"]
        run("task", recipe="task", max_steps=6, recipe_options={"lang_adapter": str(folders["vocabulary"])})
        current[0] = "task_fusion"
        run("task_fusion", recipe="task", max_steps=6,
            recipe_options={"lang_adapter": str(folders["graph"]),
                            "fuse_with": [str(folders["lang_seq_bn"])]})
    (tmp / "predictions.json").write_text(json.dumps(predictions), "utf-8")
    folders["predictions"] = tmp / "predictions.json"
    return folders


KINDS = ["language", "graph", "cpt", "sft", "cpt_sft", "prompt_align", "vocabulary", "task", "task_fusion"]


def test_every_run_kind_published_loads_in_a_fresh_process_with_the_run_folders_outputs(runs, tmp_path):
    expected, repos = {}, {}
    for kind in KINDS:
        repos[kind] = f"alice/run-kind-{kind.replace('_', '-')}"
        hub.publish(runs[kind], repos[kind], token=ALICE)
        model, tokenizer = hub.load(str(runs[kind]))
        expected[kind] = probe(model, tokenizer)
    out = tmp_path / "logits.safetensors"
    result = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(list(repos.values())), str(out), ALICE,
                             PROBE_TEXT], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = load_file(out)
    for kind in KINDS:
        difference = (loaded[repos[kind]] - expected[kind]).abs().max().item()
        assert difference <= TOLERANCE, (kind, difference)
    assert tuple(loaded[repos["task"]].shape) == (1, 2)  # the task's logits, not the LM's
    assert loaded[repos["vocabulary"]].shape[-1] == expected["vocabulary"].shape[-1] > 40  # extended vocabulary


def test_published_task_run_carries_its_language_adapters_and_predicts_the_runs_labels(runs):
    files = hub.publish_files(runs["task_fusion"], "alice/x")
    assert {"task_head.json", "language_adapters/1/adapter.safetensors", "language_adapters/2/lowres_adapter.json",
            } <= set(files)
    assert json.loads(files["task_head.json"])["fusion"] == "dynamic"
    with_vocabulary = hub.publish_files(runs["task"], "alice/x")
    assert "language_adapters/1/tokenizer/tokenizer.json" in with_vocabulary
    assert "language_adapters/2/lowres_adapter.json" not in with_vocabulary
    own = json.loads(runs["predictions"].read_text("utf-8"))
    for kind in ("task", "task_fusion"):
        hub.publish(runs[kind], f"alice/run-kind-labels-{kind.replace('_', '-')}", token=ALICE)
        model, tokenizer = hub.load(f"alice/run-kind-labels-{kind.replace('_', '-')}", token=ALICE)
        assert model.config.id2label == {0: "eng", 1: "nya"} and model.labels == ("eng", "nya")
        assert model.predict(tokenizer, SENTENCES) == own[kind]


def test_load_downloads_only_the_task_runs_allowlisted_paths_and_never_follows_local_ones(runs, tmp_path):
    from lowres_adapters.errors import LowresError
    from lowres_adapters.loading import load_folder

    listed = ["task_head.json", "language_adapters/1/adapter.safetensors", "language_adapters/12/lowres_adapter.json",
              "language_adapters/1/tokenizer/tokenizer.json", "language_adapters/1/evil.py",
              "language_adapters/1/../../x.json", "language_adapters/a/adapter.safetensors",
              "language_adapters/0/adapter.safetensors", "language_adapters/1/sub/lowres_adapter.json",
              "language_adapters/1/tokenizer/x.bin", "language_adapters/1/adapterhub/adapter_config.json"]
    assert hub.allowed_files(listed) == ["language_adapters/1/adapter.safetensors",
                                         "language_adapters/1/tokenizer/tokenizer.json",
                                         "language_adapters/12/lowres_adapter.json", "task_head.json"]
    # a downloaded task folder without its language adapters does not read the local paths in its settings
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("lowres_adapter.json", "adapter.safetensors", "task_head.json"):
        (copy / name).write_bytes((runs["task"] / name).read_bytes())
    with pytest.raises(LowresError, match="were not published with it"):
        load_folder(copy, trusted=False)


def test_a_task_repo_whose_language_adapter_tokenizer_asks_for_code_is_refused(runs):
    from lowres_adapters.errors import LowresError
    from lowres_adapters.testing.hub import running_hub

    files = hub.publish_files(runs["task"], "alice/x")
    files["language_adapters/1/tokenizer/tokenizer_config.json"] = json.dumps(
        {"auto_map": {"AutoTokenizer": ["evil.EvilTokenizer", None]}}).encode()
    files["language_adapters/1/tokenizer/evil.py"] = b"raise SystemExit('ran repo code')\n"
    server = running_hub(os.environ["HF_ENDPOINT"])
    server.store.plant_repo("alice/evil-task", files)
    with pytest.raises(LowresError, match=r"language_adapters/1/tokenizer/tokenizer_config.json asks to run code"):
        hub.load("alice/evil-task", token=ALICE)
    assert not any("evil.py" in path for _, path in server.requests)  # never even downloaded


def test_every_run_names_its_base_exactly(runs):
    from huggingface_hub import HfApi

    from lowres_adapters.artifact import read_metadata

    commit = HfApi(token=ALICE).repo_info("alice/tiny-base-run-kinds").sha
    for kind in KINDS:
        metadata = read_metadata(runs[kind])
        assert metadata.base_model == "alice/tiny-base-run-kinds" and metadata.base_model_revision == commit, kind
        assert metadata.base_model_file == "model.safetensors", kind
        assert "model.embed_tokens.weight" in metadata.base_model_fingerprint["tensors"], kind
