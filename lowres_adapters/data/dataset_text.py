"""A ``datasets`` dataset as a streaming training text: ``--text hf:PATH_OR_NAME[:SPLIT[:COLUMN]]``.

``PATH_OR_NAME`` is, in this order: a folder written by ``save_to_disk`` (read with
``datasets.load_from_disk``, memory-mapped); a data file (``.json``/``.jsonl``, ``.txt``, ``.csv``,
``.parquet``, optionally ``.gz``) streamed with ``load_dataset(BUILDER, data_files=..., streaming=True)``;
or a dataset name found in the local Hugging Face datasets cache only (the Hub is never contacted).
``SPLIT`` defaults to ``train`` and ``COLUMN`` to ``text``.

:func:`open_dataset_text` checks all of it (the extra installed, the dataset found, the split and
the column there) before any model loads and returns a :class:`DatasetText` naming the dataset's
content (its fingerprint, or the data file's SHA-256), so a changed dataset is tokenised again.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from lowres_adapters.data.examples import Provenance, TextExample
from lowres_adapters.data.files import normalize_text
from lowres_adapters.data.languages import validate_language
from lowres_adapters.errors import LowresError

PREFIX = "hf:"
INSTALL_HINT = "pip install 'lowres-adapters[datasets]'"
DEFAULT_SPLIT = "train"
DEFAULT_COLUMN = "text"
# builder of ``load_dataset`` for each data-file suffix (a ``.gz`` suffix after it is allowed)
FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".txt": "text", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class DatasetSpec:
    """What ``--text hf:PATH_OR_NAME[:SPLIT[:COLUMN]]`` names.

    Attributes:
        location: A ``save_to_disk`` folder, a data file, or a dataset name in the local cache.
        split: The split to train on.
        column: The column holding the text.
    """

    location: str
    split: str = DEFAULT_SPLIT
    column: str = DEFAULT_COLUMN

    @classmethod
    def parse(cls, text: str) -> "DatasetSpec":
        """Parse ``hf:PATH_OR_NAME[:SPLIT[:COLUMN]]`` (empty parts take the defaults)."""
        parts = text[len(PREFIX):].split(":") if is_dataset_spec(text) else []
        if not parts or not parts[0] or len(parts) > 3:
            raise LowresError(f"--text {text!r}: expected hf:PATH_OR_NAME[:SPLIT[:COLUMN]]")
        split = parts[1] if len(parts) > 1 and parts[1] else DEFAULT_SPLIT
        column = parts[2] if len(parts) > 2 and parts[2] else DEFAULT_COLUMN
        return cls(location=parts[0], split=split, column=column)


def is_dataset_spec(text: str) -> bool:
    """Return whether a ``--text`` value names a ``datasets`` dataset (``hf:...``) rather than a file."""
    return text.startswith(PREFIX)


@dataclass(frozen=True)
class DatasetText:
    """A dataset's text column as a corpus that streams: iterating it reads the rows again, one
    :class:`TextExample` at a time (NFC-normalised, whitespace collapsed, blank rows skipped, as a
    text file's lines are read). Build it with :func:`open_dataset_text`, which checks it first.

    Attributes:
        spec: What the user named.
        rows: The opened split (a ``Dataset`` or a streaming ``IterableDataset``).
        lang: ISO 639-3 code of the text.
        content_key: Names the split's content (fingerprint or file digest, split and column).
    """

    spec: DatasetSpec
    rows: Any = field(repr=False, compare=False)
    lang: str
    content_key: str
    provenance: Provenance = field(init=False)

    def __post_init__(self) -> None:
        name = Path(self.spec.location).name or self.spec.location
        detail = f"{self.spec.location}:{self.spec.split}:{self.spec.column}"
        object.__setattr__(self, "provenance", Provenance(name, "user", detail=detail))

    def __iter__(self) -> Iterator[TextExample]:
        for index, value in enumerate(self._column_values()):
            text = normalize_text(str(value or ""))
            if text:
                yield TextExample(text=text, id=f"{self.spec.split}:{index}", lang=self.lang,
                                  provenance=self.provenance)

    def texts(self) -> Iterator[str]:
        """Yield the texts alone (what a tokeniser reads)."""
        return (example.text for example in self)

    def _column_values(self, batch_rows: int = 1000) -> Iterator[Any]:
        """Yield the text column's values in order, read a batch of rows at a time (the other columns unread)."""
        for batch in self.rows.select_columns([self.spec.column]).iter(batch_size=batch_rows):
            yield from batch[self.spec.column]

    def __bool__(self) -> bool:
        return True  # open_dataset_text refused a split without rows


def open_dataset_text(text: str, lang: str) -> DatasetText:
    """Return the dataset named by ``hf:PATH_OR_NAME[:SPLIT[:COLUMN]]`` as a streaming corpus, checked.

    Args:
        text: The ``--text`` value.
        lang: ISO 639-3 code of the text.

    Raises:
        LowresError: One line each for a missing ``datasets`` package, an unknown dataset, a
            missing split or column, or a split without rows.
    """
    validate_language(lang)
    spec = DatasetSpec.parse(text)
    datasets = _datasets_module()
    rows, content = _open_split(datasets, spec)
    first = next(iter(rows), None)
    if first is None:
        raise LowresError(f"--text {text}: split {spec.split!r} has no rows")
    if spec.column not in first:
        raise LowresError(f"--text {text}: no column {spec.column!r}; columns: {', '.join(first)}")
    return DatasetText(spec=spec, rows=rows, lang=lang, content_key=f"{content}:{spec.split}:{spec.column}")


def _datasets_module() -> Any:
    try:
        return importlib.import_module("datasets")
    except ImportError:
        raise LowresError(f"--text hf:... needs the `datasets` package: {INSTALL_HINT}") from None


def _open_split(datasets: Any, spec: DatasetSpec) -> tuple[Any, str]:
    """Return ``(rows of the split, content key)`` of a saved folder, a data file or a cached name."""
    location = Path(spec.location).expanduser()
    if location.is_dir():
        return _saved_split(datasets, location, spec)
    if location.is_file():
        return _file_split(datasets, location, spec)
    return _cached_split(datasets, spec)


def _saved_split(datasets: Any, folder: Path, spec: DatasetSpec) -> tuple[Any, str]:
    try:
        saved = datasets.load_from_disk(str(folder))
    except FileNotFoundError:
        raise LowresError(f"--text hf:{spec.location}: not a folder written by save_to_disk "
                          "(no dataset_info.json / dataset_dict.json)") from None
    if isinstance(saved, datasets.DatasetDict):
        if spec.split not in saved:
            raise LowresError(f"--text hf:{spec.location}: no split {spec.split!r}; splits: {', '.join(saved)}")
        saved = saved[spec.split]
    elif saved.split is not None and str(saved.split) != spec.split:
        raise LowresError(f"--text hf:{spec.location}: the folder holds the split {str(saved.split)!r} only, "
                          f"not {spec.split!r}")
    return saved, f"saved:{saved._fingerprint}"


def _file_split(datasets: Any, path: Path, spec: DatasetSpec) -> tuple[Any, str]:
    suffixes = [suffix for suffix in path.suffixes if suffix != ".gz"]
    builder = FILE_BUILDERS.get(suffixes[-1].lower() if suffixes else "")
    if builder is None:
        raise LowresError(f"--text hf:{spec.location}: expected a data file ending in "
                          f"{', '.join(FILE_BUILDERS)} (optionally .gz) or a save_to_disk folder")
    if spec.split != DEFAULT_SPLIT:
        raise LowresError(f"--text hf:{spec.location}: a data file has one split, {DEFAULT_SPLIT!r}, "
                          f"not {spec.split!r}")
    with _offline(datasets):  # else the packaged builders report a download count to the Hub
        rows = datasets.load_dataset(builder, data_files=str(path), split=DEFAULT_SPLIT, streaming=True)
    return rows, f"file:{builder}:{_sha256(path)}"


def _cached_split(datasets: Any, spec: DatasetSpec) -> tuple[Any, str]:
    with _offline(datasets):
        try:
            rows = datasets.load_dataset(spec.location, split=spec.split)
        except ValueError as error:  # an unknown split names the ones there
            raise LowresError(f"--text hf:{spec.location}: {error}") from None
        except (FileNotFoundError, ConnectionError, datasets.exceptions.DatasetNotFoundError):
            raise LowresError(f"--text hf:{spec.location}: no such folder or data file, and no dataset of that "
                              "name in the local datasets cache (the Hub is not contacted)") from None
    return rows, f"cached:{rows._fingerprint}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _offline(datasets: Any) -> Iterator[None]:
    """Run with ``datasets`` and ``huggingface_hub`` in offline mode (no request leaves the machine) and
    without the notes ``datasets`` logs on finding a cached dataset."""
    import huggingface_hub.constants as hub_constants  # lazy: with datasets, which needs it

    saved = datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE, datasets.logging.get_verbosity()
    datasets.config.HF_HUB_OFFLINE = hub_constants.HF_HUB_OFFLINE = True
    datasets.logging.set_verbosity_error()
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = saved[:2]
        datasets.logging.set_verbosity(saved[2])
