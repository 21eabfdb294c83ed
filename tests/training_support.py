"""Helpers shared by the training tests: a throwaway adapter type and tiny model folders.

The ``toy`` adapter adds a small bottleneck (hidden -> rank -> hidden, zero-initialised up
projection) on the input embeddings' output through a forward hook, so it works on any tiny
transformers model and its training visibly changes the loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from lowres_adapters import hookimpl
from lowres_adapters.registry import Registry, reset_registry
from lowres_adapters.specs import AdapterType


@dataclass(frozen=True)
class ToyConfig:
    """Settings of the toy adapter.

    Attributes:
        rank: Bottleneck width.
    """

    rank: int = 4


class ToyBottleneck(torch.nn.Module):
    """x + up(tanh(down(x))) on the embeddings' output."""

    def __init__(self, hidden: int, rank: int) -> None:
        super().__init__()
        self.down = torch.nn.Linear(hidden, rank)
        self.up = torch.nn.Linear(rank, hidden)
        torch.nn.init.zeros_(self.up.weight)
        torch.nn.init.zeros_(self.up.bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states + self.up(torch.tanh(self.down(hidden_states)))


class ToyHandle:
    """The :class:`~lowres_adapters.specs.AttachedAdapter` of the toy adapter."""

    def __init__(self, model: torch.nn.Module, name: str, config: ToyConfig) -> None:
        self.name, self.config, self.model = name, config, model
        self.module_name = f"toy_{name}"
        module = ToyBottleneck(model.config.hidden_size, config.rank)
        model.add_module(self.module_name, module)
        model.get_input_embeddings().register_forward_hook(lambda _m, _i, output: module(output))
        self.module = module

    def activate(self) -> None:
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        for parameter in self.module.parameters():
            parameter.requires_grad_(True)

    def trainable_parameters(self) -> dict[str, torch.nn.Parameter]:
        return {f"{self.module_name}.{name}": p for name, p in self.module.named_parameters()}

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        return {name: p.detach().clone() for name, p in self.trainable_parameters().items()}

    def load_adapter_state_dict(self, tensors: Mapping[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, parameter in self.trainable_parameters().items():
                parameter.copy_(tensors[name])

    def save_native(self, directory: Path) -> list[str]:
        return []


class ToyPlugin:
    """A throwaway plugin registering the ``toy`` adapter type."""

    @hookimpl
    def register_adapter_types(self, register: Any) -> None:
        register(AdapterType(name="toy", config_class=ToyConfig, attach=ToyHandle,
                             description="toy bottleneck on the embeddings (tests only)"))


def install_toy_registry() -> Registry:
    """Make the process-wide registry a strict one holding the ``toy`` adapter type as the only adapter type
    (with the built-in recipes and commands)."""
    import importlib

    registry = Registry(strict=True, entry_points=False)
    for module in ("lowres_adapters.training.recipes", "lowres_adapters.cli"):  # built-in recipes, commands
        registry.add_plugin(importlib.import_module(module))
    registry.add_plugin(ToyPlugin(), name="toy_plugin")
    reset_registry(registry)
    return registry


def save_tiny_model(directory: Path, kind: str = "llama") -> Path:
    """Save a tiny random model and its tokenizer to ``directory`` (usable as ``--model``)."""
    from lowres_adapters.testing.tiny import tiny_model

    model, tokenizer = tiny_model(kind)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def write_corpus(directory: Path, repeat: int = 4) -> tuple[Path, Path]:
    """Write a small training text file and a held-out file; return their paths."""
    from lowres_adapters.testing.tiny import TINY_CORPUS

    train = directory / "train.txt"
    held_out = directory / "heldout.txt"
    train.write_text("\n".join(list(TINY_CORPUS) * repeat) + "\n", encoding="utf-8")
    held_out.write_text("\n".join(TINY_CORPUS[:3]) + "\n", encoding="utf-8")
    return train, held_out


def reference_run(run_dir: Path, **options) -> dict[str, torch.Tensor]:
    """Run the uninterrupted reference in this process, with the subprocesses' one thread."""
    from _training_script import run_training

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_training(run_dir, **options)
    finally:
        torch.set_num_threads(threads)


def tiny_run_files(tmp_path: Path) -> dict[str, str]:
    """Install the toy registry, save a tiny model, write a corpus and English-Chichewa pairs; return
    the adapt() file arguments (``model``, ``text``, ``eval_text``, ``pairs``, ``eval_pairs``)."""
    from lowres_adapters.testing.tiny import TINY_CORPUS

    install_toy_registry()
    model_dir = save_tiny_model(tmp_path / "model")
    train, held_out = write_corpus(tmp_path)
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{en}\t{ny}\n" for en, ny in zip(TINY_CORPUS[1::2], TINY_CORPUS[0::2])) * 3,
                     encoding="utf-8")
    return {"model": str(model_dir), "text": str(train), "eval_text": str(held_out), "pairs": str(pairs),
            "eval_pairs": str(pairs)}


def record_training_batches(monkeypatch: Any, seen: Any) -> None:
    """Patch ``lowres adapt``'s training call so that every batch it collates (the rows' ids) goes to
    ``seen.append`` and a run stops (KeyboardInterrupt) after step ``seen.crash_at`` (0: never)."""
    import lowres_adapters.training.adapt as adapt_module

    original = adapt_module.train

    def recording_train(job, settings, run_dir=None, **kwargs):
        collate = job.collate

        def recording_collate(features, generator):
            seen.append([list(feature["input_ids"]) for feature in features])
            return collate(features, generator)

        def crash(report):
            if report.step == seen.crash_at:
                raise KeyboardInterrupt

        job = type(job)(**{**job.__dict__, "collate": recording_collate})
        return original(job, settings, run_dir, **{**kwargs, "callbacks": [*kwargs.get("callbacks", ()), crash]})

    monkeypatch.setattr(adapt_module, "train", recording_train)
