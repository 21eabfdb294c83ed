"""Setup (c): this library's adapter types, training loop and speed options on a bench workload."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import torch

from lowres_adapters.bench.setups import RunConfig, StepClock, adapter_for
from lowres_adapters.bench.workloads import WorkloadData, build_model, heldout_loss
from lowres_adapters.training.speed import SpeedOptions, speed_up_job


def run_lowres(config: RunConfig, data: WorkloadData, switches: Mapping[str, bool]) -> dict[str, Any]:
    """Train the workload's adapter through the one loop with the speed options in ``switches``."""
    from safetensors.torch import save_file

    from lowres_adapters.registry import get_registry
    from lowres_adapters.training.batching import collator_for_objective
    from lowres_adapters.training.loop import TrainingJob, train
    from lowres_adapters.training.objectives import loss_for_objective
    from lowres_adapters.training.settings import LoopSettings

    options = SpeedOptions(**{**SpeedOptions().__dict__, "token_cache": False, **switches})
    model = build_model(config.workload, config.seed)
    kind, adapter_options = adapter_for(config.workload, config.setup)
    spec = get_registry().adapter_type(kind)
    handle = spec.attach(model, "nya", spec.config_class(**adapter_options))
    handle.activate()
    job = TrainingJob(
        model=handle.model, parameters=dict(handle.trainable_parameters()),
        train_features=[{"input_ids": ids} for ids in data.train_ids],
        collate=collator_for_objective(data.objective, data.tokenizer), loss_fn=loss_for_objective(data.objective),
        name=config.setup, freezing=f"adapter {kind} only")
    job = speed_up_job(job, options, objective=data.objective, tokenizer=data.tokenizer,
                       row_length=config.row_length)
    settings = LoopSettings(max_steps=config.steps, batch_size=config.batch_size, max_length=config.row_length,
                            lr=config.lr, schedule="constant", max_grad_norm=1.0, seed=config.seed, progress=False)
    clock = StepClock(scores_every_slot=not options.masked_only_logits)
    plain_collate = job.collate

    def counting_collate(features: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        batch = plain_collate(features, generator)
        clock.add_batch(batch)
        return batch

    job = dataclasses.replace(job, collate=counting_collate)
    clock.started = time.perf_counter()
    result = train(job, settings, callbacks=[lambda report: clock.step_done()])
    tensors = {name: tensor.detach().contiguous() for name, tensor in handle.adapter_state_dict().items()}
    with tempfile.TemporaryDirectory(prefix="lowres-bench-") as folder:
        path = Path(folder) / "adapter.safetensors"
        save_file(tensors, str(path))
        saved = path.stat().st_size
    return {**clock.summary(), "adapter": f"{kind} (lowres)", "trainable_parameters": result.trainable_parameters,
            "adapter_bytes": saved, "heldout_loss": heldout_loss(handle.model, data),
            "scored_vocab": _scored_vocab(job, model), "model_config": model.config,
            "options": dict(options.__dict__)}


def _scored_vocab(job: Any, model: Any) -> int:
    trim = getattr(job.loss_fn, "trim", None)
    return trim.size if trim is not None else model.get_output_embeddings().out_features
