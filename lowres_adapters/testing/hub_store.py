"""Storage and permissions of the loopback Hub: users, repos, commits, refs and blobs on disk.

Everything the HTTP layer (:mod:`lowres_adapters.testing.hub`) serves lives here, in a directory:

```
ROOT/
  blobs/ab/<sha256>                      file contents, addressed by sha256 (regular and LFS files)
  repos/<type>/<owner>/<name>.json       {"private", "branches", "tags", "commits": {sha: commit}}
```

A commit is ``{"id", "parents", "title", "message", "date", "author", "files": {path: entry}}`` with
``entry = {"sha256", "size", "git_oid", "lfs"}``; the whole file map is stored per commit, which is
plenty for test repos. Permissions follow the real Hub (see :class:`HubStore` methods).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterable

from lowres_adapters.io import atomic_write

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".gguf",
                ".npy", ".npz", ".pkl", ".pickle", ".model", ".zip", ".tar", ".gz", ".arrow", ".parquet")
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES)
REPO_TYPES = ("model", "dataset", "space")


@dataclass(frozen=True)
class HubUser:
    """A user of the loopback Hub.

    Attributes:
        name: User name (the namespace of their repos).
        token: Their access token (``Authorization: Bearer <token>``).
        orgs: Organisations they may write to.
    """

    name: str
    token: str
    orgs: tuple[str, ...] = field(default=())


TEST_USERS = (
    HubUser("alice", "hf_loopback_alice_token", ("lowres-org",)),
    HubUser("bob", "hf_loopback_bob_token"),
)
"""Built-in users: alice (member of ``lowres-org``) and bob. Their tokens are public test values."""


class HubError(Exception):
    """An HTTP error answered with the Hub's ``X-Error-Code`` / ``X-Error-Message`` headers."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def git_blob_oid(data: bytes) -> str:
    """Return git's sha1 of a blob (what the Hub reports as the oid of a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def now_iso() -> str:
    """Return the current UTC time as the Hub writes it (``2024-01-31T12:00:00.000Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def is_lfs(path: str, size: int, sample: bytes = b"") -> bool:
    """Decide the upload mode the Hub would give a file: LFS for weights, large or binary files."""
    return path.endswith(LFS_SUFFIXES) or size >= LFS_SIZE_THRESHOLD or b"\0" in sample


class HubStore:
    """Users, repos, commits and blobs of one loopback Hub, kept in ``root``.

    Args:
        root: Directory holding the state (created if missing; reused across restarts).
        users: The users and their tokens.
    """

    def __init__(self, root: Path, users: Iterable[HubUser] = TEST_USERS) -> None:
        self.root = Path(root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        (self.root / "repos").mkdir(parents=True, exist_ok=True)
        self.users = {user.token: user for user in users}
        self.lock = threading.RLock()

    # -- auth --------------------------------------------------------------------------------
    def authenticate(self, authorization: str | None) -> HubUser | None:
        """Return the user of an ``Authorization`` header; None when absent; 401 for an unknown token."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        user = self.users.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return user

    @staticmethod
    def can_write_namespace(user: HubUser, namespace: str) -> bool:
        """Return True when ``user`` may create repos under ``namespace``."""
        return namespace == user.name or namespace in user.orgs

    # -- repos -------------------------------------------------------------------------------
    def _repo_file(self, repo_type: str, repo_id: str) -> Path:
        owner, name = repo_id.split("/", 1)
        return self.root / "repos" / repo_type / owner / f"{name}.json"

    def _save(self, repo_type: str, repo_id: str, repo: dict[str, Any]) -> None:
        with atomic_write(self._repo_file(repo_type, repo_id)) as stream:
            json.dump(repo, stream)

    def load_repo(self, repo_type: str, repo_id: str) -> dict[str, Any] | None:
        """Return a repo's state, or None when it does not exist."""
        path = self._repo_file(repo_type, repo_id)
        return json.loads(path.read_text("utf-8")) if path.exists() else None

    def readable_repo(self, user: HubUser | None, repo_type: str, repo_id: str) -> dict[str, Any]:
        """Return a repo ``user`` may read: missing or private -> 401 anonymous, 404 for other users."""
        repo = self.load_repo(repo_type, repo_id)
        visible = repo is not None and (not repo["private"] or (
            user is not None and self.can_write_namespace(user, repo_id.split("/")[0])))
        if not visible:
            status = 401 if user is None else 404
            raise HubError(status, "Repository not found", "RepoNotFound")
        return repo  # type: ignore[return-value]

    def writable_repo(self, user: HubUser | None, repo_type: str, repo_id: str) -> dict[str, Any]:
        """Return a repo ``user`` may write to: no token -> 401, not the owner -> 403."""
        if user is None:
            raise HubError(401, "You must be authenticated to write to a repository", "RepoNotFound")
        repo = self.readable_repo(user, repo_type, repo_id)
        if not self.can_write_namespace(user, repo_id.split("/")[0]):
            raise HubError(403, f"You don't have the rights to write to {repo_id}")
        return repo

    def create_repo(self, user: HubUser | None, repo_type: str, repo_id: str, private: bool) -> bool:
        """Create a repo with an initial commit on ``main``; return False when it already exists."""
        if user is None:
            raise HubError(401, "You must be authenticated to create a repository")
        if not self.can_write_namespace(user, repo_id.split("/")[0]):
            raise HubError(403, f"You don't have the rights to create a repository under {repo_id.split('/')[0]}")
        with self.lock:
            if self.load_repo(repo_type, repo_id) is not None:
                return False
            repo: dict[str, Any] = {"private": bool(private), "created": now_iso(), "branches": {},
                                    "tags": {}, "commits": {}}
            files = {".gitattributes": self._file_entry(".gitattributes", self.put_blob(GITATTRIBUTES.encode()))}
            self._add_commit(repo, "main", None, "system", "initial commit", "", files)
            self._save(repo_type, repo_id, repo)
            return True

    def plant_repo(self, repo_id: str, files: dict[str, bytes], private: bool = False,
                   repo_type: str = "model") -> str:
        """Create or update a repo holding exactly ``files`` in one commit on ``main``; return its id.

        Bypasses the client's path checks on purpose: tests use it to serve hostile repos (paths
        with ``..``, code files, pickles) the way a compromised Hub or mirror could.
        """
        with self.lock:
            repo = self.load_repo(repo_type, repo_id)
            if repo is None:
                repo = {"private": bool(private), "created": now_iso(), "branches": {}, "tags": {}, "commits": {}}
            repo["private"] = bool(private)
            entries = {path: self._file_entry(path, self.put_blob(data)) for path, data in files.items()}
            sha = self._add_commit(repo, "main", repo["branches"].get("main"), repo_id.split("/")[0],
                                   "planted", "", entries)
            self._save(repo_type, repo_id, repo)
            return sha

    def delete_repo(self, user: HubUser | None, repo_type: str, repo_id: str) -> None:
        """Delete a repo (its blobs stay: they are shared by content)."""
        with self.lock:
            self.writable_repo(user, repo_type, repo_id)
            self._repo_file(repo_type, repo_id).unlink()

    def set_private(self, user: HubUser | None, repo_type: str, repo_id: str, private: bool) -> None:
        """Change a repo's visibility."""
        with self.lock:
            repo = self.writable_repo(user, repo_type, repo_id)
            repo["private"] = bool(private)
            self._save(repo_type, repo_id, repo)

    # -- revisions ---------------------------------------------------------------------------
    @staticmethod
    def resolve(repo: dict[str, Any], revision: str) -> str:
        """Return the commit id of a branch, a tag or a commit id (a unique prefix of 7+ is enough)."""
        for refs in (repo["branches"], repo["tags"]):
            if revision in refs:
                return refs[revision]
        if len(revision) >= 7:
            found = [sha for sha in repo["commits"] if sha.startswith(revision.lower())]
            if len(found) == 1:
                return found[0]
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    @staticmethod
    def history(repo: dict[str, Any], sha: str) -> list[dict[str, Any]]:
        """Return the commits reachable from ``sha``, newest first."""
        commits = []
        while sha:
            commit = repo["commits"][sha]
            commits.append(commit)
            sha = commit["parents"][0] if commit["parents"] else ""
        return commits

    def set_ref(self, user: HubUser | None, repo_type: str, repo_id: str, kind: str, name: str,
                target: str | None) -> None:
        """Create (``target`` given) or delete a branch or tag; 409 if it exists, 404 if missing."""
        with self.lock:
            repo = self.writable_repo(user, repo_type, repo_id)
            refs = repo["branches" if kind == "branch" else "tags"]
            if target is None:
                if name not in refs:
                    raise HubError(404, f"{kind} {name} not found", "RevisionNotFound")
                if kind == "branch" and name == "main":
                    raise HubError(403, "Cannot delete the main branch")
                del refs[name]
            else:
                if name in refs:
                    raise HubError(409, f"{kind} {name} already exists")
                refs[name] = self.resolve(repo, target)
            self._save(repo_type, repo_id, repo)

    # -- blobs -------------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        """Return where the blob with this sha256 lives."""
        return self.root / "blobs" / sha256[:2] / sha256

    def put_blob(self, data: bytes) -> str:
        """Store ``data`` and return its sha256."""
        sha256 = hashlib.sha256(data).hexdigest()
        self.write_blob_stream(sha256, len(data), io.BytesIO(data))
        return sha256

    def write_blob_stream(self, sha256: str, size: int, stream: BinaryIO) -> None:
        """Copy ``size`` bytes from ``stream`` into the blob store, checking their sha256 (400 if wrong)."""
        digest, remaining = hashlib.sha256(), size
        with atomic_write(self.blob_path(sha256), "wb") as out:
            while remaining > 0:
                chunk = stream.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
                remaining -= len(chunk)
            if remaining or digest.hexdigest() != sha256:
                raise HubError(400, "uploaded content does not match its oid and size")

    def has_blob(self, sha256: str, size: int | None = None) -> bool:
        """Return True when the blob is stored (with ``size`` bytes, if given)."""
        path = self.blob_path(sha256)
        return path.exists() and (size is None or path.stat().st_size == size)

    def _file_entry(self, path: str, sha256: str, lfs: bool | None = None) -> dict[str, Any]:
        data = self.blob_path(sha256).read_bytes()
        if lfs is None:
            lfs = is_lfs(path, len(data), data[:512])
        return {"sha256": sha256, "size": len(data), "git_oid": git_blob_oid(data), "lfs": lfs}

    # -- commits -----------------------------------------------------------------------------
    def commit(self, user: HubUser | None, repo_type: str, repo_id: str, branch: str,
               operations: list[dict[str, Any]]) -> str:
        """Apply NDJSON commit operations to ``branch`` and return the new commit id.

        Raises:
            HubError: 404 RevisionNotFound for an unknown branch, 412 when ``parentCommit`` is not
                the branch head, 404 EntryNotFound when deleting a missing file, 422 for an LFS
                file whose content was never uploaded.
        """
        header = next((op["value"] for op in operations if op.get("key") == "header"), None)
        if header is None:
            raise HubError(400, "commit payload has no header line")
        with self.lock:
            repo = self.writable_repo(user, repo_type, repo_id)
            if branch not in repo["branches"]:
                raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            head = repo["branches"][branch]
            parent = header.get("parentCommit")
            if parent and parent != head:
                raise HubError(412, f"A commit has happened since {parent}; head is {head}")
            files = dict(repo["commits"][head]["files"])
            for operation in operations:
                self._apply(files, operation.get("key"), operation.get("value") or {})
            sha = self._add_commit(repo, branch, head, user.name, header.get("summary") or "update",
                                   header.get("description") or "", files)
            self._save(repo_type, repo_id, repo)
            return sha

    def _apply(self, files: dict[str, Any], key: str | None, value: dict[str, Any]) -> None:
        path = value.get("path", "")
        if key == "file":
            data = base64.b64decode(value.get("content", "")) if value.get("encoding") == "base64" \
                else str(value.get("content", "")).encode()
            files[path] = self._file_entry(path, self.put_blob(data))
        elif key == "lfsFile":
            oid = value.get("oid", "")
            if not self.has_blob(oid):
                raise HubError(422, f"LFS object {oid} for {path} was not uploaded")
            files[path] = self._file_entry(path, oid, lfs=True)
        elif key == "deletedFile":
            if path not in files:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            del files[path]
        elif key == "deletedFolder":
            prefix = path.rstrip("/") + "/"
            for name in [name for name in files if name.startswith(prefix)]:
                del files[name]
        elif key != "header":
            raise HubError(400, f"unsupported commit operation {key!r}")

    def _add_commit(self, repo: dict[str, Any], branch: str, parent: str | None, author: str,
                    title: str, message: str, files: dict[str, Any]) -> str:
        date = now_iso()
        digest = hashlib.sha1(json.dumps([parent, author, title, message, date, files, time.time_ns()],
                                         sort_keys=True).encode())
        sha = digest.hexdigest()
        repo["commits"][sha] = {"id": sha, "parents": [parent] if parent else [], "title": title,
                                "message": message, "date": date, "author": author, "files": files}
        repo["branches"][branch] = sha
        return sha

