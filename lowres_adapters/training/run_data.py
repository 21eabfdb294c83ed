"""The data a run trains and evaluates on: the language pack's splits, with the user's files in place.

``--text`` replaces ``text["train"]``, ``--eval-text`` replaces ``text["test"]``, ``--pairs``
replaces ``pairs["train"]`` and ``--eval-pairs`` replaces ``pairs["test"]``. A language without a
pack works from files alone; a pack whose data is not fetched works too when files cover it.

The ``--text`` file, of any size, is not read into memory: it is checked (UTF-8, not empty; one
line naming the file and line otherwise) in one fast pass before any model loads and kept as a
streaming :class:`~lowres_adapters.data.text.TextFile`, which the text recipes tokenise into the
on-disk token store. ``--text hf:PATH_OR_NAME[:SPLIT[:COLUMN]]`` names a ``datasets`` dataset
instead (:mod:`~lowres_adapters.data.dataset_text`), checked the same way and streamed as well.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from lowres_adapters.data.dataset_text import is_dataset_spec, open_dataset_text
from lowres_adapters.data.examples import PackData, TextExample
from lowres_adapters.data.packs import load_pack_data
from lowres_adapters.data.parallel import read_pairs_file
from lowres_adapters.data.text import open_text_file, read_text_file
from lowres_adapters.errors import LowresError
from lowres_adapters.registry import get_registry
from lowres_adapters.training.settings import DataSettings


def find_pack(language: str) -> Any:
    """Return the installed language pack for ``language``, or None."""
    registry = get_registry()
    if language not in registry.names("language_packs"):
        return None
    return registry.language_pack(language)


def load_pack(language: str) -> PackData:
    """Load a fetched pack's data (``lowres data fetch`` must have run)."""
    return load_pack_data(language)


def load_run_data(language: str, data: DataSettings) -> tuple[PackData, Any]:
    """Return ``(pack data with the user's files in place, pack or None)``.

    Raises:
        LowresError: For a language without a pack and without files, or a pack that is not
            fetched while the files do not replace what is missing.
    """
    pack = find_pack(language)
    if pack is None and not data.has_files():
        raise LowresError(f"no language pack for {language!r}: pass your own files "
                          f"(--text train.txt --eval-text heldout.txt) or install lowres-lang-{language}")
    pack_data = PackData()
    if pack is not None:
        try:
            pack_data = load_pack(language)
        except LowresError:
            if not (data.text or data.pairs) or not (data.eval_text or data.eval_pairs):
                raise
    return with_user_files(pack_data, language, data), pack


def with_user_files(pack_data: PackData, language: str, data: DataSettings) -> PackData:
    """Return ``pack_data`` with the splits the user's files replace."""
    text = dict(pack_data.text)
    pairs = dict(pack_data.pairs)
    if data.text:
        if is_dataset_spec(data.text):  # hf:PATH_OR_NAME[:SPLIT[:COLUMN]], checked here, streams too
            text["train"] = open_dataset_text(data.text, language)
        else:
            text["train"] = open_text_file(data.text, language)  # streams: any size
        text.pop("validation", None)
    if data.eval_text:
        text["test"] = read_text_file(data.eval_text, language)
    if data.pairs:
        pairs["train"] = read_pairs_file(data.pairs, data.source_lang, language)
        pairs.pop("validation", None)
    if data.eval_pairs:
        pairs["test"] = read_pairs_file(data.eval_pairs, data.source_lang, language)
    if "test" not in text and "test" in pairs:
        # held-out bits/char on the target side of the held-out pairs
        text["test"] = [_target_text(pair, language) for pair in pairs["test"]]
    return replace(pack_data, text=text, pairs=pairs)


def _target_text(pair: Any, language: str) -> Any:
    side = pair.target if pair.target_lang == language else pair.source
    return TextExample(text=side, id=pair.id, lang=language, provenance=pair.provenance)
