"""Built-in task kinds, registered through the same hook as any plugin's (``lowres list tasks``)."""

from __future__ import annotations

from typing import Callable

from lowres_adapters.hookspecs import hookimpl
from lowres_adapters.specs import TaskKind

BUILTIN_TASK_KINDS = (
    TaskKind(name="sequence_classification", labels_per_example="one",
             description="One label per text from pooled hidden states (topic, sentiment, ...)"),
    TaskKind(name="token_classification", labels_per_example="per_token",
             description="One tag per word, scored on its first sub-word token (NER, POS)"),
    TaskKind(name="extractive_qa", labels_per_example="span", fixed_labels=2,
             description="Start and end positions of the answer span in the context"),
)


@hookimpl
def register_task_kinds(register: Callable[[TaskKind], None]) -> None:
    """Register the three head kinds :mod:`lowres_adapters.training.heads` builds."""
    for spec in BUILTIN_TASK_KINDS:
        register(spec)
