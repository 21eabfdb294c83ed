"""Predict with a task head and score the predictions with the evaluation metrics.

Sequence classification: accuracy and macro-F1; token classification: seqeval entity F1;
extractive QA: SQuAD-style exact match and F1 (all from :mod:`lowres_adapters.evaluation`).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from lowres_adapters.data.examples import LabeledExample, TaskData
from lowres_adapters.evaluation.classification import classification_scores, entity_scores
from lowres_adapters.evaluation.qa import qa_scores
from lowres_adapters.training.heads import TaskHead, labelling, last_hidden_states, qa_logits
from lowres_adapters.training.task_features import collate, decode_qa_answer, decode_token_tags, encode_examples


@torch.no_grad()
def predict(model: torch.nn.Module, head: TaskHead, tokenizer: Any, task: TaskData,
            examples: Sequence[LabeledExample], *, max_length: int = 256, batch_size: int = 16,
            progress: str | None = None) -> list[Any]:
    """Return one prediction per example: a label, a list of tags, or an answer string.

    Args:
        model: The backbone with its adapters (called through ``last_hidden_states``).
        head: The trained head.
        tokenizer: A fast tokenizer.
        task: The task (kind and labels).
        examples: The examples to predict.
        max_length: Tokens per example.
        batch_size: Examples per forward pass.
        progress: Label of a progress bar over the examples (None: no bar).
    """
    encoded = encode_examples(task.kind, examples, tokenizer, task.labels, max_length)
    was_training = (model.training, head.training)
    model.eval()
    head.eval()
    predictions: list[Any] = []
    for start in _batch_starts(len(encoded), batch_size, progress):
        chunk = encoded[start: start + batch_size]
        batch = collate(chunk, tokenizer.pad_token_id)
        hidden = last_hidden_states(model, batch["input_ids"], batch["attention_mask"])
        logits = head(hidden, batch["attention_mask"])
        if labelling(task.kind) == "one":
            predictions += [task.labels[index] for index in logits.argmax(dim=-1).tolist()]
        elif labelling(task.kind) == "per_token":
            predictions += [decode_token_tags(logits[row], item, task.labels) for row, item in enumerate(chunk)]
        else:
            start_logits, end_logits = qa_logits(logits, batch["attention_mask"])
            predictions += [decode_qa_answer(start_logits[row], end_logits[row], item)
                            for row, item in enumerate(chunk)]
    model.train(was_training[0])
    head.train(was_training[1])
    return predictions


def _batch_starts(count: int, batch_size: int, progress: str | None) -> Any:
    """Return the batch start offsets, wrapped in a progress bar counting examples when labelled."""
    starts = range(0, count, batch_size)
    if progress is None:
        return starts
    bar = tqdm(total=count, desc=progress, unit="ex", leave=False)

    def advancing() -> Any:
        for start in starts:
            yield start
            bar.update(min(batch_size, count - start))
        bar.close()

    return advancing()


@torch.no_grad()
def head_feature_rows(model: torch.nn.Module, head: TaskHead, features: Sequence[Any], pad_token_id: int,
                      batch_size: int = 16, progress: str | None = None) -> torch.Tensor:
    """Return the ``(n, hidden)`` rows the head reads (pooled vectors, or real tokens) for loop
    ``features`` run through ``model`` in eval mode."""
    was_training = model.training
    model.eval()
    rows = []
    for start in _batch_starts(len(features), batch_size, progress):
        batch = collate(features[start: start + batch_size], pad_token_id)
        hidden = last_hidden_states(model, batch["input_ids"], batch["attention_mask"])
        rows.append(head.feature_rows(hidden, batch["attention_mask"]))
    model.train(was_training)
    return torch.cat(rows)


def calibrate_head(model: torch.nn.Module, head: TaskHead, features: Sequence[Any], pad_token_id: int,
                   batch_size: int = 16, progress: str | None = None) -> torch.Tensor | None:
    """Set the head's feature statistics from ``features`` run through the trained ``model``.

    While training, the head standardises with batch statistics and keeps a running average that
    lags behind a task adapter moving the features; after training, the statistics of the final
    model on some training examples replace it. Returns the rows used (None: nothing done).

    Args:
        model: The trained backbone with its adapters.
        head: The trained head (``normalize`` on, else nothing happens).
        features: Loop features (``input_ids`` and targets) of training examples.
        pad_token_id: Padding id.
        batch_size: Examples per forward pass.
        progress: Label of a progress bar (None: no bar).
    """
    if not head.config.normalize or not features:
        return None
    rows = head_feature_rows(model, head, features, pad_token_id, batch_size, progress)
    head.normalizer.set_statistics(rows)
    return rows


def refit_head(head: TaskHead, rows: torch.Tensor, labels: Sequence[int], class_weights: torch.Tensor | None,
               steps: int, lr: float = 3e-3, weight_decay: float = 0.01, progress: str | None = None) -> float:
    """Train a sequence head afresh, full batch, on pooled ``(n, hidden)`` rows of the trained model.

    Training steps see each example about once, too few for the head to converge; the pooled
    rows of many training examples cost one forward pass each and can be revisited for free, so
    the head is refitted on them for ``steps`` AdamW steps (dense and output layers re-initialised,
    the statistics kept). Returns the final training loss.

    Args:
        head: A sequence-classification head whose statistics come from ``rows``.
        rows: Pooled features of training examples.
        labels: One label id per row.
        class_weights: Per-class loss weights (or None).
        steps: Full-batch optimiser steps.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        progress: Label of a progress bar over the steps (None: no bar).
    """
    for module in head.modules():
        if module is not head.normalizer and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    trained = [parameter for parameter in head.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=lr, weight_decay=weight_decay)
    targets = {"labels": torch.tensor(list(labels), dtype=torch.long, device=rows.device)}
    mask = torch.ones(rows.shape[0], 1, dtype=torch.long, device=rows.device)  # one pooled "token" per row
    head.train()
    head.normalizer.eval()  # standardise with the rows' statistics, not per batch
    loss = torch.zeros(())
    with torch.enable_grad():
        for _ in tqdm(range(steps), desc=progress, unit="step", leave=False, disable=progress is None):
            loss = head.training_loss(rows.unsqueeze(1), mask, targets, class_weights)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    head.eval()
    return float(loss.detach())


def score_predictions(task: TaskData, examples: Sequence[LabeledExample], predictions: Sequence[Any]) -> dict[str, Any]:
    """Return the task's metrics (percent) for ``predictions`` against the gold of ``examples``."""
    if labelling(task.kind) == "one":
        return classification_scores(list(predictions), [example.label for example in examples], list(task.labels))
    if labelling(task.kind) == "per_token":
        return entity_scores([list(tags) for tags in predictions], [list(example.tags) for example in examples])
    return qa_scores(list(predictions), [list(example.answers) for example in examples])


def evaluate_task(model: torch.nn.Module, head: TaskHead, tokenizer: Any, task: TaskData,
                  examples: Sequence[LabeledExample], **options: Any) -> dict[str, Any]:
    """Predict ``examples`` and return their scores (see :func:`score_predictions`)."""
    return score_predictions(task, examples, predict(model, head, tokenizer, task, examples, **options))
