"""Publish to and load from the loopback Hub through the real huggingface_hub client (tiny models)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, constants
from huggingface_hub.utils import reset_sessions
from safetensors.torch import load_file

import hub_support
from hub_support import ALICE, BOB
from lowres_adapters import hub
from lowres_adapters.errors import LowresError
from lowres_adapters.models import load_base_model

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hub_support.save_tiny_base(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="module")
def base_id(base_dir: Path) -> str:
    return hub_support.publish_tiny_base(base_dir, "alice/tiny-base-publish-load")


@pytest.fixture
def toy_registry():
    return hub_support.use_toy_registry()


@pytest.fixture
def run_dir(tmp_path: Path, base_dir: Path, base_id: str, toy_registry) -> Path:
    return hub_support.make_run_folder(tmp_path / "run", base_dir, base_model=base_id)


def local_logits(directory: Path) -> torch.Tensor:
    model, tokenizer = hub.load(str(directory))
    return hub_support.probe_logits(model, tokenizer)


def unique_repo(request: pytest.FixtureRequest, owner: str = "alice") -> str:
    return f"{owner}/{request.node.name.replace('[', '-').replace(']', '')[:60]}"


def test_publish_uploads_one_commit_with_the_artifact_only(run_dir: Path, request) -> None:
    repo_id = unique_repo(request)
    info = hub.publish(run_dir, repo_id, token=ALICE)
    api = HfApi(token=ALICE)
    files = set(api.list_repo_files(repo_id, revision=info.oid))
    assert files == {".gitattributes", "README.md", "adapter.safetensors", "lowres_adapter.json", "metrics.json"}
    commits = api.list_repo_commits(repo_id)
    assert [c.commit_id for c in commits][0] == info.oid and len(commits) == 2  # initial + ours
    card = Path(api.hf_hub_download(repo_id, "README.md", revision=info.oid)).read_text("utf-8")
    assert f'load("{repo_id}")' in card and "library_name" not in card  # the toy type has no native copy
    weights = api.hf_hub_download(repo_id, "adapter.safetensors", revision=info.oid)
    assert Path(weights).read_bytes() == (run_dir / "adapter.safetensors").read_bytes()


def test_publish_then_load_in_a_fresh_process_gives_identical_outputs(run_dir: Path, base_dir: Path,
                                                                      tmp_path: Path, request) -> None:
    repo_id = unique_repo(request)
    hub.publish(run_dir, repo_id, token=ALICE)
    expected = local_logits(run_dir)
    result = hub_support.load_in_fresh_process(repo_id, tmp_path / "out.safetensors", token=ALICE)
    assert result.returncode == 0, result.stderr
    assert torch.equal(load_file(tmp_path / "out.safetensors")["logits"], expected)
    base_model, base_tokenizer = load_base_model(str(base_dir))
    assert not torch.allclose(hub_support.probe_logits(base_model, base_tokenizer), expected)  # the adapter acts


def test_second_publish_is_a_new_revision_and_the_old_one_still_loads(run_dir: Path, base_dir: Path, base_id: str,
                                                                        tmp_path: Path, request) -> None:
    repo_id = unique_repo(request)
    first = hub.publish(run_dir, repo_id, token=ALICE)
    old = local_logits(run_dir)
    second_run = hub_support.make_run_folder(tmp_path / "run2", base_dir, seed=7, base_model=base_id)
    second = hub.publish(second_run, repo_id, token=ALICE)
    new = local_logits(second_run)
    assert first.oid != second.oid and not torch.equal(old, new)
    model, tokenizer = hub.load(repo_id, revision=first.oid, token=ALICE)
    assert torch.equal(hub_support.probe_logits(model, tokenizer), old)
    model, tokenizer = hub.load(repo_id, token=ALICE)
    assert torch.equal(hub_support.probe_logits(model, tokenizer), new)


def test_publish_to_a_branch_leaves_main_alone(run_dir: Path, request) -> None:
    repo_id = unique_repo(request)
    info = hub.publish(run_dir, repo_id, token=ALICE, revision="experiment")
    api = HfApi(token=ALICE)
    refs = {branch.name: branch.target_commit for branch in api.list_repo_refs(repo_id).branches}
    assert refs["experiment"] == info.oid and refs["main"] != info.oid
    assert "adapter.safetensors" not in api.list_repo_files(repo_id)
    model, tokenizer = hub.load(repo_id, revision="experiment", token=ALICE)
    assert torch.equal(hub_support.probe_logits(model, tokenizer), local_logits(run_dir))


def test_private_repo_without_a_token_fails_with_one_clear_line(run_dir: Path, monkeypatch, request) -> None:
    repo_id = unique_repo(request)
    hub.publish(run_dir, repo_id, token=ALICE, private=True)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(LowresError) as anonymous:
        hub.load(repo_id, token=False)
    with pytest.raises(LowresError) as other_user:
        hub.load(repo_id, token=BOB)
    for error in (anonymous.value, other_user.value):
        message = str(error)
        assert "\n" not in message and repo_id in message and "private" in message
        assert ALICE not in message and BOB not in message
    model, _ = hub.load(repo_id, token=ALICE)
    assert model is not None


def test_private_repo_loads_with_hf_token_from_the_environment(run_dir: Path, monkeypatch, request) -> None:
    repo_id = unique_repo(request)
    hub.publish(run_dir, repo_id, token=ALICE, private=True)
    monkeypatch.setenv("HF_TOKEN", ALICE)
    model, tokenizer = hub.load(repo_id)
    assert torch.equal(hub_support.probe_logits(model, tokenizer), local_logits(run_dir))


def test_offline_load_from_the_cache(run_dir: Path, request) -> None:
    repo_id = unique_repo(request)
    hub.publish(run_dir, repo_id, token=ALICE)
    hub.download(repo_id, token=ALICE)  # fills the cache
    expected = local_logits(run_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(constants, "HF_HUB_OFFLINE", True)
        reset_sessions()
        try:
            model, tokenizer = hub.load(repo_id, token=ALICE)
            assert torch.equal(hub_support.probe_logits(model, tokenizer), expected)
            with pytest.raises(LowresError, match="not in the local cache .*HF_HUB_OFFLINE is set"):
                hub.load("alice/never-published")
        finally:
            patch.undo()
            reset_sessions()


def test_write_errors_are_one_line_without_the_token(run_dir: Path, request) -> None:
    with pytest.raises(LowresError, match="may not write") as not_owner:
        hub.publish(run_dir, "alice/" + request.node.name, token=BOB)
    with pytest.raises(LowresError, match="token is missing or invalid") as bad_token:
        hub.publish(run_dir, unique_repo(request), token="hf_not_a_real_token_123")
    for error in (not_owner.value, bad_token.value):
        assert "\n" not in str(error) and BOB not in str(error) and "hf_not_a_real_token_123" not in str(error)


def test_publish_refuses_a_file_holding_the_token(run_dir: Path, request) -> None:
    (run_dir / "metrics.json").write_text('{"note": "%s"}' % ALICE, "utf-8")
    with pytest.raises(LowresError, match="holds a Hub access token") as error:
        hub.publish(run_dir, unique_repo(request), token=ALICE)
    assert ALICE not in str(error.value)
    assert not HfApi(token=ALICE).repo_exists(unique_repo(request))


def test_unknown_adapter_type_names_the_pip_package(run_dir: Path, request, empty_registry) -> None:
    with pytest.raises(LowresError, match=r"'toy_bias' is not installed: pip install lowres-adapter-toy==1\.0"):
        hub.load(str(run_dir))


def test_corrupt_safetensors_fails_clearly(run_dir: Path, request) -> None:
    weights = run_dir / "adapter.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])
    with pytest.raises(LowresError, match="corrupt safetensors"):
        hub.load(str(run_dir))
    with pytest.raises(LowresError, match="corrupt safetensors"):
        hub.publish(run_dir, unique_repo(request), token=ALICE)


def test_mismatched_base_model_fails_before_any_weight_is_loaded(run_dir: Path, tmp_path: Path) -> None:
    other_base = hub_support.save_tiny_base(tmp_path / "wide-base", hidden_size=48, intermediate_size=96)
    hub_support.ATTACHED.clear()
    with pytest.raises(LowresError, match=r"shape \(32,\), the base model needs \(48,\)"):
        hub.load(str(run_dir), model=str(other_base))
    assert hub_support.ATTACHED and all(handle.loads == 0 for handle in hub_support.ATTACHED)


def test_trained_base_tensors_are_put_back(base_dir: Path, tmp_path: Path, toy_registry) -> None:
    doubled = torch.full((32,), 2.0)
    run = hub_support.make_run_folder(tmp_path / "run", base_dir, extra_tensors={"lowres.base.model.norm.weight": doubled})
    model, _ = hub.load(str(run))
    assert torch.equal(model.model.norm.weight, doubled)
    wrong = hub_support.make_run_folder(tmp_path / "wrong", base_dir, extra_tensors={"lowres.base.model.nope": doubled})
    with pytest.raises(LowresError, match="trained base tensor model.nope is not a parameter"):
        hub.load(str(wrong))


def test_pickled_base_model_is_refused_unless_allowed(run_dir: Path, base_dir: Path, tmp_path: Path) -> None:
    pickled = tmp_path / "pickled-base"
    base, tokenizer = load_base_model(str(base_dir))
    base.save_pretrained(pickled, safe_serialization=False)
    tokenizer.save_pretrained(pickled)
    assert not list(pickled.glob("*.safetensors"))
    with pytest.raises(LowresError, match="cannot load model"):
        hub.load(str(run_dir), model=str(pickled))
    model, tokenizer = hub.load(str(run_dir), model=str(pickled), allow_pickle=True)
    assert torch.equal(hub_support.probe_logits(model, tokenizer), local_logits(run_dir))


def test_local_folder_rejects_revision_and_bad_ids(run_dir: Path) -> None:
    with pytest.raises(LowresError, match="revision= applies to Hub repos"):
        hub.load(str(run_dir), revision="main")
    with pytest.raises(LowresError, match="not a local folder and not a Hub repo id"):
        hub.load("no-such-folder-or-repo")


def test_no_connection_leaves_loopback(run_dir: Path, monkeypatch, request) -> None:
    import socket

    from lowres_adapters.testing.netguard import OutsideConnectionError

    seen: list[object] = []
    guarded_connect = socket.socket.connect

    def recording_connect(self, address):
        seen.append(address)
        return guarded_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", recording_connect)
    reset_sessions()  # drop kept-alive connections so every request below connects anew
    repo_id = unique_repo(request)
    hub.publish(run_dir, repo_id, token=ALICE)
    hub.load(repo_id, token=ALICE)
    with pytest.raises(LowresError):
        hub.load("alice/does-not-exist", token=ALICE)
    assert seen and all(address[0] == "127.0.0.1" for address in seen if isinstance(address, tuple))
    with pytest.raises(OutsideConnectionError):
        socket.create_connection(("93.184.216.34", 443), timeout=1)
    assert os.environ["HF_ENDPOINT"].startswith("http://127.0.0.1:")


def test_adapterhub_types_never_reach_adapters_own_loader(base_dir: Path, base_id: str, tmp_path: Path, monkeypatch,
                                                          request) -> None:
    """A builtin `adapters` type (lora) publishes its native files but loads without `load_adapter`."""
    import adapters.loading
    from lowres_adapters import get_registry
    from lowres_adapters.artifact import ArtifactMetadata, describe_config, write_artifact

    calls: list[object] = []
    monkeypatch.setattr(adapters.loading, "resolve_adapter_path", lambda *args, **kwargs: calls.append(args))
    monkeypatch.setattr(adapters.loading.AdapterLoader, "load", lambda *args, **kwargs: calls.append(args))
    model, _ = load_base_model(str(base_dir))
    spec = get_registry().adapter_type("lora")
    handle = spec.attach(model, "nya", spec.config_class())
    handle.activate()
    with torch.no_grad():
        for parameter in handle.trainable_parameters().values():
            parameter.normal_(0.0, 0.5)
    described = describe_config(spec, handle.config)
    write_artifact(tmp_path / "run", handle, ArtifactMetadata(
        adapter_type="lora", adapter_name="nya", adapter_config=described["config"], plugin=described["plugin"],
        base_model=base_id, language="nya"))
    repo_id = unique_repo(request)
    info = hub.publish(tmp_path / "run", repo_id, token=ALICE)
    assert any(name.startswith("adapterhub/") for name in HfApi(token=ALICE).list_repo_files(repo_id, revision=info.oid))
    loaded, tokenizer = hub.load(repo_id, token=ALICE)
    assert torch.equal(hub_support.probe_logits(loaded, tokenizer), hub_support.probe_logits(handle.model, tokenizer))
    wide = hub_support.save_tiny_base(tmp_path / "wide-base", hidden_size=48, intermediate_size=96)
    for failing in (lambda: hub.load(repo_id, token=ALICE, model=str(wide)), lambda: hub.load("alice/no-such-adapter")):
        with pytest.raises(LowresError):
            failing()
    assert calls == []
