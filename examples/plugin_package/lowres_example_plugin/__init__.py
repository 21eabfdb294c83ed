"""An example plugin package: one alignment loss and one data source.

Install it with ``pip install -e examples/plugin_package`` and it shows up in ``lowres plugins``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from lowres_adapters.plugin import (
    AlignmentInputs,
    AlignmentLoss,
    DataSource,
    InputError,
    Provenance,
    TextExample,
    hookimpl,
)


@dataclass(frozen=True)
class L1Config:
    """Settings of the L1 alignment loss.

    Attributes:
        normalize: Divide each pooled vector by its L2 norm first.
    """

    normalize: bool = True


def build_l1(config: L1Config):
    """Return the loss function: mean absolute difference of pooled hidden states."""
    import torch

    def loss_fn(inputs: AlignmentInputs) -> "torch.Tensor":
        student, teacher = inputs.student_pooled, inputs.teacher_pooled  # (batch, hidden) each
        if config.normalize:
            student = torch.nn.functional.normalize(student, dim=-1)
            teacher = torch.nn.functional.normalize(teacher, dim=-1)
        return (student - teacher.detach()).abs().mean()

    return loss_fn


@dataclass(frozen=True)
class IdTextConfig:
    """Settings of the ``id_text`` source.

    Attributes:
        path: A UTF-8 file of ``id<TAB>text`` lines.
        lang: ISO 639-3 code of the text.
    """

    path: str = ""
    lang: str = "und"


def read_id_text(config: IdTextConfig) -> Iterator[TextExample]:
    """Yield one example per ``id<TAB>text`` line, streaming, with one-line errors on bad lines."""
    path = Path(config.path)
    provenance = Provenance(source=path.name, detail=str(path))
    with path.open(encoding="utf-8", errors="strict") as stream:
        for number, line in enumerate(stream, start=1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 2 or not fields[0] or not fields[1].strip():
                raise InputError(path, number, "expected 2 tab-separated columns: id, text")
            yield TextExample(text=fields[1].strip(), id=fields[0], lang=config.lang, provenance=provenance)


@hookimpl
def register_alignment_losses(register):
    register(AlignmentLoss(name="l1", config_class=L1Config, build=build_l1,
                           description="L1 distance of (normalised) pooled hidden states"))


@hookimpl
def register_data_sources(register):
    register(DataSource(name="id_text", config_class=IdTextConfig, open=read_id_text, yields="text",
                        description="id<TAB>text lines"))
