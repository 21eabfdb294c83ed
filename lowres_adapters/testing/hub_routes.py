"""The request handler of the loopback Hub (:mod:`lowres_adapters.testing.hub`): one method per
route ``huggingface_hub`` uses, answering from the server's :class:`~lowres_adapters.testing.hub_store.HubStore`.
"""

from __future__ import annotations

import base64
import io
import json
import re
import secrets
import sys
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import yaml

from lowres_adapters.testing.hub_json import (
    byte_range,
    metadata_errors,
    parse_ndjson,
    paths_info_json,
    refs_json,
    tree_json,
)
from lowres_adapters.testing.hub_store import HubError, is_lfs

if TYPE_CHECKING:  # hub.py imports this module to build its server
    from lowres_adapters.testing.hub import LoopbackHub

_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_API_REPO = re.compile(r"^/api/(models|datasets|spaces)/([^/]+)/([^/]+)(?:/(.*))?$")
_LFS_BATCH = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+)/([^/]+?)\.git/info/lfs/objects/(batch|verify)$")
_RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+)/([^/]+)/resolve/([^/]+)/(.+)$")
_UPLOAD = re.compile(r"^/_loopback/lfs-upload/([A-Za-z0-9_-]+)$")


class HubRequestHandler(BaseHTTPRequestHandler):
    """Route one request to the store and answer JSON (or file bytes) the way the Hub does."""

    protocol_version = "HTTP/1.1"
    server: LoopbackHub

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.server.verbose:
            sys.stderr.write(f"loopback-hub: {self.command} {urlsplit(self.path).path} -> {args[1:2]}\n")

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    # -- plumbing ----------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        """Read the whole request body (always, even on errors, so keep-alive stays in sync)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _dispatch(self) -> None:
        self.body = self._read_body()
        split = urlsplit(self.path)
        self.server.requests.append((self.command, unquote(split.path)))
        self.query = parse_qs(split.query)
        try:
            self.user = self.server.store.authenticate(self.headers.get("Authorization"))
            self._route(split.path)
        except HubError as error:
            self._send_json({"error": error.message}, error.status, error_code=error.code,
                            error_message=error.message)
        except (ValueError, KeyError, json.JSONDecodeError) as error:
            self._send_json({"error": f"bad request: {error}"}, 400, error_message="Bad request")
        except Exception as error:  # noqa: BLE001 - answer 500 rather than drop the connection
            self._send_json({"error": f"{type(error).__name__}: {error}"}, 500, error_message="Internal error")

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, value: Any, status: int = 200, error_code: str | None = None,
                   error_message: str | None = None, content_type: str = "application/json") -> None:
        headers = {}
        if error_code:
            headers["X-Error-Code"] = error_code
        if error_message:
            headers["X-Error-Message"] = error_message.encode("ascii", "replace").decode()
        self._send(status, json.dumps(value).encode(), content_type, headers)

    def _json_body(self) -> dict[str, Any]:
        value = json.loads(self.body or b"{}")
        if not isinstance(value, dict):
            raise ValueError("expected a JSON object")
        return value

    def _route(self, path: str) -> None:
        method, store = self.command, self.server.store
        if path == "/api/whoami-v2" and method == "GET":
            return self._whoami()
        if path == "/api/validate-yaml" and method == "POST":
            return self._validate_yaml()
        if path in ("/api/repos/create", "/api/repos/delete") and method in ("POST", "DELETE"):
            return self._create_or_delete(path.endswith("create"))
        if match := _UPLOAD.match(path):
            return self._lfs_upload(match.group(1))
        if match := _LFS_BATCH.match(path):
            repo_type = _TYPES.get(match.group(1) or "models", "model")
            repo_id = f"{unquote(match.group(2))}/{unquote(match.group(3))}"
            store.writable_repo(self.user, repo_type, repo_id)
            return self._lfs_batch(repo_type, repo_id) if match.group(4) == "batch" else self._lfs_verify()
        if match := _RESOLVE.match(path):
            repo_type = _TYPES.get(match.group(1) or "models", "model")
            repo_id = f"{unquote(match.group(2))}/{unquote(match.group(3))}"
            return self._resolve(repo_type, repo_id, unquote(match.group(4)), unquote(match.group(5)))
        if match := _API_REPO.match(path):
            repo_id = f"{unquote(match.group(2))}/{unquote(match.group(3))}"
            return self._repo_api(_TYPES[match.group(1)], repo_id, match.group(4) or "")
        raise HubError(404, f"no route for {method} {path}")

    # -- account and repos -------------------------------------------------------------------
    def _whoami(self) -> None:
        if self.user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        orgs = [{"type": "org", "name": org, "roleInOrg": "write"} for org in self.user.orgs]
        self._send_json({"type": "user", "name": self.user.name, "fullname": self.user.name.title(),
                         "orgs": orgs, "auth": {"type": "access_token",
                                                "accessToken": {"displayName": "loopback", "role": "write"}}})

    def _validate_yaml(self) -> None:
        content = str(self._json_body().get("content", ""))
        errors: list[dict[str, str]] = []
        match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.DOTALL)
        if match:
            try:
                metadata = yaml.safe_load(match.group(1)) or {}
            except yaml.YAMLError as error:
                metadata, errors = {}, [{"message": f"invalid YAML: {error}"}]
            if not isinstance(metadata, dict):
                errors.append({"message": "metadata must be a YAML mapping"})
            else:
                errors.extend(metadata_errors(metadata))
        warnings = [] if match else [{"message": "empty or missing yaml metadata in repo card"}]
        self._send_json({"errors": errors, "warnings": warnings}, 400 if errors else 200)

    def _create_or_delete(self, create: bool) -> None:
        body = self._json_body()
        namespace = body.get("organization") or (self.user.name if self.user else "")
        repo_id = f"{namespace}/{body['name']}"
        repo_type = body.get("type") or "model"
        url = f"{self.server.url}/{'' if repo_type == 'model' else repo_type + 's/'}{repo_id}"
        if not create:
            self.server.store.delete_repo(self.user, repo_type, repo_id)
            return self._send_json({})
        if self.server.store.create_repo(self.user, repo_type, repo_id, bool(body.get("private"))):
            return self._send_json({"url": url, "name": repo_id, "id": repo_id})
        self._send_json({"error": "You already created this model repo", "url": url}, 409,
                        error_message="You already created this model repo")

    def _repo_api(self, repo_type: str, repo_id: str, rest: str) -> None:
        store, method = self.server.store, self.command
        action, _, tail = rest.partition("/")
        if action == "preupload" and method == "POST":
            return self._preupload(store.writable_repo(self.user, repo_type, repo_id), unquote(tail))
        if action == "commit" and method == "POST":
            if self.query.get("create_pr"):
                raise HubError(400, "pull requests are not supported by the loopback Hub")
            sha = store.commit(self.user, repo_type, repo_id, unquote(tail), parse_ndjson(self.body))
            prefix = "" if repo_type == "model" else f"{repo_type}s/"
            return self._send_json({"commitOid": sha, "commitUrl": f"{self.server.url}/{prefix}{repo_id}/commit/{sha}",
                                    "pullRequestUrl": None})
        if action == "settings" and method == "PUT":
            body = self._json_body()
            if "private" in body:
                store.set_private(self.user, repo_type, repo_id, body["private"])
            return self._send_json({})
        if action in ("branch", "tag") and method in ("POST", "DELETE"):
            name = unquote(tail)
            if method == "DELETE":
                store.set_ref(self.user, repo_type, repo_id, action, name, None)
            elif action == "branch":
                store.set_ref(self.user, repo_type, repo_id, "branch", name, self._json_body().get("startingPoint") or "main")
            else:
                store.set_ref(self.user, repo_type, repo_id, "tag", self._json_body()["tag"], name)
            return self._send_json({})
        repo = store.readable_repo(self.user, repo_type, repo_id)
        if action in ("", "revision") and method == "GET":
            return self._send_json(self._info(repo, repo_id, unquote(tail) if action else "main"))
        if action == "refs" and method == "GET":
            return self._send_json(refs_json(repo))
        if action == "commits" and method == "GET":
            history = store.history(repo, store.resolve(repo, unquote(tail) or "main"))
            return self._send_json([{"id": c["id"], "title": c["title"], "message": c["message"], "date": c["date"],
                                     "authors": [{"user": c["author"]}]} for c in history])
        if action == "tree" and method == "GET":
            revision, _, folder = tail.partition("/")
            recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
            files = repo["commits"][store.resolve(repo, unquote(revision))]["files"]
            return self._send_json(tree_json(files, unquote(folder).strip("/"), recursive))
        if action == "paths-info" and method == "POST":
            files = repo["commits"][store.resolve(repo, unquote(tail))]["files"]
            wanted = parse_qs(self.body.decode("utf-8")).get("paths", []) if self.body else []
            return self._send_json(paths_info_json(files, wanted))
        raise HubError(404, f"no route for {method} {rest or repo_id}")

    def _info(self, repo: dict[str, Any], repo_id: str, revision: str) -> dict[str, Any]:
        sha = self.server.store.resolve(repo, revision)
        commit = repo["commits"][sha]
        with_blobs = self.query.get("blobs", ["false"])[0].lower() in ("1", "true")
        siblings = []
        for path, entry in sorted(commit["files"].items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if with_blobs:
                sibling.update(size=entry["size"], blobId=entry["git_oid"])
                if entry["lfs"]:
                    sibling["lfs"] = {"sha256": entry["sha256"], "size": entry["size"], "pointerSize": 134}
            siblings.append(sibling)
        return {"id": repo_id, "modelId": repo_id, "author": repo_id.split("/")[0], "sha": sha,
                "private": repo["private"], "gated": False, "disabled": False, "lastModified": commit["date"],
                "createdAt": repo["created"], "tags": [], "siblings": siblings, "downloads": 0, "likes": 0}

    # -- uploads -----------------------------------------------------------------------------
    def _preupload(self, repo: dict[str, Any], revision: str) -> None:
        files = repo["commits"][self.server.store.resolve(repo, revision)]["files"]
        answers = []
        for item in self._json_body().get("files", []):
            sample = base64.b64decode(item.get("sample", ""))
            lfs = is_lfs(item["path"], int(item.get("size", 0)), sample)
            existing = files.get(item["path"])
            oid = None
            if existing is not None and existing["lfs"] == lfs:
                oid = existing["sha256"] if lfs else existing["git_oid"]
            answers.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular",
                            "shouldIgnore": False, "oid": oid})
        self._send_json({"files": answers, "commitOid": None})

    def _lfs_batch(self, repo_type: str, repo_id: str) -> None:
        body = self._json_body()
        if body.get("operation") != "upload":
            raise HubError(400, "the loopback Hub only accepts LFS uploads through batch")
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        objects = []
        for item in body.get("objects", []):
            oid, size = str(item["oid"]), int(item["size"])
            answer: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if not self.server.store.has_blob(oid, size):
                ticket = secrets.token_urlsafe(16)
                self.server.upload_tickets[ticket] = (oid, size)
                answer["actions"] = {
                    "upload": {"href": f"{self.server.url}/_loopback/lfs-upload/{ticket}", "header": {}},
                    "verify": {"href": f"{self.server.url}/{prefix}{quote(repo_id)}.git/info/lfs/objects/verify"},
                }
            objects.append(answer)
        self._send_json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                        content_type="application/vnd.git-lfs+json")

    def _lfs_upload(self, ticket: str) -> None:
        """Take the bytes of a basic-transfer upload (the signed URL needs no token, like S3)."""
        found = self.server.upload_tickets.pop(ticket, None)
        if found is None or self.command != "PUT":
            raise HubError(403, "unknown or used upload URL")
        oid, size = found
        self.server.store.write_blob_stream(oid, size, io.BytesIO(self.body))
        self._send(200, b"", "text/plain")

    def _lfs_verify(self) -> None:
        body = self._json_body()
        if not self.server.store.has_blob(str(body.get("oid")), int(body.get("size", -1))):
            raise HubError(404, "LFS object not found")
        self._send_json({"message": "verified"})

    # -- downloads ---------------------------------------------------------------------------
    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        store = self.server.store
        repo = store.readable_repo(self.user, repo_type, repo_id)
        sha = store.resolve(repo, revision)
        entry = repo["commits"][sha]["files"].get(path)
        if entry is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes",
                   "ETag": f'"{entry["sha256"] if entry["lfs"] else entry["git_oid"]}"'}
        if entry["lfs"]:
            headers.update({"X-Linked-Etag": f'"{entry["sha256"]}"', "X-Linked-Size": str(entry["size"])})
        data = store.blob_path(entry["sha256"]).read_bytes()
        status, ranged = 200, byte_range(self.headers.get("Range"), len(data))
        if ranged is not None:
            start, end = ranged
            if start >= len(data):
                headers["Content-Range"] = f"bytes */{len(data)}"
                return self._send(416, b"", "text/plain", headers)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            status, data = 206, data[start:end + 1]
        self._send(status, data, "application/octet-stream", headers)
