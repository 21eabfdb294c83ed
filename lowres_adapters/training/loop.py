"""The one training loop every recipe runs.

A recipe supplies a :class:`TrainingJob`: the model, the parameters that train, tokenised
features, a collator and ``loss_fn(model, batch) -> (mean loss, n_predicted_tokens)``. The loop
does the rest: data order, micro-batches and gradient accumulation, token-weighted loss across
micro-batches and processes, AdamW with warm-up + cosine/linear decay, clipping, evaluation with
early stopping, checkpoints that resume exactly, a JSONL log and a progress bar.

Data order: epoch ``e`` visits the features in ``randperm(seed, e)`` order; a global batch of
``batch_size`` features is cut into ``grad_accum_steps x processes`` micro-batches, and process
``r`` takes the ``r``-th contiguous run of them. The collator's generator is seeded from
``(seed, step, micro-batch index)``, so a run resumed from a checkpoint, or split over processes
as ``1 x accumulation 2`` vs ``2 x accumulation 1``, sees the same batches and masks.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from lowres_adapters.devices import (
    LOW_PRECISION,
    cast_floating_,
    choose_device,
    choose_precision,
    model_device,
    move_parameters_,
    restore_dtypes_,
    to_device,
    under_autocast,
)
from lowres_adapters.errors import LowresError
from lowres_adapters.training.checkpoint import (
    LoopState,
    latest_checkpoint,
    load_checkpoint,
    remove_checkpoints,
    save_checkpoint,
)
from lowres_adapters.training.distributed import DataParallel, ProcessInfo, current_process
from lowres_adapters.training.job import LoopResult, StepReport, TrainingJob
from lowres_adapters.training.packing import examples_in

__all__ = ["LoopResult", "StepReport", "TrainingJob", "evaluate_loss", "seed_everything", "select_parameters", "train"]
from lowres_adapters.training.run_log import RunLog
from lowres_adapters.training.schedules import build_scheduler
from lowres_adapters.training.settings import LoopSettings


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (adapter initialisation, dropout)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def select_parameters(model: torch.nn.Module, patterns: Sequence[str]) -> dict[str, torch.nn.Parameter]:
    """Return the parameters of ``model`` whose names match any glob in ``patterns``.

    Raises:
        LowresError: When a pattern matches nothing (a typo would silently train nothing).
    """
    named = dict(model.named_parameters())
    chosen: dict[str, torch.nn.Parameter] = {}
    for pattern in patterns:
        matches = [name for name in named if fnmatch.fnmatchcase(name, pattern)]
        if not matches:
            raise LowresError(f"train_also pattern {pattern!r} matches no parameter of the model")
        chosen.update({name: named[name] for name in matches})
    return chosen


def count_parameters(model: torch.nn.Module) -> int:
    """Return the number of distinct parameters of ``model`` (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())


def describe_trainable(trainable: int, total: int, freezing: str) -> str:
    """Return the start-of-run line: trainable count, share of the model and the freezing strategy."""
    share = 100.0 * trainable / total if total else 0.0
    return f"trainable parameters: {trainable:,} of {total:,} ({share:.3f}%); trains: {freezing}"


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """Return the visiting order of ``n`` features in ``epoch`` (a seeded permutation)."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


def micro_batch_generator(seed: int, step: int, micro_index: int) -> torch.Generator:
    """Return the collator's generator for micro-batch ``micro_index`` of optimiser step ``step``."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + step) * 10_007 + micro_index) % 2**63)


class _Order:
    """Draws global batches in epoch order and records the position in :class:`LoopState`."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed = n, seed
        self._cached: tuple[int, list[int]] | None = None

    def _order(self, epoch: int) -> list[int]:
        if self._cached is None or self._cached[0] != epoch:
            self._cached = (epoch, epoch_order(self.n, self.seed, epoch))
        return self._cached[1]

    def next_batch(self, state: LoopState, size: int) -> list[int]:
        indices: list[int] = []
        while len(indices) < size:
            taken = self._order(state.epoch)[state.position: state.position + size - len(indices)]
            indices.extend(taken)
            state.position += len(taken)
            if state.position >= self.n:
                state.epoch, state.position = state.epoch + 1, 0
        return indices


def _train_sizes(features: Sequence[Any]) -> dict[str, int | None]:
    """Return the log's ``train_examples`` and ``train_rows`` (None while a background pass still adds rows)."""
    known = features.known_sizes() if hasattr(features, "known_sizes") else (len(features), examples_in(features))
    rows, examples = known if known is not None else (None, None)
    return {"train_examples": examples, "train_rows": rows}


def _micro_batch_size(settings: LoopSettings, process: ProcessInfo) -> int:
    parts = settings.grad_accum_steps * process.world_size
    if settings.batch_size % parts:
        raise LowresError(f"batch_size {settings.batch_size} must be divisible by grad_accum_steps "
                          f"x processes = {parts}")
    return settings.batch_size // parts


def _token_weighted(loss_sum: torch.Tensor, count: torch.Tensor) -> float:
    return float(loss_sum / count) if float(count) > 0 else float("nan")


def evaluate_loss(job: TrainingJob, settings: LoopSettings, process: ProcessInfo) -> float:
    """Return the token-weighted validation loss on the first ``eval_examples`` features."""
    features = list(job.eval_features or [])[: settings.eval_examples]
    micro = max(1, settings.batch_size // (settings.grad_accum_steps * process.world_size))
    chunks = [features[i: i + micro] for i in range(0, len(features), micro)]
    totals = torch.zeros(2, dtype=torch.float64)  # (loss sum, predicted tokens)
    was_training = job.model.training
    job.model.eval()
    device = model_device(job.model)
    with torch.no_grad():
        for index in range(process.rank, len(chunks), process.world_size):
            batch = to_device(job.collate(chunks[index], micro_batch_generator(settings.seed, -1, index)), device)
            loss, count = job.loss_fn(job.model, batch)
            totals += torch.tensor([float(loss) * int(count), int(count)], dtype=torch.float64)
    job.model.train(was_training)
    totals = process.total(totals)
    return _token_weighted(totals[0], totals[1])


def _freeze_all_but(model: torch.nn.Module, parameters: Mapping[str, torch.nn.Parameter]) -> None:
    keep = {id(p) for p in parameters.values()}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in keep)
    for parameter in parameters.values():
        parameter.requires_grad_(True)


def train(job: TrainingJob, settings: LoopSettings, run_dir: Path | None = None, *, resume: bool = False,
          callbacks: Sequence[Callable[[StepReport], None]] = (), process: ProcessInfo | None = None) -> LoopResult:
    """Train ``job.parameters`` of ``job.model`` and return how it went.

    Args:
        job: Model, trained parameters, features, collator and loss from a recipe.
        settings: The resolved loop settings.
        run_dir: Where ``train_log.jsonl`` and ``checkpoints/`` go; None keeps nothing on disk
            (no log, no checkpoints).
        resume: Continue from the newest checkpoint in ``run_dir`` if there is one.
        callbacks: Called after every optimiser step with a :class:`StepReport`.
        process: This process's place; found from the launcher's environment when None.

    Raises:
        LowresError: On an empty training set, a batch size that does not split over the
            processes, or a checkpoint that does not fit.
    """
    process = process or current_process()
    if not job.train_features:
        raise LowresError(f"{job.name}: no training examples")
    if not job.parameters:
        raise LowresError(f"{job.name}: nothing to train (the adapter has no trainable parameters)")
    run_dir = Path(run_dir) if run_dir is not None else None
    micro = _micro_batch_size(settings, process)
    # len() of a store still being tokenised waits for the whole pass: only an epoch-based run asks
    total_steps = settings.max_steps or settings.total_steps(len(job.train_features))
    names = sorted(job.parameters)
    parameters = [job.parameters[name] for name in names]
    _freeze_all_but(job.model, job.parameters)
    job, scaler = _place(job, settings, process)
    # a base loaded in bf16/fp16 (a GPU run, devices.base_dtype): the optimiser updates float32 master copies
    held_in_low_precision = cast_floating_([p for p in parameters if p.dtype in LOW_PRECISION], torch.float32)
    seed_everything(settings.seed)

    optimizer = torch.optim.AdamW(parameters, lr=settings.lr, betas=(settings.adam_beta1, settings.adam_beta2),
                                  eps=settings.adam_eps, weight_decay=settings.weight_decay)
    replicas = DataParallel.build(job.model, job.loss_fn, optimizer, parameters, process, model_device(job.model))
    scheduler = build_scheduler(optimizer, settings.schedule, total_steps, settings.warmup_for(total_steps),
                                settings.min_lr_ratio)
    state, best, resumed_from = LoopState(), None, None
    checkpoint = latest_checkpoint(run_dir) if (resume and run_dir is not None) else None
    if checkpoint is not None:
        state, best = load_checkpoint(checkpoint, {n: job.parameters[n] for n in names}, optimizer, scheduler, process)
        resumed_from = state.step
    log = RunLog(run_dir / "train_log.jsonl" if (run_dir is not None and process.is_main) else None,
                 keep_until_step=resumed_from)

    trainable = sum(p.numel() for p in parameters)
    total_parameters = count_parameters(job.model)
    show = settings.progress and process.is_main
    if show:
        print(describe_trainable(trainable, total_parameters, job.freezing), file=sys.stderr)
        for note in replicas.notes:
            print(note, file=sys.stderr)
        if resumed_from is not None:
            print(f"resuming {job.name} from step {resumed_from} ({checkpoint})", file=sys.stderr)
    log.write({"event": "start", "stage": job.name, "total_steps": total_steps, "trainable_parameters": trainable,
               "total_parameters": total_parameters, "processes": process.world_size,
               "resumed_from": resumed_from, **_train_sizes(job.train_features)})

    bar = tqdm(total=total_steps, initial=state.step, desc=job.name, disable=not show, dynamic_ncols=True,
               file=sys.stderr)
    order = (job.train_features.batch_order(settings.seed) if hasattr(job.train_features, "batch_order")
             else _Order(len(job.train_features), settings.seed))
    history: list[dict[str, Any]] = []
    last_loss, last_eval = float("nan"), None
    job.model.train()
    started = time.perf_counter() - state.elapsed_seconds
    last_saved = time.perf_counter()
    while state.step < total_steps and not state.stopped_early:
        global_indices = order.next_batch(state, settings.batch_size)
        totals = _accumulate_gradients(job, replicas, settings, process, state.step, global_indices, micro, scaler)
        totals = _apply_update(replicas, settings, process, totals, scaler)
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        state.step += 1
        state.tokens_seen += int(totals[2])
        state.elapsed_seconds = time.perf_counter() - started
        last_loss = _token_weighted(totals[0], totals[1])
        tokens_per_second = state.tokens_seen / max(state.elapsed_seconds, 1e-9)
        record = {"event": "train", "step": state.step, "loss": last_loss, "lr": lr, "tokens": state.tokens_seen,
                  "tokens_per_s": round(tokens_per_second, 1), "elapsed_s": round(state.elapsed_seconds, 3)}
        if state.step % settings.log_every == 0 or state.step == total_steps:
            log.write(record)
        history.append(record)
        bar.update(1)
        bar.set_postfix(loss=f"{last_loss:.3f}", tok_s=f"{tokens_per_second:.0f}")

        eval_now = job.eval_features and (
            (settings.eval_every and state.step % settings.eval_every == 0) or state.step == total_steps)
        if eval_now:
            last_eval = evaluate_loss(job, settings, process)
            _track_best(state, last_eval, settings)
            if state.best_step == state.step:
                best = {n: job.parameters[n].detach().clone() for n in names}
            log.write({"event": "eval", "step": state.step, "eval_loss": last_eval,
                       "best_eval_loss": state.best_eval_loss, "best_step": state.best_step})
            history.append({"event": "eval", "step": state.step, "eval_loss": last_eval})
        state.elapsed_seconds = time.perf_counter() - started
        if (run_dir is not None and state.step < total_steps and not state.stopped_early
                and _checkpoint_due(settings, state.step, time.perf_counter() - last_saved, process)):
            last_saved = time.perf_counter()
            save_checkpoint(run_dir, state, {n: job.parameters[n] for n in names}, optimizer, scheduler, process,
                            best_tensors=best if settings.early_stopping_patience else None,
                            keep=settings.keep_checkpoints)
        report = StepReport(state.step, total_steps, last_loss, lr, state.tokens_seen,
                            last_eval if eval_now else None)
        for callback in callbacks:
            callback(report)
    bar.close()

    if state.stopped_early and settings.restore_best and best is not None and state.best_step != state.step:
        with torch.no_grad():
            for name in names:
                job.parameters[name].copy_(best[name])
        last_eval = state.best_eval_loss
    log.write({"event": "end", "stage": job.name, "step": state.step, "stopped_early": state.stopped_early,
               "best_step": state.best_step, "elapsed_s": round(state.elapsed_seconds, 3)})
    process.barrier()
    if run_dir is not None and process.is_main and not settings.keep_checkpoints_at_end:
        remove_checkpoints(run_dir)
    process.barrier()
    restore_dtypes_(held_in_low_precision)  # the trained weights rejoin the base's dtype
    job.model.eval()
    return LoopResult(
        steps=state.step, total_steps=total_steps, final_loss=last_loss, eval_loss=last_eval,
        best_eval_loss=state.best_eval_loss, best_step=state.best_step, stopped_early=state.stopped_early,
        resumed_from=resumed_from, seconds=state.elapsed_seconds, tokens_seen=state.tokens_seen,
        trainable_parameters=trainable, total_parameters=total_parameters, history=history,
    )


def _place(job: TrainingJob, settings: LoopSettings, process: ProcessInfo) -> tuple[TrainingJob, Any]:
    """Move the model to the run's device and compute the loss in the run's precision.

    Returns:
        The job (its loss under autocast unless fp32) and the fp16 loss scaler (None otherwise).
    """
    device = choose_device(settings.device, local_index=process.local_rank)
    precision = choose_precision(settings.precision, device, cpu_bf16=settings.bf16)
    job.model.to(device)  # in place: the trained Parameter objects stay the same
    move_parameters_(job.parameters.values(), device)  # trained parameters outside the model (a task head)
    if device.type != "cpu" or settings.precision != "auto":  # the CPU's auto bf16 is the speed switch's own
        job = dataclasses.replace(job, loss_fn=under_autocast(job.loss_fn, device, precision))
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    return job, scaler


def _accumulate_gradients(job: TrainingJob, replicas: DataParallel, settings: LoopSettings, process: ProcessInfo,
                          step: int, global_indices: Sequence[int], micro: int, scaler: Any = None) -> torch.Tensor:
    """Backpropagate this process's micro-batches of one step (summed losses, not means).

    Returns:
        This process's ``(loss sum, predicted tokens, input tokens)``, float64.
    """
    totals = torch.zeros(3, dtype=torch.float64)  # (loss sum, predicted tokens, input tokens)
    device = model_device(job.model)
    for accum in range(settings.grad_accum_steps):
        micro_index = process.rank * settings.grad_accum_steps + accum
        chunk = global_indices[micro_index * micro: (micro_index + 1) * micro]
        batch = to_device(job.collate([job.train_features[i] for i in chunk],
                                      micro_batch_generator(settings.seed, step, micro_index)), device)
        with replicas.micro_batch(last=accum == settings.grad_accum_steps - 1):
            loss, count = replicas.loss(batch)
            count = int(count)
            if replicas.needs_backward(count):
                replicas.backward(loss * count if scaler is None else scaler.scale(loss * count))
        totals += torch.tensor([float(loss.detach()) * count, count, job.count_tokens(batch)], dtype=torch.float64)
    return totals


def _apply_update(replicas: DataParallel, settings: LoopSettings, process: ProcessInfo, totals: torch.Tensor,
                  scaler: Any = None) -> torch.Tensor:
    """Turn the gradients into the token-weighted mean over the global batch, clip, step.

    Returns the step's ``totals`` summed over processes (the global figures the caller logs). With
    an fp16 ``scaler`` the gradients are unscaled first, and a step whose gradients overflowed is
    skipped (the same decision in every process: they hold the same all-reduced gradients).
    """
    totals = process.total(totals)
    optimizer = replicas.optimizer
    predicted = float(totals[1])
    if predicted > 0:
        if scaler is not None:
            scaler.unscale_(optimizer)
        replicas.mean_gradients_(predicted)
        if settings.max_grad_norm is not None:
            replicas.clip_(settings.max_grad_norm)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return totals


def _track_best(state: LoopState, eval_loss: float, settings: LoopSettings) -> None:
    """Update the best validation loss and the early-stopping counter."""
    if math.isnan(eval_loss):
        return
    if state.best_eval_loss is None or eval_loss < state.best_eval_loss - settings.early_stopping_min_delta:
        state.best_eval_loss, state.best_step = eval_loss, state.step
        state.evals_without_improvement = 0
        return
    state.evals_without_improvement += 1
    if settings.early_stopping_patience and state.evals_without_improvement >= settings.early_stopping_patience:
        state.stopped_early = True


def _checkpoint_due(settings: Any, step: int, seconds_since_save: float, process: ProcessInfo) -> bool:
    """Return whether to checkpoint after ``step``: every ``save_every`` steps, or once
    ``save_every_seconds`` of wall-clock have passed since the last checkpoint. The clock differs
    between processes, so the first process decides and every process follows (one tiny gather)."""
    if settings.save_every and step % settings.save_every == 0:
        return True
    if not settings.save_every_seconds:
        return False
    due = torch.tensor([float(process.is_main and seconds_since_save >= settings.save_every_seconds)])
    return bool(process.total(due).item() > 0)
