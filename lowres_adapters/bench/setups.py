"""The three ways to train the same language adapter, as the bench runs them.

- ``adapters+trainer`` (a): what users write today: ``adapters.init`` + ``add_adapter`` +
  ``train_adapter`` and ``adapters.AdapterTrainer`` with ``DataCollatorForLanguageModeling``
  (padding to the longest of a batch, logits at every position over the whole vocabulary).
- ``peft+loop`` (b): the PEFT LoRA script style: ``get_peft_model`` and a plain torch loop with
  the same collator and the model's own loss.
- ``lowres`` (c): this library: the adapter type from the registry, the one training loop, packing,
  masked-only logits, a trimmed vocabulary with sampled negatives, and bf16 autocast where the
  CPU computes bf16 natively (AVX512-BF16 or AMX). Variants switch single optimisations off (or
  compile / gradient checkpointing on) to show what each is worth.

All setups: the same base weights, AdamW at a constant learning rate, gradient clipping at 1.0,
batches of ``batch_size`` rows (verses for (a)/(b), packed rows of ``row_length`` for (c)) and the
same number of optimiser steps. Every setup reports the time and real (non-padding) input tokens of
each step; the first step (one-time set-up inside the libraries) is left out of the rates.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from lowres_adapters.bench.workloads import WorkloadData, build_model, heldout_loss
from lowres_adapters.errors import LowresError

LOWRES_VARIANTS: dict[str, dict[str, Any]] = {
    "lowres": {},
    "lowres:no-packing": {"packing": False},
    "lowres:no-trim": {"vocab_trim": False},
    "lowres:full-logits": {"masked_only_logits": False, "vocab_trim": False},
    "lowres:no-negatives": {"trim_negatives": 0},
    "lowres:fp32": {"bf16": False},
    "lowres:compile": {"compile": True},
    "lowres:checkpointing": {"gradient_checkpointing": True},
}
SETUPS = ("adapters+trainer", "peft+loop", *LOWRES_VARIANTS)
BASELINE = "adapters+trainer"


@dataclass(frozen=True)
class RunConfig:
    """One child run's settings.

    Attributes:
        workload: ``"mlm"`` or ``"clm"``.
        setup: One of :data:`SETUPS`.
        steps: Optimiser steps.
        batch_size: Rows per step.
        row_length: Longest example / packed row, in tokens.
        lr: Constant learning rate.
        seed: Seed of the base weights, adapter initialisation and data order.
        heldout_examples: Held-out verses scored after training.
        language: The pack whose verses train and are held out.
    """

    workload: str
    setup: str
    steps: int
    batch_size: int
    row_length: int = 128
    lr: float = 1e-3
    seed: int = 0
    heldout_examples: int = 64
    language: str = "nya"


@dataclass
class StepClock:
    """Records the end time, real input tokens and work of every optimiser step.

    Attributes:
        scores_every_slot: The setup's LM head scores every token slot (plain forward) rather
            than the labelled positions only.
    """

    scores_every_slot: bool = True
    started: float = field(default_factory=time.perf_counter)
    cpu_started: float = field(default_factory=time.process_time)
    ends: list[float] = field(default_factory=list)
    cpu_ends: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    work: list[tuple[int, int, int]] = field(default_factory=list)  # (slots, slots x width, scored)
    pending: list[int] = field(default_factory=lambda: [0, 0, 0, 0])

    def add_batch(self, batch: dict[str, torch.Tensor]) -> None:
        """Count a batch collated for the coming step."""
        # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
        from lowres_adapters.training.speed import count_real_tokens

        slots = batch["input_ids"].numel()
        scored = slots if self.scores_every_slot else int((batch["labels"] != -100).sum())
        for index, value in enumerate((count_real_tokens(batch), slots, slots * batch["input_ids"].shape[1], scored)):
            self.pending[index] += int(value)

    def start(self) -> None:
        """Mark the start of training (wall and CPU time)."""
        self.started, self.cpu_started = time.perf_counter(), time.process_time()

    def step_done(self) -> None:
        """Close the current step."""
        self.ends.append(time.perf_counter())
        self.cpu_ends.append(time.process_time())
        self.tokens.append(self.pending[0])
        self.work.append((self.pending[1], self.pending[2], self.pending[3]))
        self.pending = [0, 0, 0, 0]

    def summary(self) -> dict[str, Any]:
        """Return tokens/s and ms/step over the steady steps (all but the first when >= 3 steps)."""
        if not self.ends:
            raise LowresError("no optimiser step was recorded")
        skip = 1 if len(self.ends) >= 3 else 0
        start = self.ends[skip - 1] if skip else self.started
        seconds = self.ends[-1] - start
        cpu_ends = self.cpu_ends or self.ends
        cpu_seconds = cpu_ends[-1] - (cpu_ends[skip - 1] if skip else self.cpu_started)
        steady = len(self.ends) - skip
        slots, slot_width, scored = (sum(item[k] for item in self.work[skip:]) / steady for k in range(3))
        return {"steps": len(self.ends), "timed_steps": steady, "seconds": seconds,
                "tokens_per_step": sum(self.tokens[skip:]) / steady,
                "tokens_per_s": sum(self.tokens[skip:]) / seconds, "ms_per_step": 1000.0 * seconds / steady,
                "tokens_per_cpu_s": sum(self.tokens[skip:]) / max(cpu_seconds, 1e-9),
                "cpu_ms_per_step": 1000.0 * cpu_seconds / steady,
                "first_step_ms": 1000.0 * (self.ends[0] - self.started), "slots_per_step": slots,
                "attended_per_slot": slot_width / max(slots, 1), "scored_per_step": scored}


def adapter_for(workload: str, setup: str) -> tuple[str, dict[str, Any]]:
    """Return the adapter (name, settings) a setup trains on a workload.

    ``mlm``: seq_bn (reduction factor 16) for (a) and (c); PEFT has no bottleneck adapter, so (b)
    trains LoRA r=8 on query/value. ``clm``: LoRA r=16, alpha 32 on q/v everywhere.
    """
    if workload.endswith("mlm"):
        if setup == "peft+loop":
            return "lora", {"r": 8, "alpha": 8}
        return "seq_bn", {"reduction_factor": 16}
    return "lora", {"r": 16, "alpha": 32}


def run_setup(config: RunConfig, data: WorkloadData) -> dict[str, Any]:
    """Train one setup and return its measurements."""
    torch.manual_seed(config.seed)
    if config.setup == "adapters+trainer":
        return _adapters_trainer(config, data)
    if config.setup == "peft+loop":
        return _peft_loop(config, data)
    if config.setup in LOWRES_VARIANTS:
        # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
        from lowres_adapters.bench.lowres_setup import run_lowres

        return run_lowres(config, data, LOWRES_VARIANTS[config.setup])
    raise LowresError(f"unknown setup {config.setup!r}; choose from {', '.join(SETUPS)}")


class _CountingCollator:
    """Wrap a collator so every batch's real input tokens go to the clock."""

    def __init__(self, collate: Callable[[list[Any]], dict[str, torch.Tensor]], clock: StepClock) -> None:
        self.collate, self.clock = collate, clock

    def __call__(self, features: list[Any]) -> dict[str, torch.Tensor]:
        batch = self.collate(features)
        self.clock.add_batch(batch)
        return batch


def _hf_collator(data: WorkloadData) -> Any:
    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    from transformers import DataCollatorForLanguageModeling

    return DataCollatorForLanguageModeling(data.tokenizer, mlm=data.objective == "mlm", mlm_probability=0.15)


def _adapters_trainer(config: RunConfig, data: WorkloadData) -> dict[str, Any]:
    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    import adapters
    from transformers import TrainerCallback, TrainingArguments

    model = build_model(config.workload, config.seed)
    adapters.init(model)
    kind, options = adapter_for(config.workload, config.setup)
    if kind == "seq_bn":
        adapter_config: Any = adapters.SeqBnConfig(reduction_factor=options["reduction_factor"])
    else:
        adapter_config = adapters.LoRAConfig(r=options["r"], alpha=options["alpha"])
    model.add_adapter("nya", config=adapter_config)
    model.train_adapter("nya")  # as users do: this also leaves the MLM head's dense + layer norm training
    clock = StepClock()

    class _Clock(TrainerCallback):
        def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
            clock.start()

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            clock.step_done()

    with tempfile.TemporaryDirectory(prefix="lowres-bench-") as output_dir:
        arguments = TrainingArguments(
            output_dir=output_dir, per_device_train_batch_size=config.batch_size, max_steps=config.steps,
            learning_rate=config.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
            max_grad_norm=1.0, logging_strategy="no", save_strategy="no", report_to=[], use_cpu=True,
            dataloader_num_workers=0, seed=config.seed, remove_unused_columns=False, disable_tqdm=True)
        trainer = adapters.AdapterTrainer(
            model=model, args=arguments, train_dataset=[{"input_ids": ids} for ids in data.train_ids],
            data_collator=_CountingCollator(_hf_collator(data), clock), callbacks=[_Clock()])
        trainer.train()
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        model.save_adapter(output_dir + "/adapter", "nya")
        files = Path(output_dir, "adapter").iterdir()
        saved = sum(f.stat().st_size for f in files if f.suffix in (".bin", ".safetensors"))
    return {**clock.summary(), "adapter": f"{kind} (adapters)", "trainable_parameters": trainable,
            "adapter_bytes": saved, "heldout_loss": heldout_loss(model, data), "model_config": model.config,
            "scored_vocab": model.config.vocab_size}


def _peft_loop(config: RunConfig, data: WorkloadData) -> dict[str, Any]:
    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    import peft

    model = build_model(config.workload, config.seed)
    kind, options = adapter_for(config.workload, config.setup)
    targets = ["query", "value"] if config.workload.endswith("mlm") else ["q_proj", "v_proj"]
    model = peft.get_peft_model(model, peft.LoraConfig(r=options["r"], lora_alpha=options["alpha"],
                                                       lora_dropout=0.0, target_modules=targets))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=0.0)
    collate = _hf_collator(data)
    order = torch.randperm(len(data.train_ids), generator=torch.Generator().manual_seed(config.seed)).tolist()
    clock = StepClock()
    model.train()
    clock.start()
    for step in range(config.steps):
        indices = order[step * config.batch_size:(step + 1) * config.batch_size]
        batch = collate([{"input_ids": data.train_ids[i]} for i in indices])
        clock.add_batch(batch)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        clock.step_done()
    with tempfile.TemporaryDirectory(prefix="lowres-bench-") as output_dir:
        model.save_pretrained(output_dir)
        saved = sum(f.stat().st_size for f in Path(output_dir).iterdir() if f.suffix == ".safetensors")
    return {**clock.summary(), "adapter": f"{kind} r={options['r']} (peft)",
            "trainable_parameters": sum(p.numel() for p in trainable), "adapter_bytes": saved,
            "heldout_loss": heldout_loss(model, data), "model_config": model.config,
            "scored_vocab": model.config.vocab_size}
