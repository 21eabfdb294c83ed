"""Read text, parallel text and a knowledge graph through the registered data sources.

Run: python examples/data_sources.py   (makes its own small files; no network, no fetched data)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from lowres_adapters.configs import config_from_dict
from lowres_adapters.data.parallel import read_pairs_file
from lowres_adapters.registry import get_registry


def open_source(name: str, **settings):
    """Return the examples of the data source ``name`` built from ``settings``."""
    source = get_registry().data_source(name)
    return list(source.open(config_from_dict(source.config_class, settings, where=name)))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="lowres-example-") as scratch:
        show(Path(scratch))


def show(folder: Path) -> None:
    """Write three small files into ``folder`` and print what each source reads from them."""
    (folder / "nya.txt").write_text("Moni, muli bwanji?\nMoni, muli bwanji?\nZikomo kwambiri.\n", encoding="utf-8")
    (folder / "eng-nya.tsv").write_text("Hello\tMoni\nThank you very much\tZikomo kwambiri\n", encoding="utf-8")
    (folder / "graph.csv").write_text(
        "/a/[/r/IsA/,/c/en/dog/n/,/c/en/animal/n/]\t/r/IsA\t/c/en/dog/n\t/c/en/animal/n\t{}\n"
        "/a/[/r/Synonym/,/c/sw/mbwa/n/,/c/en/dog/n/]\t/r/Synonym\t/c/sw/mbwa/n\t/c/en/dog/n\t{}\n",
        encoding="utf-8")

    text = open_source("text", path=str(folder / "nya.txt"), lang="nya")
    print(f"text: {len(text)} unique lines, first: {text[0].text!r} ({text[0].id})")

    pairs = open_source("parallel", path=str(folder / "eng-nya.tsv"), source_lang="eng", target_lang="nya")
    print(f"parallel: {[(pair.id, pair.source, pair.target) for pair in pairs]}")
    print(f"read_pairs_file: {len(read_pairs_file(folder / 'eng-nya.tsv', 'eng', 'nya'))} pairs")

    for sentence in open_source("conceptnet", path=str(folder / "graph.csv")):
        print(f"graph [{sentence.lang}]: {sentence.text}")


if __name__ == "__main__":
    main()
