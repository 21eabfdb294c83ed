"""A Hub dataset (e.g. GlotCC) as monolingual text, through ``datasets`` when it is installed.

Streams with ``datasets.load_dataset(..., streaming=True)`` so a large corpus is never downloaded
whole. Needs network access to the Hub; on machines without it, use the ``text`` source on files.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Iterator

from lowres_adapters.data.examples import Provenance, TextExample
from lowres_adapters.data.files import normalize_text
from lowres_adapters.data.languages import validate_language
from lowres_adapters.errors import LowresError

INSTALL_HINT = "pip install 'lowres-adapters[datasets]'"


@dataclass(frozen=True)
class HubDatasetConfig:
    """Settings of the ``hub_dataset`` data source.

    Attributes:
        repo_id: Dataset repo on the Hub, e.g. ``"cis-lmu/GlotCC-V1"``.
        name: Dataset config (subset), e.g. ``"nya-Latn"``.
        split: Dataset split to read.
        revision: Git revision to pin (empty: the default branch).
        text_field: Column holding the text.
        lang: ISO 639-3 code of the text.
        licence: Licence recorded in the provenance.
        limit: Stop after this many examples (0: no limit).
    """

    repo_id: str = ""
    name: str = ""
    split: str = "train"
    revision: str = ""
    text_field: str = "text"
    lang: str = ""
    licence: str = "unknown"
    limit: int = 0

    def __post_init__(self) -> None:
        if self.lang:
            validate_language(self.lang)
        if self.limit < 0:
            raise ValueError("limit must be >= 0")


def _load_datasets_module() -> Any:
    try:
        return importlib.import_module("datasets")
    except ImportError:
        raise LowresError(f"the hub_dataset source needs the `datasets` package: {INSTALL_HINT}") from None


def open_hub_dataset(config: HubDatasetConfig) -> Iterator[TextExample]:
    """Stream the texts of a Hub dataset split, NFC-normalised, blank ones skipped."""
    if not (config.repo_id and config.lang):
        raise LowresError("the hub_dataset source needs repo_id=... and lang=ISO_639_3_CODE")
    datasets = _load_datasets_module()
    stream = datasets.load_dataset(config.repo_id, config.name or None, split=config.split, streaming=True,
                                   revision=config.revision or None)
    detail = f"{config.repo_id}/{config.name}@{config.revision or 'main'}:{config.split}"
    provenance = Provenance(config.repo_id, config.licence, detail=detail)
    count = 0
    for index, row in enumerate(stream):
        if config.text_field not in row:
            raise LowresError(f"{config.repo_id}: no column {config.text_field!r}; columns: {', '.join(row)}")
        text = normalize_text(str(row[config.text_field] or ""))
        if not text:
            continue
        yield TextExample(text=text, id=str(row.get("id", f"{config.split}:{index}")), lang=config.lang,
                          provenance=provenance)
        count += 1
        if config.limit and count >= config.limit:
            return
