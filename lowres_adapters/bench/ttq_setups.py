"""The three setups of the time-to-quality workload, each trained until its last budget is spent.

The baselines' code is the step-speed bench's (``bench/setups.py``: the same adapters, collator and
optimiser), run open-ended and stopped by a :class:`~lowres_adapters.bench.ttq.BudgetClock`;
``lowres`` runs the ``language`` recipe's loop defaults through the one training loop.
"""

from __future__ import annotations

import dataclasses
import tempfile
from typing import Any, Callable

import torch

from lowres_adapters.bench.setups import LOWRES_VARIANTS, adapter_for
from lowres_adapters.bench.ttq import BASELINE_LR, BudgetClock, BudgetSpent, TtqConfig
from lowres_adapters.errors import LowresError

BASELINE_BATCH = 8
"""Verses per step of the baselines (padded to the longest of the batch)."""
OPEN_ENDED_STEPS = 1_000_000
"""Step limit of the open-ended baselines (the clock stops them)."""


class TtqData:
    """Model, tokenizer, tokenised training verses and held-out texts of one run."""

    def __init__(self, config: TtqConfig) -> None:
        # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
        from lowres_adapters.bench.workloads import _tokenise, build_model

        if config.model == "tiny":  # tests: a tiny random Llama and the tiny corpus
            # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
            from lowres_adapters.testing.tiny import TINY_CORPUS, tiny_model, tiny_tokenizer

            self.model, _ = tiny_model("llama", seed=0)
            self.tokenizer = tiny_tokenizer()
            train, self.heldout = list(TINY_CORPUS) * 8, list(TINY_CORPUS)[: config.heldout_examples]
            self.train_ids = [[self.tokenizer.bos_token_id] + self.tokenizer(text, add_special_tokens=False)["input_ids"]
                              for text in train]
            torch.manual_seed(config.seed)
            return
        # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
        from lowres_adapters.data.packs import load_pack_data
        from lowres_adapters.models import DEFAULT_MODEL, load_tokenizer

        data = load_pack_data(config.language)
        self.model = build_model("clm", config.seed)
        self.tokenizer = load_tokenizer(DEFAULT_MODEL)
        self.heldout = [example.text for example in data.text["test"][: config.heldout_examples]]
        train = [example.text for example in data.text["train"] if example.text.strip()]
        self.train_ids = _tokenise(self.tokenizer, train, "clm", 128)

    def scorer(self, model: Any) -> Callable[[], float]:
        """Return a function scoring ``model`` on the held-out texts in bits/char (as ``lowres adapt``)."""
        # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
        from lowres_adapters.evaluation.language_modeling import score_texts

        def score() -> float:
            was_training = model.training
            model.eval()
            try:
                return score_texts(model, self.tokenizer, self.heldout, objective="clm", max_length=512).bits_per_char
            finally:
                model.train(was_training)

        return score


def ttq_setup_names() -> tuple[str, ...]:
    """Return the setups the ttq workload runs: the two baselines, ``lowres`` and its variants."""
    return ("adapters+trainer", "peft+loop", *LOWRES_VARIANTS)


def run_ttq_setup(config: TtqConfig) -> dict[str, Any]:
    """Train ``config.setup`` until its last budget and return its scored points."""
    data = TtqData(config)
    base = data.scorer(data.model)() if config.score_base else None
    runners = {"adapters+trainer": _adapters_trainer, "peft+loop": _peft_loop, "lowres": _lowres}
    if config.setup in LOWRES_VARIANTS:  # lowres:fp32 etc.: the default path with one loop switch changed
        variant = dataclasses.replace(config, loop={**LOWRES_VARIANTS[config.setup], **config.loop})
        adapter, points = _lowres(variant, data)
        adapter = adapter.replace("(lowres)", f"({config.setup})")
    elif config.setup in runners:
        adapter, points = runners[config.setup](config, data)
    else:
        raise LowresError(f"unknown ttq setup {config.setup!r}; choose from {', '.join(ttq_setup_names())}")
    return {"setup": config.setup, "adapter": adapter, "points": points, "base_bits_per_char": base}


def _adapters_trainer(config: TtqConfig, data: TtqData) -> tuple[str, list[dict[str, Any]]]:
    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    import adapters
    from transformers import TrainerCallback, TrainingArguments

    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    from lowres_adapters.training.speed import count_real_tokens

    model = data.model
    adapters.init(model)
    _, options = adapter_for("clm", config.setup)
    model.add_adapter("nya", config=adapters.LoRAConfig(r=options["r"], alpha=options["alpha"]))
    model.train_adapter("nya")
    clock = BudgetClock(config.budgets, config.token_marks, data.scorer(model))
    collated: list[int] = []  # real tokens of every batch collated, in order
    collate = _padding_collator(data.tokenizer)

    def counting(features: list[Any]) -> dict[str, torch.Tensor]:
        batch = collate(features)
        collated.append(int(count_real_tokens(batch)))
        return batch

    class _Budget(TrainerCallback):
        def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
            clock.start()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            # Accelerate's loader collates one batch ahead: count only the batches already trained on.
            if clock.after_step(sum(collated[:state.global_step]), state.global_step):
                control.should_training_stop = True

    with tempfile.TemporaryDirectory(prefix="lowres-ttq-") as output_dir:
        arguments = TrainingArguments(
            output_dir=output_dir, per_device_train_batch_size=BASELINE_BATCH, max_steps=OPEN_ENDED_STEPS,
            learning_rate=BASELINE_LR, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
            max_grad_norm=1.0, logging_strategy="no", save_strategy="no", report_to=[], use_cpu=True,
            dataloader_num_workers=0, seed=config.seed, remove_unused_columns=False, disable_tqdm=True)
        trainer = adapters.AdapterTrainer(model=model, args=arguments, data_collator=counting, callbacks=[_Budget()],
                                          train_dataset=[{"input_ids": ids} for ids in data.train_ids])
        trainer.train()
    return f"lora r={options['r']} q,v (adapters)", clock.points


def _peft_loop(config: TtqConfig, data: TtqData) -> tuple[str, list[dict[str, Any]]]:
    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    import peft

    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    from lowres_adapters.training.speed import count_real_tokens

    _, options = adapter_for("clm", config.setup)
    model = peft.get_peft_model(data.model, peft.LoraConfig(r=options["r"], lora_alpha=options["alpha"],
                                                            lora_dropout=0.0, target_modules=["q_proj", "v_proj"]))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=BASELINE_LR, weight_decay=0.0)
    collate = _padding_collator(data.tokenizer)
    generator = torch.Generator().manual_seed(config.seed)
    order: list[int] = []
    clock = BudgetClock(config.budgets, config.token_marks, data.scorer(model))
    model.train()
    tokens, step = 0, 0
    while True:
        if len(order) < BASELINE_BATCH:  # a new epoch, reshuffled
            order += torch.randperm(len(data.train_ids), generator=generator).tolist()
        indices, order = order[:BASELINE_BATCH], order[BASELINE_BATCH:]
        batch = collate([{"input_ids": data.train_ids[i]} for i in indices])
        tokens += int(count_real_tokens(batch))
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        if clock.after_step(tokens, step):
            return f"lora r={options['r']} q,v (peft)", clock.points


def default_job(config: TtqConfig, data: TtqData) -> tuple[Any, Any, str]:
    """Return ``(job, loop settings, adapter type)`` of this library's default path: the ``language``
    recipe's decoder loop defaults (with ``config.loop`` over them) and its default adapter (or
    ``config.adapter``) with the recipe's adapter defaults (``config.adapter_config`` over them), sped
    up as the recipe does."""
    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    from lowres_adapters.registry import get_registry
    from lowres_adapters.training.lm_objectives import CAUSAL_LM
    from lowres_adapters.training.loop import TrainingJob
    from lowres_adapters.training.recipes.language import LanguageRecipe
    from lowres_adapters.training.settings import LoopSettings
    from lowres_adapters.training.speed import speed_up_for_loop

    recipe = LanguageRecipe()
    kind = config.adapter or recipe.default_adapter
    spec = get_registry().adapter_type(kind)
    fields = adapter_fields(config, kind, data.model)
    handle = spec.attach(data.model, config.language, spec.config_class(**fields))
    handle.activate()
    settings = LoopSettings(**{**recipe.loop_defaults(CAUSAL_LM), **config.loop, "seed": config.seed, "progress": False})
    job = TrainingJob(model=handle.model, parameters=dict(handle.trainable_parameters()),
                      train_features=[{"input_ids": ids} for ids in data.train_ids],
                      collate=CAUSAL_LM.collator(data.tokenizer), loss_fn=CAUSAL_LM.loss,
                      name="ttq", freezing=f"adapter {kind} only")
    return speed_up_for_loop(job, settings, objective=CAUSAL_LM, tokenizer=data.tokenizer), settings, kind


def adapter_fields(config: TtqConfig, kind: str, model: Any) -> dict[str, Any]:
    """Return the ``lowres`` setup's adapter config fields: the recipe's defaults for ``kind`` on
    ``model``, with ``config.adapter_config`` over them (JSON lists as tuples)."""
    from lowres_adapters.training.recipes.language import decoder_lora_defaults

    own = {key: tuple(value) if isinstance(value, list) else value for key, value in config.adapter_config.items()}
    return {**decoder_lora_defaults(kind, False, getattr(model.config, "num_hidden_layers", None)), **own}


def _lowres(config: TtqConfig, data: TtqData) -> tuple[str, list[dict[str, Any]]]:
    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    from lowres_adapters.training.loop import train

    job, settings, kind = default_job(config, data)
    clock = BudgetClock(config.budgets, config.token_marks, data.scorer(job.model))
    last = {"tokens": 0, "steps": 0}

    def on_step(report: Any) -> None:
        last.update(tokens=report.tokens_seen, steps=report.step)
        if clock.after_step(report.tokens_seen, report.step):
            raise BudgetSpent

    clock.start()
    try:
        train(job, settings, callbacks=[on_step])
    except BudgetSpent:
        pass
    return f"{describe_adapter(kind, adapter_fields(config, kind, data.model))} (lowres)", clock.finish(last["tokens"], last["steps"])


def describe_adapter(kind: str, fields: dict[str, Any]) -> str:
    """Return a short label: ``lora r=16 alpha=32 attn_matrices=qkv +intermediate_lora +output_lora``."""
    parts = [kind]
    for key, value in fields.items():
        if isinstance(value, bool):
            parts += [f"+{key}"] if value else []
        else:
            parts.append(f"{key}={''.join(map(str, value)) if isinstance(value, (list, tuple)) else value}")
    return " ".join(parts)


def _padding_collator(tokenizer: Any) -> Any:
    """Return the baselines' collator: pad to the longest verse, labels = inputs (the model shifts)."""
    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    from transformers import DataCollatorForLanguageModeling

    return DataCollatorForLanguageModeling(tokenizer, mlm=False)
