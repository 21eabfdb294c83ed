"""Resumable checkpoints: trained weights, optimiser, scheduler, RNG states and data position.

Layout: ``RUN_DIR/checkpoints/step-N/`` holding ``trainable.safetensors`` (the trained tensors by
parameter name), ``best.safetensors`` (the best evaluation's weights, when tracked),
``optimizer.pt``, ``scheduler.pt``, ``rng-rank<R>.pt`` (one per process) and ``state.json``
(:class:`LoopState`). A checkpoint is written under a temporary name and renamed when complete,
so a run killed at any moment leaves only complete checkpoints. Nothing is unpickled on load:
``.pt`` files are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from safetensors.torch import load_file

from lowres_adapters.artifact import atomic_save_tensors
from lowres_adapters.errors import LowresError
from lowres_adapters.io import atomic_write_text
from lowres_adapters.training.distributed import ProcessInfo

CHECKPOINTS_DIR = "checkpoints"
_STEP_DIR = re.compile(r"^step-(\d+)$")


@dataclass
class LoopState:
    """Where the loop stands; everything besides tensors that a resume needs.

    Attributes:
        step: Optimiser steps done.
        epoch: Current pass over the training examples.
        position: Examples of the current epoch's order already consumed.
        tokens_seen: Real input tokens processed (all processes).
        elapsed_seconds: Training time so far (excluding time between a crash and the resume).
        best_eval_loss: Lowest validation loss so far, or None.
        best_step: Step of ``best_eval_loss``.
        evals_without_improvement: Evaluations since the last improvement (early stopping).
        stopped_early: True once early stopping fired.
    """

    step: int = 0
    epoch: int = 0
    position: int = 0
    tokens_seen: int = 0
    elapsed_seconds: float = 0.0
    best_eval_loss: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    stopped_early: bool = False


def capture_rng_state() -> dict[str, Any]:
    """Return the Python, NumPy and torch RNG states as tensors and plain values."""
    numpy_state = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
        "numpy": {"keys": torch.from_numpy(numpy_state[1].astype(np.int64)), "pos": int(numpy_state[2]),
                  "has_gauss": int(numpy_state[3]), "cached_gaussian": float(numpy_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Put back RNG states captured by :func:`capture_rng_state`."""
    python = state["python"]
    random.setstate((python["version"], tuple(int(x) for x in python["internal"].tolist()), python["gauss_next"]))
    numpy = state["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_steps(run_dir: Path) -> list[int]:
    """Return the steps of the complete checkpoints in ``run_dir``, ascending."""
    folder = Path(run_dir) / CHECKPOINTS_DIR
    if not folder.is_dir():
        return []
    steps = [int(m.group(1)) for p in folder.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return sorted(steps)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """Return the newest complete checkpoint folder, or None."""
    steps = checkpoint_steps(run_dir)
    return Path(run_dir) / CHECKPOINTS_DIR / f"step-{steps[-1]}" if steps else None


def save_checkpoint(run_dir: Path, state: LoopState, parameters: Mapping[str, torch.nn.Parameter],
                    optimizer: torch.optim.Optimizer, scheduler: Any, process: ProcessInfo,
                    best_tensors: Mapping[str, torch.Tensor] | None = None, keep: int = 1) -> Path:
    """Write a checkpoint of ``state`` atomically (every process must call this) and prune old ones.

    Returns:
        The checkpoint folder.
    """
    folder = Path(run_dir) / CHECKPOINTS_DIR
    final = folder / f"step-{state.step}"
    staging = folder / f".tmp-step-{state.step}"
    if process.is_main:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    process.barrier()
    torch.save(capture_rng_state(), staging / f"rng-rank{process.rank}.pt")
    process.barrier()
    if process.is_main:
        atomic_save_tensors(staging / "trainable.safetensors", {k: p.detach() for k, p in parameters.items()})
        if best_tensors is not None:
            atomic_save_tensors(staging / "best.safetensors", best_tensors)
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        torch.save(scheduler.state_dict(), staging / "scheduler.pt")
        atomic_write_text(staging / "state.json", json.dumps(asdict(state), indent=2) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        for old in checkpoint_steps(run_dir)[:-keep]:
            shutil.rmtree(folder / f"step-{old}", ignore_errors=True)
    process.barrier()
    return final


def load_checkpoint(path: Path, parameters: Mapping[str, torch.nn.Parameter], optimizer: torch.optim.Optimizer,
                    scheduler: Any, process: ProcessInfo) -> tuple[LoopState, dict[str, torch.Tensor] | None]:
    """Restore weights, optimiser, scheduler and this process's RNG state from ``path``.

    Returns:
        ``(state, best_tensors)``; ``best_tensors`` is None when the checkpoint holds none.

    Raises:
        LowresError: When the checkpoint does not match the parameters being trained.
    """
    path = Path(path)
    tensors = load_file(str(path / "trainable.safetensors"))
    if set(tensors) != set(parameters):
        raise LowresError(f"{path}: checkpoint holds different parameters than this run trains "
                          "(different adapter or settings); use a new --output or drop --resume")
    with torch.no_grad():
        for name, parameter in parameters.items():
            if tensors[name].shape != parameter.shape:
                raise LowresError(f"{path}: {name} has shape {tuple(tensors[name].shape)}, "
                                  f"this run trains {tuple(parameter.shape)}")
            parameter.copy_(tensors[name])
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    rng_file = path / f"rng-rank{process.rank}.pt"
    if not rng_file.exists():
        rng_file = path / "rng-rank0.pt"
    restore_rng_state(torch.load(rng_file, weights_only=True))
    state = LoopState(**json.loads((path / "state.json").read_text("utf-8")))
    best_file = path / "best.safetensors"
    best = load_file(str(best_file)) if best_file.exists() else None
    return state, best


def remove_checkpoints(run_dir: Path) -> None:
    """Delete ``RUN_DIR/checkpoints`` (after a completed run)."""
    shutil.rmtree(Path(run_dir) / CHECKPOINTS_DIR, ignore_errors=True)
