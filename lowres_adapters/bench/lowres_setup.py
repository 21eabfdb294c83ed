"""Setup (c): this library's adapter types, training loop and speed options on a bench workload.

On ``mlm`` it trains the adapter plus the MLM head's dense + layer norm, exactly what (a)'s
``train_adapter`` trains, so the held-out losses compare the optimisations, not trainable sets
(the library's own ``language`` recipe trains the adapter only unless ``train_also`` says more).
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch

from lowres_adapters.bench.setups import RunConfig, StepClock, adapter_for
from lowres_adapters.bench.workloads import WorkloadData, build_model, heldout_loss
from lowres_adapters.training.speed import SpeedOptions, native_bf16, speed_up_job


HEAD_TRANSFORM = ("lm_head.dense.", "lm_head.layer_norm.")


def run_lowres(config: RunConfig, data: WorkloadData, switches: Mapping[str, Any]) -> dict[str, Any]:
    """Train the workload's adapter through the one loop with the speed options in ``switches``."""
    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    from safetensors.torch import save_file

    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    from lowres_adapters.registry import get_registry
    from lowres_adapters.training.lm_objectives import objective_named
    from lowres_adapters.training.loop import TrainingJob, train
    from lowres_adapters.training.settings import LoopSettings

    options = SpeedOptions(**{**SpeedOptions.fast().__dict__, "token_cache": False, "bf16": native_bf16(), **switches})
    model = build_model(config.workload, config.seed)
    kind, adapter_options = adapter_for(config.workload, config.setup)
    spec = get_registry().adapter_type(kind)
    handle = spec.attach(model, "nya", spec.config_class(**adapter_options))
    handle.activate()
    parameters = dict(handle.trainable_parameters())
    objective = objective_named(data.objective)
    if objective.masked:
        # Train what (a) trains: AdapterHub's train_adapter leaves the MLM head transform trainable.
        parameters.update({name: p for name, p in model.named_parameters() if name.startswith(HEAD_TRANSFORM)})
    job = TrainingJob(
        model=handle.model, parameters=parameters,
        train_features=[{"input_ids": ids} for ids in data.train_ids],
        collate=objective.collator(data.tokenizer), loss_fn=objective.loss,
        name=config.setup, freezing=f"adapter {kind} only")
    job = speed_up_job(job, options, objective=objective, tokenizer=data.tokenizer,
                       row_length=config.row_length)
    rows = rows_per_step(config, data) if options.packing else config.batch_size
    settings = LoopSettings(max_steps=config.steps, batch_size=rows, max_length=config.row_length,
                            lr=config.lr, schedule="constant", max_grad_norm=1.0, seed=config.seed, progress=False)
    clock = StepClock(scores_every_slot=not options.masked_only_logits)
    plain_collate = job.collate

    def counting_collate(features: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        batch = plain_collate(features, generator)
        clock.add_batch(batch)
        return batch

    job = dataclasses.replace(job, collate=counting_collate)
    clock.start()
    result = train(job, settings, callbacks=[lambda report: clock.step_done()])
    tensors = {name: tensor.detach().contiguous() for name, tensor in handle.adapter_state_dict().items()}
    tensors.update({name: p.detach().contiguous() for name, p in parameters.items() if name.startswith(HEAD_TRANSFORM)})
    with tempfile.TemporaryDirectory(prefix="lowres-bench-") as folder:
        path = Path(folder) / "adapter.safetensors"
        save_file(tensors, str(path))
        saved = path.stat().st_size
    return {**clock.summary(), "adapter": f"{kind} (lowres)", "rows_per_step": rows,
            "trainable_parameters": result.trainable_parameters,
            "adapter_bytes": saved, "heldout_loss": heldout_loss(handle.model, data),
            "scored_vocab": _scored_vocab(job, model), "model_config": model.config,
            "options": dict(options.__dict__)}


def rows_per_step(config: RunConfig, data: WorkloadData) -> int:
    """Return the packed rows holding as many real tokens as ``batch_size`` average examples.

    The baselines take ``batch_size`` examples a step; packed rows hold ~``row_length`` real
    tokens each, so the same number of rows would feed (c) about twice the text per step. Equal
    real tokens per step keep the held-out losses and the memory comparable.
    """
    mean_length = sum(len(ids) for ids in data.train_ids) / len(data.train_ids)
    return max(1, round(config.batch_size * mean_length / config.row_length))


def _scored_vocab(job: Any, model: Any) -> int:
    trim = getattr(job.loss_fn, "trim", None)
    return trim.size if trim is not None else model.get_output_embeddings().out_features
