"""One call that checks an adapter type the way lowres-adapters relies on it.

For plugin authors, in their own test suite::

    from lowres_adapters.testing.conformance import check_adapter_type

    def test_my_type_conforms():
        check_adapter_type(MY_ADAPTER_TYPE)        # or a registered name: check_adapter_type("my_lora")

On tiny random CPU models (a Llama decoder and an XLM-R encoder by default) it checks: the config
round-trips through JSON; every parameter ``attach`` added is declared in ``trainable_parameters``;
forward and backward run with language-modelling labels and logits stay aligned with the input;
exactly the declared trainable parameters are trainable and receive gradients; an optimiser step
leaves every frozen weight unchanged; inside ``handle.disabled()`` the outputs are the base
model's and after it the adapted ones (a type that cannot switch off is recorded, not failed); ``adapter_state_dict`` holds
exactly the trainable tensors and never a frozen (tied) embedding matrix; an artifact written and
attached to a fresh model gives identical outputs; a different base shape is detected. A failure
raises :class:`ConformanceError` (an ``AssertionError``) naming the type, the model and the check.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lowres_adapters.artifact import (
    ArtifactMetadata,
    attach_from_artifact,
    check_shapes,
    read_tensors,
    write_artifact,
)
from lowres_adapters.configs import config_from_dict, config_to_dict
from lowres_adapters.errors import LowresError
from lowres_adapters.handles import CannotDisable
from lowres_adapters.hookspecs import hookimpl
from lowres_adapters.registry import Registry, get_registry
from lowres_adapters.specs import AdapterType, AttachedAdapter
from lowres_adapters.testing.tiny import TINY_CORPUS, tiny_model

OUTPUT_TOLERANCE = 1e-5
"""Largest absolute logit difference accepted between a trained model and its reloaded copy."""


class ConformanceError(AssertionError):
    """Raised when an adapter type fails a conformance check; the message names the check."""


@dataclass
class ConformanceReport:
    """What :func:`check_adapter_type` checked.

    Attributes:
        adapter_type: The type's registered name.
        passed: ``"<kind>: <check>"`` for every check that passed, in order.
        trainable: Kind -> number of trainable parameters on that tiny model.
        native_files: Kind -> files ``save_native`` wrote.
        disables: Kind -> whether ``handle.disabled()`` is supported (prompt-align needs it).
    """

    adapter_type: str
    passed: list[str] = field(default_factory=list)
    trainable: dict[str, int] = field(default_factory=dict)
    native_files: dict[str, list[str]] = field(default_factory=dict)
    disables: dict[str, bool] = field(default_factory=dict)


class _SingleTypePlugin:
    """A throwaway plugin registering one adapter type, for a private registry."""

    def __init__(self, spec: AdapterType) -> None:
        self.spec = spec

    @hookimpl
    def register_adapter_types(self, register: Any) -> None:
        register(self.spec)


def _resolve(spec_or_name: AdapterType | str) -> tuple[AdapterType, Registry]:
    """Return the spec and a registry in which its name resolves to it."""
    registry = get_registry()
    if isinstance(spec_or_name, str):
        return registry.adapter_type(spec_or_name), registry
    if not isinstance(spec_or_name, AdapterType):
        raise TypeError(f"expected an AdapterType or a registered name, got {spec_or_name!r}")
    registered = spec_or_name.name in registry.names("adapter_types")
    if registered and registry.adapter_type(spec_or_name.name) == spec_or_name:
        return spec_or_name, registry
    private = Registry(strict=True, entry_points=False)
    private.add_plugin(_SingleTypePlugin(spec_or_name), name=f"conformance:{spec_or_name.name}")
    return spec_or_name, private


def check_adapter_type(spec_or_name: AdapterType | str, *, kinds: tuple[str, ...] = ("llama", "xlmr"),
                       config: Any = None) -> ConformanceReport:
    """Check an adapter type on tiny CPU models; raise :class:`ConformanceError` on the first failure.

    Args:
        spec_or_name: The :class:`~lowres_adapters.specs.AdapterType`, or a registered name.
        kinds: Tiny model kinds to check on: ``"llama"`` (causal LM), ``"xlmr"``, ``"bert"`` (masked LM).
        config: Config to check; the type's default config when None.

    Returns:
        A :class:`ConformanceReport` listing the checks that passed.
    """
    spec, registry = _resolve(spec_or_name)
    config = spec.config_class() if config is None else config
    report = ConformanceReport(adapter_type=spec.name)
    _check(spec.name, "config", "round-trip", lambda: _check_config_round_trip(spec, config), report)
    for kind in kinds:
        _ModelChecks(spec, config, kind, registry, report).run()
    return report


def resolve_spec(spec_or_name: Any, spec_class: type, kind: str) -> Any:
    """Return ``spec_or_name`` when it is a ``spec_class``, else the spec registered under that name."""
    if isinstance(spec_or_name, str):
        return get_registry().lookup(kind, spec_or_name).spec
    if not isinstance(spec_or_name, spec_class):
        raise TypeError(f"expected a {spec_class.__name__} or a registered name, got {spec_or_name!r}")
    return spec_or_name


def _check(type_name: str, kind: str, check: str, action: Any, report: ConformanceReport) -> Any:
    """Run one check, recording it, and turn any failure into a :class:`ConformanceError`."""
    try:
        result = action()
    except ConformanceError as error:
        raise ConformanceError(f"{type_name}: {kind}: {check}: {error}") from error
    except Exception as error:  # noqa: BLE001 - any crash is a failed check, named as such
        raise ConformanceError(f"{type_name}: {kind}: {check}: {type(error).__name__}: {error}") from error
    report.passed.append(f"{kind}: {check}")
    return result


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConformanceError(message)


def _check_config_round_trip(spec: AdapterType, config: Any) -> None:
    _require(isinstance(config, spec.config_class), f"config is not a {spec.config_class.__name__}")
    values = json.loads(json.dumps(config_to_dict(config)))
    _require(config_from_dict(spec.config_class, values) == config, "config changed through JSON")


class _ModelChecks:
    """The checks that need a tiny model of one kind."""

    def __init__(self, spec: AdapterType, config: Any, kind: str, registry: Registry,
                 report: ConformanceReport) -> None:
        self.spec, self.config, self.kind, self.registry, self.report = spec, config, kind, registry, report

    def run(self) -> None:
        torch.manual_seed(0)
        model, tokenizer = tiny_model(self.kind, seed=0)
        self.batch = _batch(tokenizer, masked=self.kind != "llama")
        model.eval()
        with torch.no_grad():
            self.base_logits = model(**self.batch).logits.clone()
        base_ids = {id(parameter) for parameter in model.parameters()}
        handle = self._step("attach and activate", lambda: self._attach(model))
        self._step("every added parameter is declared", lambda: self._check_declared(handle, base_ids))
        self._step("declared parameters train", lambda: self._check_requires_grad(handle))
        self._step("forward and backward", lambda: self._check_backward(handle))
        self._step("optimiser step changes only trainable weights", lambda: self._check_step(handle))
        self._step("disabled() gives the base model's outputs", lambda: self._check_disabled(handle))
        self._step("adapter_state_dict is exactly what trains", lambda: self._check_state_dict(handle))
        self._step("padding does not change a row's outputs", lambda: self._check_padding(handle))
        with tempfile.TemporaryDirectory(prefix="lowres-conformance-") as folder:
            self._step("save -> load gives identical outputs", lambda: self._check_reload(handle, Path(folder)))
            self._step("different base shape is detected", lambda: self._check_shape_mismatch(Path(folder)))

    def _step(self, check: str, action: Any) -> Any:
        return _check(self.spec.name, self.kind, check, action, self.report)

    def _attach(self, model: Any) -> AttachedAdapter:
        handle = self.spec.attach(model, "conformance", self.config)
        for attribute in ("name", "config", "model"):
            _require(hasattr(handle, attribute), f"the handle has no attribute {attribute!r}")
        _require(isinstance(handle, AttachedAdapter), "the handle lacks AttachedAdapter methods")
        handle.activate()
        return handle

    def _check_declared(self, handle: AttachedAdapter, base_ids: set[int]) -> None:
        declared = {id(p) for p in handle.trainable_parameters().values()}
        undeclared = [name for name, p in handle.model.named_parameters()
                      if id(p) not in base_ids and id(p) not in declared]
        _require(not undeclared, f"attach added parameters that trainable_parameters() does not declare "
                                 f"(they would be neither trained nor saved): {undeclared[:3]}")

    def _check_disabled(self, handle: AttachedAdapter) -> None:
        disabled = getattr(handle, "disabled", None)
        _require(callable(disabled), "the handle has no disabled() method (subclass ParameterSetAdapter)")
        try:
            with torch.no_grad(), disabled():
                off = handle.model(**self.batch).logits
        except CannotDisable:
            self.report.disables[self.kind] = False
            return
        difference = float((off - self.base_logits).abs().max())
        _require(difference <= OUTPUT_TOLERANCE, f"outputs inside disabled() differ from the base model's by "
                                                 f"{difference:.3g}")
        with torch.no_grad():
            again = handle.model(**self.batch).logits
        _require(torch.allclose(again, self.logits, atol=OUTPUT_TOLERANCE), "the adapter is not back on after disabled()")
        self.report.disables[self.kind] = True

    def _check_requires_grad(self, handle: AttachedAdapter) -> None:
        trainable = handle.trainable_parameters()
        _require(len(trainable) > 0, "trainable_parameters() is empty")
        declared = {id(p) for p in trainable.values()}
        for name, parameter in handle.model.named_parameters():
            if parameter.requires_grad and id(parameter) not in declared:
                raise ConformanceError(f"{name} requires grad but is not in trainable_parameters()")
        for name, parameter in trainable.items():
            _require(parameter.requires_grad, f"{name} is declared trainable but does not require grad")
        self.report.trainable[self.kind] = sum(p.numel() for p in trainable.values())

    def _check_backward(self, handle: AttachedAdapter) -> None:
        handle.model.train()
        outputs = handle.model(**self.batch)
        input_shape = tuple(self.batch["input_ids"].shape)
        _require(tuple(outputs.logits.shape[:2]) == input_shape,
                 f"logits {tuple(outputs.logits.shape)} are not aligned with the input {input_shape}")
        _require(outputs.loss is not None and bool(torch.isfinite(outputs.loss)), "no finite loss with labels")
        outputs.loss.backward()
        trainable = handle.trainable_parameters()
        missing = [name for name, p in trainable.items() if p.grad is None]
        _require(not missing, f"no gradient reached {missing[:3]}")
        _require(any(bool(p.grad.abs().sum() > 0) for p in trainable.values()), "every gradient is zero")
        declared = {id(p) for p in trainable.values()}
        leaked = [n for n, p in handle.model.named_parameters() if id(p) not in declared and p.grad is not None]
        _require(not leaked, f"frozen parameters received gradients: {leaked[:3]}")

    def _check_step(self, handle: AttachedAdapter) -> None:
        trainable = handle.trainable_parameters()
        declared = {id(p) for p in trainable.values()}
        frozen_before = {n: p.detach().clone() for n, p in handle.model.named_parameters() if id(p) not in declared}
        trainable_before = {n: p.detach().clone() for n, p in trainable.items()}
        handle.model.eval()
        with torch.no_grad():
            logits_before = handle.model(**self.batch).logits.clone()
        optimiser = torch.optim.AdamW(list(trainable.values()), lr=1e-2)
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
        for name, parameter in handle.model.named_parameters():
            if name in frozen_before and not torch.equal(parameter.detach(), frozen_before[name]):
                raise ConformanceError(f"frozen weight {name} changed")
        changed = [n for n, p in trainable.items() if not torch.equal(p.detach(), trainable_before[n])]
        _require(bool(changed), "no trainable weight changed")
        with torch.no_grad():
            logits_after = handle.model(**self.batch).logits
        _require(not torch.equal(logits_before, logits_after), "the outputs do not depend on the adapter")
        self.logits = logits_after.clone()

    def _check_padding(self, handle: AttachedAdapter) -> None:
        lengths = self.batch["attention_mask"].sum(dim=1)
        row = int(lengths.argmin())
        length = int(lengths[row])
        _require(length < self.batch["input_ids"].shape[1], "the test batch has no padding")
        alone = {key: value[row:row + 1, :length] for key, value in self.batch.items()}  # (1, length)
        with torch.no_grad():
            padded = self.logits[row, :length]  # (length, vocab)
            unpadded = handle.model(**alone).logits[0]  # (length, vocab)
        difference = float((padded - unpadded).abs().max())
        _require(difference <= 1e-4, f"a padded row's logits differ from the same row alone by {difference:.3g}")

    def _check_state_dict(self, handle: AttachedAdapter) -> None:
        state = handle.adapter_state_dict()
        trainable = handle.trainable_parameters()
        _require(set(state) == set(trainable),
                 f"keys differ from trainable_parameters(): {sorted(set(state) ^ set(trainable))[:3]}")
        for name, tensor in state.items():
            _require(tuple(tensor.shape) == tuple(trainable[name].shape), f"{name} has the wrong shape")
        embedding = _input_embedding(handle.model)
        if embedding is not None and not embedding.requires_grad:
            pointer = embedding.untyped_storage().data_ptr()
            shared = [n for n, t in state.items() if t.untyped_storage().data_ptr() == pointer]
            _require(not shared, f"the frozen embedding matrix is saved as {shared}")

    def _check_reload(self, handle: AttachedAdapter, folder: Path) -> None:
        metadata = ArtifactMetadata(adapter_type=self.spec.name, adapter_name=handle.name,
                                    adapter_config=config_to_dict(self.config), plugin=None,
                                    base_model=f"tiny-{self.kind}", objective=_objective(self.kind))
        write_artifact(folder, handle, metadata)
        native = folder / "adapterhub"
        self.report.native_files[self.kind] = sorted(p.name for p in native.iterdir()) if native.exists() else []
        fresh, _ = tiny_model(self.kind, seed=0)
        reloaded = attach_from_artifact(fresh, folder, registry=self.registry)
        with torch.no_grad():
            logits = reloaded.model(**self.batch).logits
        difference = float((logits - self.logits).abs().max())
        _require(difference <= OUTPUT_TOLERANCE, f"reloaded outputs differ by {difference:.3g}")

    def _check_shape_mismatch(self, folder: Path) -> None:
        other, _ = tiny_model(self.kind, seed=0, hidden_size=48, intermediate_size=96)
        handle = self.spec.attach(other, "conformance", self.config)
        try:
            check_shapes(handle.adapter_state_dict(), read_tensors(folder), str(folder))
        except LowresError:
            return
        raise ConformanceError("tensors saved at hidden size 32 were accepted by a hidden-size-48 model")


def _objective(kind: str) -> str:
    return "clm" if kind == "llama" else "mlm"


def _input_embedding(model: Any) -> Any:
    getter = getattr(model, "get_input_embeddings", None)
    module = getter() if callable(getter) else None
    return getattr(module, "weight", None)


def _batch(tokenizer: Any, masked: bool) -> dict[str, Any]:
    """Return a padded two-sentence batch with language-modelling labels (every third token for MLM)."""
    encoded = tokenizer(list(TINY_CORPUS[:2]), return_tensors="pt", padding=True)
    labels = encoded["input_ids"].clone()  # (batch, seq)
    labels[encoded["attention_mask"] == 0] = -100
    if masked:
        positions = torch.arange(labels.shape[1]).expand_as(labels)  # (batch, seq)
        labels[positions % 3 != 1] = -100
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"], "labels": labels}
