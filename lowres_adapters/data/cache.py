"""The data cache: atomic writes, checksums and a provenance manifest per fetched pack.

A pack's data lives in ``paths.data_dir(code)``. It is fetched into a temporary sibling folder and
renamed into place only when complete, so an interrupted fetch never leaves half a corpus behind.
``manifest.json`` records every file's sha256 and size and where the data came from.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Iterator

from lowres_adapters.data.files import iter_lines
from lowres_adapters.errors import InputError
from lowres_adapters.io import atomic_directory, atomic_write, atomic_write_json  # noqa: F401 - atomic_directory: packs import it here

MANIFEST_NAME = "manifest.json"
PROVENANCE_NAME = "provenance.json"
MANIFEST_VERSION = 1


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as indented JSON, atomically."""
    atomic_write_json(path, value, ensure_ascii=False, indent=2)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write one JSON object per line, atomically; return the number of rows."""
    count = 0
    with atomic_write(path) as stream:
        for row in rows:
            stream.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of a ``.jsonl`` (or ``.jsonl.gz``) file, one per non-blank line.

    Raises:
        InputError: On a line that is not a JSON object.
    """
    for line_number, line in iter_lines(path, allow_empty=True):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(path, line_number, f"expected one JSON object per line ({error.msg})") from None
        if not isinstance(row, dict):
            raise InputError(path, line_number, f"expected a JSON object, found {type(row).__name__}")
        yield row


def file_checksums(directory: Path) -> dict[str, dict[str, Any]]:
    """Return relative path -> {"sha256", "bytes"} for every file under ``directory`` but the manifest."""
    result = {}
    for path in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        if relative != MANIFEST_NAME:
            result[relative] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    return result


def write_manifest(directory: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Write ``manifest.json`` with ``info``, the pack's provenance records and file checksums."""
    manifest = {"manifest_version": MANIFEST_VERSION, **info}
    provenance_path = Path(directory) / PROVENANCE_NAME
    if provenance_path.exists():
        manifest["provenance"] = json.loads(provenance_path.read_text("utf-8"))
    manifest["files"] = file_checksums(directory)
    write_json(Path(directory) / MANIFEST_NAME, manifest)
    return manifest


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """Return the manifest of a fetched folder, or None when there is none (not fetched)."""
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def verify_manifest(directory: Path, manifest: dict[str, Any]) -> list[str]:
    """Return the problems found comparing files with the manifest (empty when all match)."""
    problems = []
    for relative, expected in manifest.get("files", {}).items():
        path = Path(directory) / relative
        if not path.is_file():
            problems.append(f"{relative}: missing")
        elif path.stat().st_size != expected.get("bytes") or sha256_file(path) != expected.get("sha256"):
            problems.append(f"{relative}: checksum differs")
    return problems


def record_provenance(directory: Path, **entry: Any) -> None:
    """Append one provenance record (route, version, sha256, licence, ...) for the manifest."""
    path = Path(directory) / PROVENANCE_NAME
    records = json.loads(path.read_text("utf-8")) if path.exists() else []
    records.append(entry)
    write_json(path, records)
