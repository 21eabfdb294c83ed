"""Publish run folders to the Hugging Face Hub and load them back in two lines.

```python
from lowres_adapters import load
model, tokenizer = load("owner/name")
```

Both go through ``huggingface_hub`` and so honour ``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HOME`` and
``HF_HUB_OFFLINE``. ``publish`` uploads one commit holding the artifact only (never checkpoints or
logs): for a task run also its head description and the language adapters it was stacked on
(``language_adapters/<n>/``), and native copies for PEFT and AdapterHub users where those libraries
can load the adapter (:mod:`lowres_adapters.native`). ``load`` downloads only the files it needs and
never unpickles unless asked to; every run kind comes back as the model that was evaluated.

What ``load`` trusts in a downloaded repo (docs/security.md): nothing it would execute. It asks the
Hub for the repo first (so a refused token is never answered from the cache), downloads only an
allowlist of file types (:data:`ALLOWED_FILE`: metadata, safetensors, tokenizer JSON/text/
sentencepiece files; never ``.py`` or pickles), refuses a repo whose tokenizer asks for remote code,
and waits for the Hub at most ``HF_HUB_ETAG_TIMEOUT`` / ``HF_HUB_DOWNLOAD_TIMEOUT`` seconds per request.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

from huggingface_hub import CommitOperationAdd, HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import REGEX_COMMIT_HASH, repo_folder_name
from requests.exceptions import ConnectionError as RequestsConnectionError, Timeout

from lowres_adapters.artifact import (
    METADATA_FILE,
    METRICS_FILE,
    NATIVE_DIR,
    TOKENIZER_DIR,
    WEIGHTS_FILE,
    read_metadata,
    read_tensors,
)
from lowres_adapters.errors import LowresError
from lowres_adapters.loading import load_folder
from lowres_adapters.model_card import GENERATED_MARKER, render_model_card
from lowres_adapters.native import (
    PEFT_CONFIG_FILE,
    adapterhub_config,
    has_only_adapter_tensors,
    native_library,
    peft_files,
)
from lowres_adapters.task_loading import (
    LANGUAGE_ADAPTERS_DIR,
    TASK_HEAD_FILE,
    is_task_folder,
    read_task_description,
    stack_options,
)

README_FILE = "README.md"
_ARTIFACT_PATTERNS = [METADATA_FILE, WEIGHTS_FILE, f"{TOKENIZER_DIR}/*.json", f"{TOKENIZER_DIR}/*.txt",
                      f"{TOKENIZER_DIR}/*.model"]
DOWNLOAD_PATTERNS = [*_ARTIFACT_PATTERNS, TASK_HEAD_FILE,
                     *(f"{LANGUAGE_ADAPTERS_DIR}/*/{pattern}" for pattern in _ARTIFACT_PATTERNS)]
"""What ``load`` reads from the cache offline (the card and native files are not needed)."""
_ARTIFACT_FILE = (rf"(?:{re.escape(METADATA_FILE)}|{re.escape(WEIGHTS_FILE)}"
                  rf"|{TOKENIZER_DIR}/[A-Za-z0-9][A-Za-z0-9_.-]*\.(?:json|txt|model))")
ALLOWED_FILE = re.compile(rf"^(?:{_ARTIFACT_FILE}|{re.escape(TASK_HEAD_FILE)}"
                          rf"|{LANGUAGE_ADAPTERS_DIR}/[1-9][0-9]?/{_ARTIFACT_FILE})$")
"""The only repo paths ``load`` downloads: an artifact's metadata, tensors and tokenizer files, and for
a task run its head description and the language adapters under ``language_adapters/<n>/`` (no code,
no pickles, no other sub-folders, no ``..``)."""
REMOTE_CODE_KEYS = ("auto_map",)
"""Keys of a tokenizer JSON file that make transformers import code shipped in the repo."""
NATIVE_SUFFIXES = (".safetensors", ".json")
"""AdapterHub files that are published (its pickled ``.bin`` files never are)."""
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def publish(run_dir: str | Path, repo_id: str, *, private: bool = False, revision: str | None = None,
            token: str | None = None, commit_message: str | None = None) -> Any:
    """Upload a run folder's artifact to the Hub as one commit.

    Uploads ``adapter.safetensors``, ``lowres_adapter.json``, ``metrics.json``, ``tokenizer/`` (when
    the vocabulary was extended), the AdapterHub files under ``adapterhub/`` (safetensors and JSON)
    and a ``README.md`` model card rendered from the metadata (a hand-written README, one without
    the generated-card marker, is uploaded as it is). Checkpoints, logs and run settings stay local.

    Args:
        run_dir: A run folder written by ``lowres adapt``.
        repo_id: ``owner/name``; created if missing.
        private: Create the repo private (an existing repo keeps its visibility).
        revision: Branch to commit to (created from ``main`` if missing); ``main`` by default.
        token: Hub token; defaults to ``HF_TOKEN`` or the token saved by ``hf auth login``.
        commit_message: Commit title; a summary of the adapter by default.

    Returns:
        ``huggingface_hub.CommitInfo`` (``.oid`` is the new revision, ``.commit_url`` its page).

    Raises:
        LowresError: Not a run folder, a file holding the token, or a Hub error (one line, never the token).
    """
    run_dir = Path(run_dir)
    _check_repo_id(repo_id)
    files = publish_files(run_dir, repo_id)
    secrets = _known_tokens(token)
    for path_in_repo, content in files.items():
        if any(secret.encode() in content for secret in secrets):
            raise LowresError(f"{run_dir / path_in_repo}: holds a Hub access token; refusing to publish it")
    metadata = read_metadata(run_dir)
    message = commit_message or (f"Publish {metadata.adapter_type} adapter"
                                 + (f" for {metadata.language}" if metadata.language else ""))
    api = HfApi(token=token)
    with hub_errors(repo_id, revision, secrets):
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=content)
                      for path, content in sorted(files.items())]
        return api.create_commit(repo_id, operations, commit_message=message, revision=revision)


def publish_files(run_dir: Path, repo_id: str | None = None) -> dict[str, bytes]:
    """Return ``{path_in_repo: bytes}``: exactly what ``publish`` uploads from ``run_dir``."""
    metadata = read_metadata(run_dir)
    tensors = read_tensors(run_dir)  # one clear line for a missing or corrupt weights file, before any upload
    files = {METADATA_FILE: (run_dir / METADATA_FILE).read_bytes(),
             WEIGHTS_FILE: (run_dir / WEIGHTS_FILE).read_bytes()}
    if (run_dir / METRICS_FILE).is_file():
        files[METRICS_FILE] = (run_dir / METRICS_FILE).read_bytes()
    if metadata.vocabulary:
        if not (run_dir / TOKENIZER_DIR).is_dir():
            raise LowresError(f"{run_dir / TOKENIZER_DIR}: missing; the run extended the vocabulary")
        files.update(_folder_files(run_dir, TOKENIZER_DIR, suffixes=None))
    files.update(native_files(run_dir, metadata, tensors))
    if is_task_folder(run_dir):
        files.update(_task_files(run_dir))
    readme = run_dir / README_FILE
    if readme.is_file() and GENERATED_MARKER not in readme.read_text("utf-8", errors="replace"):
        files[README_FILE] = readme.read_bytes()
    else:
        has_native = any(path.startswith(f"{NATIVE_DIR}/") for path in files)
        library = "peft" if PEFT_CONFIG_FILE in files else "adapter-transformers" if has_native else None
        card = render_model_card(metadata, repo_id=repo_id, directory=run_dir, has_native=has_native,
                                 library=library)
        files[README_FILE] = card.encode("utf-8")
    return files


def native_files(run_dir: Path, metadata: Any, tensors: dict[str, Any]) -> dict[str, bytes]:
    """Return the native copies ``publish`` uploads (:mod:`lowres_adapters.native`): PEFT's files at
    the root where PEFT can load the adapter, AdapterHub's under ``adapterhub/`` for its types; none
    when the run also holds new vocabulary rows or trained base tensors."""
    if not has_only_adapter_tensors(metadata, tensors):
        return {}
    files = peft_files(run_dir, metadata, tensors)
    if native_library(run_dir) == "adapters":
        for path, content in _folder_files(run_dir, NATIVE_DIR, suffixes=NATIVE_SUFFIXES).items():
            files[path] = adapterhub_config(content, metadata) if path.endswith(PEFT_CONFIG_FILE) else content
    return files


def _task_files(run_dir: Path) -> dict[str, bytes]:
    """Return ``task_head.json`` (with the fusion kind) and the language adapters a task run was
    stacked on, as ``language_adapters/<n>/`` artifact folders (what ``load`` rebuilds the stack from)."""
    folders, fusion = stack_options(run_dir, trusted=True)
    description = {**read_task_description(run_dir), "fusion": fusion}
    files = {TASK_HEAD_FILE: (json.dumps(description, indent=2) + "\n").encode("utf-8")}
    for index, folder in enumerate(folders, start=1):
        if not folder.is_dir():
            raise LowresError(f"{folder}: language adapter of {run_dir} not found; it must be published with it")
        language = read_metadata(folder)
        read_tensors(folder)
        prefix = f"{LANGUAGE_ADAPTERS_DIR}/{index}/"
        files[prefix + METADATA_FILE] = (folder / METADATA_FILE).read_bytes()
        files[prefix + WEIGHTS_FILE] = (folder / WEIGHTS_FILE).read_bytes()
        if language.vocabulary:
            files.update({prefix + path: content
                          for path, content in _folder_files(folder, TOKENIZER_DIR, suffixes=None).items()})
    return files


def _folder_files(run_dir: Path, folder: str, suffixes: tuple[str, ...] | None) -> dict[str, bytes]:
    found = {}
    for path in sorted((run_dir / folder).rglob("*")) if (run_dir / folder).is_dir() else []:
        if not path.is_file() or path.name.startswith(".") or path.suffix in PICKLE_SUFFIXES:
            continue
        if suffixes is None or path.suffix in suffixes:
            found[path.relative_to(run_dir).as_posix()] = path.read_bytes()
    return found


def load(repo_or_path: str | Path, *, revision: str | None = None, model: str | None = None,
         token: str | None = None, allow_pickle: bool = False, device: str | None = None) -> tuple[Any, Any]:
    """Load a published adapter onto its base model: ``model, tokenizer = load("owner/name")``.

    Args:
        repo_or_path: A Hub repo id (``owner/name``) or a local artifact folder.
        revision: Branch, tag or commit of the repo to load (pins a version); latest ``main`` by default.
        model: Base model id or folder to use instead of the one recorded in the artifact.
        token: Hub token for private repos; defaults to ``HF_TOKEN`` or the saved token.
        allow_pickle: Allow a base model stored as pickled ``.bin`` files. Off by default.
        device: ``auto``, ``cpu``, ``cuda`` or ``mps`` to put the model on; None keeps the CPU.

    Returns:
        ``(model, tokenizer)``: the model with the adapter attached, active and in eval mode.

    Raises:
        LowresError: Unknown repo or revision, a private repo without a valid token, not cached while
            offline, an adapter type that is not installed, corrupt weights or a mismatched base model.
    """
    loaded = load_adapter(repo_or_path, revision=revision, model=model, token=token, allow_pickle=allow_pickle,
                          device=device)
    return loaded.model, loaded.tokenizer


def load_adapter(repo_or_path: str | Path, *, revision: str | None = None, model: str | None = None,
                 token: str | None = None, allow_pickle: bool = False, device: str | None = None) -> Any:
    """Do what :func:`load` does but return the :class:`~lowres_adapters.loading.LoadedAdapter`.

    It also carries the adapter handle and the artifact metadata (type, language, metrics).
    """
    folder = Path(repo_or_path).expanduser()
    if not folder.is_dir():
        folder = download(str(repo_or_path), revision=revision, token=token)
        return load_folder(folder, model=model, allow_pickle=allow_pickle, trusted=False, device=device)
    if revision is not None:
        raise LowresError(f"{repo_or_path}: revision= applies to Hub repos, not to a local folder")
    return load_folder(folder, model=model, allow_pickle=allow_pickle, device=device)


def hub_timeout() -> float:
    """Return the seconds ``load`` waits for one answer from the Hub (``HF_HUB_ETAG_TIMEOUT``, 10 by default)."""
    return float(constants.HF_HUB_ETAG_TIMEOUT)


def download(repo_id: str, *, revision: str | None = None, token: str | None = None) -> Path:
    """Download (or find in the cache) the files ``load`` needs and return the snapshot folder.

    Online, the Hub is asked for the repo first (with a bounded timeout): a refusal (401, 404,
    gated) is one line, never a fallback to a cached copy. With ``HF_HUB_OFFLINE=1`` only the
    cache is read, by the user's choice. Only :data:`ALLOWED_FILE` paths are downloaded.

    Raises:
        LowresError: Refused, unknown, unreachable or silent Hub, not an adapter repo, or a repo
            whose tokenizer needs remote code (one line, never the token).
    """
    _check_repo_id(repo_id)
    with hub_errors(repo_id, revision, _known_tokens(token), loading=True):
        if constants.HF_HUB_OFFLINE:
            folder = Path(snapshot_download(repo_id, revision=revision, token=token,
                                            allow_patterns=DOWNLOAD_PATTERNS, local_files_only=True))
        else:
            info = HfApi(token=token).repo_info(repo_id, revision=revision, timeout=hub_timeout())
            wanted = allowed_files(sibling.rfilename for sibling in info.siblings or [])
            if METADATA_FILE not in wanted:
                raise LowresError(f"{repo_id}: has no {METADATA_FILE}; it is not an adapter published by "
                                  "lowres-adapters")
            folder = _snapshot_folder(repo_id, str(info.sha))
            for name in wanted:
                hf_hub_download(repo_id, name, revision=info.sha, token=token, etag_timeout=hub_timeout())
            _record_ref(repo_id, revision or "main", str(info.sha))
    if not (folder / METADATA_FILE).is_file():
        raise LowresError(f"{repo_id}: has no {METADATA_FILE}; it is not an adapter published by lowres-adapters")
    refuse_remote_code(folder, repo_id)
    return folder


def allowed_files(paths: Any) -> list[str]:
    """Return the repo paths ``load`` may download (:data:`ALLOWED_FILE`), sorted; the rest is never fetched."""
    return sorted(path for path in set(paths) if isinstance(path, str) and ALLOWED_FILE.match(path))


def refuse_remote_code(folder: Path, repo_id: str) -> None:
    """Raise one line when a tokenizer file of ``folder`` (or of a task run's language adapter) asks
    transformers to run the repo's own code."""
    found = [*folder.glob(f"{TOKENIZER_DIR}/*.json"), *folder.glob(f"{LANGUAGE_ADAPTERS_DIR}/*/{TOKENIZER_DIR}/*.json")]
    for path in sorted(found):
        shown = path.relative_to(folder).as_posix()
        try:
            values = json.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise LowresError(f"{repo_id}: {shown} is not valid JSON") from None
        if isinstance(values, dict) and any(key in values for key in REMOTE_CODE_KEYS):
            raise LowresError(f"{repo_id}: {shown} asks to run code from the repo (auto_map); "
                              "lowres-adapters never runs a repo's code")


def _snapshot_folder(repo_id: str, sha: str) -> Path:
    return Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model") / "snapshots" / sha


def _record_ref(repo_id: str, revision: str, sha: str) -> None:
    """Remember which commit a branch or tag pointed to, so offline loads by name find the snapshot."""
    if REGEX_COMMIT_HASH.match(revision) or ".." in revision:
        return
    ref = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model") / "refs" / revision
    with contextlib.suppress(OSError):
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(sha)


def _check_repo_id(repo_id: str) -> None:
    if not _REPO_ID.match(repo_id) or ".." in repo_id:
        raise LowresError(f"{repo_id!r}: not a local folder and not a Hub repo id of the form owner/name")


def _known_tokens(token: str | None) -> list[str]:
    """Return the tokens that must never be uploaded or printed (given, from HF_TOKEN, saved)."""
    found = [token, os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN")]
    with contextlib.suppress(Exception):  # lazy: older huggingface_hub has no get_token
        from huggingface_hub import get_token

        found.append(get_token())
    return [value for value in dict.fromkeys(found) if value and len(value) >= 8]


@contextlib.contextmanager
def hub_errors(repo_id: str, revision: str | None, secrets: list[str], loading: bool = False) -> Iterator[None]:
    """Turn ``huggingface_hub`` and connection errors into one-line :class:`LowresError` (no tokens).

    With ``loading``, an unreachable Hub names ``HF_HUB_OFFLINE=1`` (a load never falls back to the
    cache on its own).
    """
    at = f"{repo_id}@{revision}" if revision else repo_id
    try:
        yield
    except RevisionNotFoundError:
        message = f"{at}: revision {revision!r} not found"
    except GatedRepoError:
        message = f"{repo_id}: the repository is gated; request access on its page, then pass a token"
    except RepositoryNotFoundError:
        message = (f"{repo_id}: repository not found, or private and no valid token was given "
                   "(set HF_TOKEN or pass token=)")
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as error:
        if isinstance(error.__cause__ or error.__context__, Timeout):
            message = _timeout_message(at, constants.ENDPOINT)
        else:
            message = (f"{at}: not in the local cache ({constants.HF_HUB_CACHE}) and the Hub cannot be reached "
                       f"{'(HF_HUB_OFFLINE is set)' if constants.HF_HUB_OFFLINE else ''}").rstrip()
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        if status == 401:
            message = f"{at}: not authorised: the Hub token is missing or invalid (set HF_TOKEN or pass token=)"
        elif status == 403:
            message = f"{at}: this token may not write to {repo_id.split('/')[0]}/"
        else:
            server = (error.server_message or str(error)).strip().splitlines()
            message = f"{at}: Hub error {status}: {server[0] if server else 'no details'}"
    except Timeout:
        message = _timeout_message(at, constants.ENDPOINT)
    except RequestsConnectionError as error:
        message = f"cannot reach the Hub at {constants.ENDPOINT} ({type(error).__name__})"
        if loading:
            message += "; HF_HUB_OFFLINE=1 loads from the cache"
    else:
        return
    for secret in secrets:
        message = message.replace(secret, "***")
    raise LowresError(message) from None


def _timeout_message(at: str, endpoint: str) -> str:
    return (f"{at}: the Hub at {endpoint} did not answer within {hub_timeout():g} s "
            "(HF_HUB_ETAG_TIMEOUT / HF_HUB_DOWNLOAD_TIMEOUT set the wait; HF_HUB_OFFLINE=1 uses the cache)")
