"""The loopback Hub speaks the routes and auth semantics huggingface_hub relies on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from hub_support import ALICE, BOB

ENDPOINT = os.environ["HF_ENDPOINT"]


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    repo_id = f"alice/{request.node.name[:80]}"
    HfApi(token=ALICE).create_repo(repo_id, private=True)
    return repo_id


def add(path: str, content: bytes) -> CommitOperationAdd:
    return CommitOperationAdd(path_in_repo=path, path_or_fileobj=content)


def test_create_repo_makes_main_and_answers_409_with_the_url_when_it_exists(repo: str) -> None:
    api = HfApi(token=ALICE)
    assert api.create_repo(repo, exist_ok=True) == f"{ENDPOINT}/{repo}"
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_repo(repo)
    assert conflict.value.response.status_code == 409
    assert api.list_repo_files(repo) == [".gitattributes"]
    assert [c.title for c in api.list_repo_commits(repo)] == ["initial commit"]


def test_upload_regular_and_lfs_files_then_download_them(repo: str, tmp_path: Path) -> None:
    api = HfApi(token=ALICE)
    weights, text = os.urandom(3000), b"hello loopback\n"
    info = api.create_commit(repo, [add("w.safetensors", weights), add("notes/a.txt", text)], commit_message="add")
    model = api.model_info(repo, files_metadata=True)
    siblings = {s.rfilename: s for s in model.siblings}
    assert model.sha == info.oid and model.private is True
    assert siblings["w.safetensors"].lfs is not None and siblings["w.safetensors"].lfs.size == 3000
    assert siblings["notes/a.txt"].lfs is None
    assert Path(hf_hub_download(repo, "w.safetensors", token=ALICE)).read_bytes() == weights
    folder = Path(snapshot_download(repo, token=ALICE, allow_patterns=["notes/*"], cache_dir=tmp_path))
    assert (folder / "notes/a.txt").read_bytes() == text and not (folder / "w.safetensors").exists()
    top = {(entry.path, type(entry).__name__) for entry in api.list_repo_tree(repo)}
    assert top == {(".gitattributes", "RepoFile"), ("w.safetensors", "RepoFile"), ("notes", "RepoFolder")}
    assert [entry.path for entry in api.list_repo_tree(repo, path_in_repo="notes")] == ["notes/a.txt"]
    assert [entry.path for entry in api.get_paths_info(repo, ["notes/a.txt", "missing"])] == ["notes/a.txt"]


def test_resolve_sends_etag_commit_and_honours_range(repo: str) -> None:
    api = HfApi(token=ALICE)
    content = bytes(range(256)) * 8
    info = api.create_commit(repo, [add("blob.safetensors", content)], commit_message="blob")
    url = f"{ENDPOINT}/{repo}/resolve/main/blob.safetensors"
    auth = {"Authorization": f"Bearer {ALICE}"}
    head = requests.head(url, headers=auth, timeout=10)
    assert head.headers["X-Repo-Commit"] == info.oid
    assert head.headers["ETag"].startswith('"') and head.headers["X-Linked-Size"] == str(len(content))
    part = requests.get(url, headers={**auth, "Range": "bytes=10-19"}, timeout=10)
    assert part.status_code == 206 and part.content == content[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(content)}"


def test_unchanged_files_make_no_new_commit_and_stale_parent_is_refused(repo: str) -> None:
    api = HfApi(token=ALICE)
    first = api.create_commit(repo, [add("a.txt", b"one")], commit_message="one")
    again = api.create_commit(repo, [add("a.txt", b"one")], commit_message="same")
    assert again.oid == first.oid
    api.create_commit(repo, [add("a.txt", b"two")], commit_message="two")
    with pytest.raises(HfHubHTTPError) as stale:
        api.create_commit(repo, [add("a.txt", b"three")], commit_message="three", parent_commit=first.oid)
    assert stale.value.response.status_code == 412


def test_branches_tags_and_old_revisions(repo: str) -> None:
    api = HfApi(token=ALICE)
    first = api.create_commit(repo, [add("v.txt", b"1")], commit_message="v1")
    api.create_tag(repo, tag="v1")
    api.create_branch(repo, branch="dev")
    api.create_commit(repo, [add("v.txt", b"2")], commit_message="v2", revision="dev")
    refs = api.list_repo_refs(repo)
    assert {t.name: t.target_commit for t in refs.tags} == {"v1": first.oid}
    assert Path(hf_hub_download(repo, "v.txt", revision="v1", token=ALICE)).read_bytes() == b"1"
    assert Path(hf_hub_download(repo, "v.txt", revision="dev", token=ALICE)).read_bytes() == b"2"
    assert Path(hf_hub_download(repo, "v.txt", revision=first.oid, token=ALICE)).read_bytes() == b"1"
    with pytest.raises(RevisionNotFoundError):
        api.model_info(repo, revision="no-such-branch")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo, "missing.txt", token=ALICE)
    api.delete_file("v.txt", repo, revision="dev")
    assert "v.txt" not in api.list_repo_files(repo, revision="dev")


def test_auth_semantics_match_the_hub(repo: str) -> None:
    with pytest.raises(RepositoryNotFoundError) as anonymous:
        HfApi(token=False).model_info(repo)
    with pytest.raises(RepositoryNotFoundError) as other_user:
        HfApi(token=BOB).model_info(repo)
    assert (anonymous.value.response.status_code, other_user.value.response.status_code) == (401, 404)
    with pytest.raises(HfHubHTTPError) as unknown_token:
        HfApi(token="hf_unknown_token_value").model_info(repo)
    assert unknown_token.value.response.status_code == 401
    assert not isinstance(unknown_token.value, RepositoryNotFoundError)
    HfApi(token=ALICE).update_repo_settings(repo, private=False)
    assert HfApi(token=False).model_info(repo).private is False
    with pytest.raises(HfHubHTTPError) as not_owner:
        HfApi(token=BOB).create_commit(repo, [add("x.txt", b"x")], commit_message="x")
    assert not_owner.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as anonymous_write:
        HfApi(token=False).create_commit(repo, [add("x.txt", b"x")], commit_message="x")
    assert anonymous_write.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as foreign_namespace:
        HfApi(token=BOB).create_repo("alice/bobs-attempt")
    assert foreign_namespace.value.response.status_code == 403


def test_whoami_orgs_and_delete(request: pytest.FixtureRequest) -> None:
    api = HfApi(token=ALICE)
    me = api.whoami()
    assert me["name"] == "alice" and [org["name"] for org in me["orgs"]] == ["lowres-org"]
    repo_id = f"lowres-org/{request.node.name}"
    api.create_repo(repo_id)
    assert api.repo_exists(repo_id)
    api.delete_repo(repo_id)
    assert not api.repo_exists(repo_id)
    with pytest.raises(requests.HTTPError, match="Invalid user token"):
        HfApi(token="hf_unknown_token_value").whoami()


def test_validate_yaml_rejects_bad_metadata() -> None:
    api = HfApi(token=ALICE)
    api._validate_yaml("---\nlanguage: [nya, ny]\nlicense: apache-2.0\n---\n# ok\n")
    with pytest.raises(ValueError, match="language"):
        api._validate_yaml("---\nlanguage: {nya: 1}\n---\n")
    with pytest.raises(ValueError, match="invalid YAML"):
        api._validate_yaml("---\nlanguage: [nya\n---\n")


def test_command_line_server_prints_its_url(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-m", "lowres_adapters.testing.hub", "--port", "0",
                                "--directory", str(tmp_path / "store")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        api = HfApi(endpoint=url, token=BOB)
        assert api.whoami()["name"] == "bob"
        api.create_repo("bob/from-the-shell")
        assert (tmp_path / "store" / "repos" / "model" / "bob" / "from-the-shell.json").exists()
    finally:
        process.terminate()
        process.wait(timeout=10)
