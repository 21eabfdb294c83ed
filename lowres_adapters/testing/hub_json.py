"""JSON shapes of the loopback Hub's answers (tree, refs, paths-info) and request parsing helpers.

Kept apart from the HTTP handler (:mod:`lowres_adapters.testing.hub`) so each stays small; the
shapes are the ones ``huggingface_hub`` 0.36 parses (``RepoFile``, ``RepoFolder``, ``GitRefs``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from lowres_adapters.testing.hub_store import HubError

def parse_ndjson(body: bytes) -> list[dict[str, Any]]:
    """Parse an ``application/x-ndjson`` commit payload into its operations."""
    return [json.loads(line) for line in body.decode("utf-8").splitlines() if line.strip()]


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Parse ``Range: bytes=a-b`` (one range) into inclusive offsets."""
    match = re.match(r"^bytes=(\d*)-(\d*)$", (header or "").strip())
    if not match or not (match.group(1) or match.group(2)):
        return None
    if not match.group(1):  # suffix range: the last N bytes
        return max(0, size - int(match.group(2))), size - 1
    start = int(match.group(1))
    end = int(match.group(2)) if match.group(2) else size - 1
    return start, min(end, size - 1)


def refs_json(repo: dict[str, Any]) -> dict[str, Any]:
    """Return the ``/refs`` answer: branches and tags with their target commits."""

    def refs(kind: str, prefix: str) -> list[dict[str, str]]:
        return [{"name": name, "ref": f"{prefix}{name}", "targetCommit": sha} for name, sha in sorted(repo[kind].items())]

    return {"branches": refs("branches", "refs/heads/"), "tags": refs("tags", "refs/tags/"), "converts": [],
            "pullRequests": []}


def file_json(path: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Return one file as ``tree`` and ``paths-info`` list it (``lfs`` only for LFS files)."""
    value: dict[str, Any] = {"type": "file", "path": path, "size": entry["size"], "oid": entry["git_oid"]}
    if entry["lfs"]:
        value["lfs"] = {"oid": entry["sha256"], "size": entry["size"], "pointerSize": 134}
    return value


def tree_json(files: dict[str, Any], folder: str, recursive: bool) -> list[dict[str, Any]]:
    """Return the entries under ``folder`` (files and sub-folders; everything below when recursive)."""
    prefix = f"{folder}/" if folder else ""
    if folder and folder in files:
        return [file_json(folder, files[folder])]
    below = {path: entry for path, entry in files.items() if path.startswith(prefix)}
    if folder and not below:
        raise HubError(404, f"Entry not found: {folder}", "EntryNotFound")
    entries: dict[str, dict[str, Any]] = {}
    for path, entry in sorted(below.items()):
        parts = path[len(prefix):].split("/")
        for depth in range(1, len(parts)):
            directory = prefix + "/".join(parts[:depth])
            if recursive or depth == 1:
                entries.setdefault(directory, {"type": "directory", "path": directory, "size": 0, "oid": "0" * 40})
        if recursive or len(parts) == 1:
            entries[path] = file_json(path, entry)
    return list(entries.values())


def paths_info_json(files: dict[str, Any], wanted: list[str]) -> list[dict[str, Any]]:
    """Return the entries of the ``wanted`` paths that exist (files or folders)."""
    found = []
    for path in wanted:
        path = path.strip("/")
        if path in files:
            found.append(file_json(path, files[path]))
        elif any(name.startswith(path + "/") for name in files):
            found.append({"type": "directory", "path": path, "size": 0, "oid": "0" * 40})
    return found


def metadata_errors(metadata: dict[str, Any]) -> list[dict[str, str]]:
    """Check the card fields the Hub checks most often (types of the common keys)."""
    errors = []
    for key in ("language", "tags", "datasets", "base_model", "metrics"):
        value = metadata.get(key)
        if value is not None and not (isinstance(value, str) or (
                isinstance(value, list) and all(isinstance(item, str) for item in value))):
            errors.append({"message": f'"{key}" must be a string or a list of strings'})
    for key in ("license", "library_name", "pipeline_tag"):
        if metadata.get(key) is not None and not isinstance(metadata[key], str):
            errors.append({"message": f'"{key}" must be a string'})
    index = metadata.get("model-index")
    if index is not None and not (isinstance(index, list) and all(
            isinstance(model, dict) and isinstance(model.get("results"), list) for model in index)):
        errors.append({"message": '"model-index" must be a list of {name, results: [...]}'})
    return errors
