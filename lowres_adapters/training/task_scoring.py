"""Predict with a task head and score the predictions with the evaluation metrics.

Sequence classification: accuracy and macro-F1; token classification: seqeval entity F1;
extractive QA: SQuAD-style exact match and F1 (all from :mod:`lowres_adapters.evaluation`).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from lowres_adapters.data.examples import LabeledExample, TaskData
from lowres_adapters.evaluation.classification import classification_scores, entity_scores
from lowres_adapters.evaluation.qa import qa_scores
from lowres_adapters.training.heads import TaskHead, last_hidden_states, qa_logits
from lowres_adapters.training.task_features import collate, decode_qa_answer, decode_token_tags, encode_examples


@torch.no_grad()
def predict(model: torch.nn.Module, head: TaskHead, tokenizer: Any, task: TaskData,
            examples: Sequence[LabeledExample], *, max_length: int = 256, batch_size: int = 16) -> list[Any]:
    """Return one prediction per example: a label, a list of tags, or an answer string.

    Args:
        model: The backbone with its adapters (called through ``last_hidden_states``).
        head: The trained head.
        tokenizer: A fast tokenizer.
        task: The task (kind and labels).
        examples: The examples to predict.
        max_length: Tokens per example.
        batch_size: Examples per forward pass.
    """
    encoded = encode_examples(task.kind, examples, tokenizer, task.labels, max_length)
    was_training = (model.training, head.training)
    model.eval()
    head.eval()
    predictions: list[Any] = []
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start: start + batch_size]
        batch = collate(chunk, tokenizer.pad_token_id)
        hidden = last_hidden_states(model, batch["input_ids"], batch["attention_mask"])
        logits = head(hidden, batch["attention_mask"])
        if task.kind == "sequence_classification":
            predictions += [task.labels[index] for index in logits.argmax(dim=-1).tolist()]
        elif task.kind == "token_classification":
            predictions += [decode_token_tags(logits[row], item, task.labels) for row, item in enumerate(chunk)]
        else:
            start_logits, end_logits = qa_logits(logits, batch["attention_mask"])
            predictions += [decode_qa_answer(start_logits[row], end_logits[row], item)
                            for row, item in enumerate(chunk)]
    model.train(was_training[0])
    head.train(was_training[1])
    return predictions


@torch.no_grad()
def calibrate_head(model: torch.nn.Module, head: TaskHead, features: Sequence[Any], pad_token_id: int,
                   batch_size: int = 16) -> int:
    """Set the head's feature statistics from ``features`` run through the trained ``model``.

    While training, the head standardises with batch statistics and keeps a running average that
    lags behind a task adapter moving the features; after training, the statistics of the final
    model on some training examples replace it. Returns the number of rows used (0: nothing done).

    Args:
        model: The trained backbone with its adapters.
        head: The trained head (``normalize`` on, else nothing happens).
        features: Loop features (``input_ids`` and targets) of training examples.
        pad_token_id: Padding id.
        batch_size: Examples per forward pass.
    """
    if not head.config.normalize or not features:
        return 0
    was_training = model.training
    model.eval()
    rows = []
    for start in range(0, len(features), batch_size):
        batch = collate(features[start: start + batch_size], pad_token_id)
        hidden = last_hidden_states(model, batch["input_ids"], batch["attention_mask"])
        rows.append(head.feature_rows(hidden, batch["attention_mask"]))
    model.train(was_training)
    stacked = torch.cat(rows)
    head.normalizer.set_statistics(stacked)
    return int(stacked.shape[0])


def score_predictions(task: TaskData, examples: Sequence[LabeledExample], predictions: Sequence[Any]) -> dict[str, Any]:
    """Return the task's metrics (percent) for ``predictions`` against the gold of ``examples``."""
    if task.kind == "sequence_classification":
        return classification_scores(list(predictions), [example.label for example in examples], list(task.labels))
    if task.kind == "token_classification":
        return entity_scores([list(tags) for tags in predictions], [list(example.tags) for example in examples])
    return qa_scores(list(predictions), [list(example.answers) for example in examples])


def evaluate_task(model: torch.nn.Module, head: TaskHead, tokenizer: Any, task: TaskData,
                  examples: Sequence[LabeledExample], **options: Any) -> dict[str, Any]:
    """Predict ``examples`` and return their scores (see :func:`score_predictions`)."""
    return score_predictions(task, examples, predict(model, head, tokenizer, task, examples, **options))
