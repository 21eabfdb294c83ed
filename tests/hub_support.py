"""Helpers for the Hub tests: a throwaway adapter type, tiny run folders, a fresh-process loader.

The toy adapter type (``toy_bias``: a learned vector added to the input embeddings) keeps these
tests independent of the built-in adapter types; its tensor shape follows the base model's hidden
size, so a mismatched base model is detected exactly as for a real adapter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from lowres_adapters import hookimpl
from lowres_adapters.artifact import ArtifactMetadata, write_artifact
from lowres_adapters.registry import Registry, reset_registry
from lowres_adapters.specs import AdapterType

TOY_DISTRIBUTION = "lowres-adapter-toy"
TOY_VERSION = "1.0"
PROBE_TEXT = "Pachiyambi Mulungu adalenga kumwamba"
ALICE = "hf_loopback_alice_token"
BOB = "hf_loopback_bob_token"
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
"""Not passed on to child processes unless a test asks (another conftest may set them session-wide)."""


@dataclass(frozen=True)
class ToyBiasConfig:
    """Settings of the toy adapter.

    Attributes:
        init_scale: Standard deviation of the initial bias.
    """

    init_scale: float = 0.5


class ToyBiasHandle:
    """An adapter made of one (hidden,) vector added to every input embedding."""

    def __init__(self, model: Any, name: str, config: ToyBiasConfig) -> None:
        import torch

        self.model, self.name, self.config = model, name, config
        hidden = model.get_input_embeddings().weight.shape[1]
        self.bias = torch.nn.Parameter(torch.randn(hidden) * config.init_scale)  # (hidden,)
        model.register_parameter(f"toy_bias_{name}", self.bias)
        model.get_input_embeddings().register_forward_hook(lambda module, args, output: output + self.bias)
        self.loads = 0

    def activate(self) -> None:
        """Freeze everything but the bias."""
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.bias.requires_grad_(True)

    def trainable_parameters(self) -> dict[str, Any]:
        """Return the bias."""
        return {f"toy_bias_{self.name}": self.bias}

    def adapter_state_dict(self) -> dict[str, Any]:
        """Return the bias tensor."""
        return {"bias": self.bias.detach().clone()}

    def load_adapter_state_dict(self, tensors: Mapping[str, Any]) -> None:
        """Copy the saved bias in (counts calls, so tests can prove nothing was loaded)."""
        import torch

        self.loads += 1
        with torch.no_grad():
            self.bias.copy_(tensors["bias"])

    def save_native(self, directory: Path) -> list[str]:
        """Write nothing: the toy type has no upstream format."""
        return []


ATTACHED: list[ToyBiasHandle] = []


def attach_toy(model: Any, name: str, config: ToyBiasConfig) -> ToyBiasHandle:
    """Attach the toy adapter (and remember the handle for inspection)."""
    handle = ToyBiasHandle(model, name, config)
    ATTACHED.append(handle)
    return handle


class ToyPlugin:
    """The throwaway plugin registering ``toy_bias``."""

    @staticmethod
    @hookimpl
    def register_adapter_types(register: Any) -> None:
        register(AdapterType(name="toy_bias", config_class=ToyBiasConfig, attach=attach_toy,
                             description="A learned bias on the input embeddings (tests only)."))


def use_toy_registry() -> Registry:
    """Install a process-wide registry whose only adapter type is the toy one (with the built-in
    commands, so the CLI runs) and return it."""
    import importlib

    registry = Registry(strict=True, entry_points=False)
    registry.add_plugin(importlib.import_module("lowres_adapters.cli"))  # built-in commands (`lowres load`, ...)
    registry.add_plugin(ToyPlugin(), name="toy", distribution=TOY_DISTRIBUTION, version=TOY_VERSION)
    reset_registry(registry)
    return registry


def save_tiny_base(directory: Path, seed: int = 0, **overrides: Any) -> Path:
    """Save a tiny llama and its tokenizer to ``directory`` (its path is the base model id)."""
    from lowres_adapters.testing.tiny import tiny_model

    model, tokenizer = tiny_model("llama", seed=seed, **overrides)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def publish_tiny_base(base_dir: Path, repo_id: str) -> str:
    """Upload a tiny base model folder to the loopback Hub (public, as alice) and return its id.

    A downloaded adapter may only name a Hub id as its base model (never a local path), so Hub
    tests record this id in their metadata.
    """
    from huggingface_hub import HfApi

    api = HfApi(token=ALICE)
    api.create_repo(repo_id, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=str(base_dir))
    return repo_id


def make_run_folder(run_dir: Path, base_dir: Path, seed: int = 1, language: str = "nya",
                    extra_tensors: Mapping[str, Any] | None = None, base_model: str | None = None) -> Path:
    """Write a run folder with a toy adapter on the tiny base model, plus things never to publish.

    ``base_model`` is what the metadata records (the folder ``base_dir`` by default; a Hub id from
    :func:`publish_tiny_base` for folders that go through the Hub).
    """
    import torch

    from lowres_adapters.models import load_base_model

    torch.manual_seed(seed)
    model, _ = load_base_model(str(base_dir))
    handle = attach_toy(model, "lang", ToyBiasConfig())
    metadata = ArtifactMetadata(
        adapter_type="toy_bias", adapter_name="lang", adapter_config={"init_scale": 0.5},
        plugin=f"{TOY_DISTRIBUTION}=={TOY_VERSION}", base_model=base_model or str(base_dir), language=language,
        script="Latn", recipe="language", recipe_settings={"max_steps": 5, "learning_rate": 0.001},
        metrics={"base": {"bits_per_char": 7.9, "perplexity": 250.0},
                 "adapted": {"bits_per_char": 6.5, "perplexity": 90.0}, "eval_split": "test"},
        datasets=["tiny-corpus"],
    )
    write_artifact(run_dir, handle, metadata, extra_tensors=extra_tensors)
    (run_dir / "metrics.json").write_text(json.dumps(metadata.metrics), "utf-8")
    (run_dir / "checkpoints" / "step-5").mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoints" / "step-5" / "optimizer.safetensors").write_bytes(b"not for the Hub")
    (run_dir / "train_log.jsonl").write_text('{"step": 1, "loss": 5.0}\n', "utf-8")
    (run_dir / "run_config.json").write_text('{"recipe": "language"}\n', "utf-8")
    return run_dir


def probe_logits(model: Any, tokenizer: Any) -> Any:
    """Return the model's logits on :data:`PROBE_TEXT` (what 'identical outputs' compares)."""
    import torch

    ids = tokenizer(PROBE_TEXT, return_tensors="pt").input_ids  # (1, seq)
    with torch.no_grad():
        return model(input_ids=ids).logits  # (1, seq, vocab)


_CHILD = """
import sys
sys.path.insert(0, {tests!r})
import hub_support
from safetensors.torch import save_file
if {toy!r}:
    hub_support.use_toy_registry()
from lowres_adapters import load
model, tokenizer = load({target!r}, **{kwargs!r})
save_file({{"logits": hub_support.probe_logits(model, tokenizer).contiguous()}}, {out!r})
"""


def load_in_fresh_process(target: str, out: Path, env: Mapping[str, str] | None = None, toy: bool = True,
                          **kwargs: Any) -> subprocess.CompletedProcess:
    """Run ``load(target, **kwargs)`` in a new Python process; its probe logits go to ``out``.

    With ``toy`` the child's registry holds only the toy adapter type; else the installed plugins.
    """
    code = _CHILD.format(tests=str(Path(__file__).parent), target=target, kwargs=kwargs, out=str(out), toy=toy)
    environment = {key: value for key, value in os.environ.items() if key not in OFFLINE_VARIABLES}
    environment.update({"OMP_NUM_THREADS": "1", **(env or {})})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                          timeout=300)
