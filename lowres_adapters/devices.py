"""Where a run computes and in which precision: ``--device`` and ``--precision``.

``--device auto`` takes the best device this machine has (CUDA, then Apple MPS, then the CPU);
asking for one that is missing is refused in one line. ``--precision auto`` picks bf16 autocast
on GPUs that compute bf16, fp16 autocast with loss scaling on older GPUs and fp32 on MPS; on the
CPU it keeps the speed switch's choice (bf16 only where the CPU multiplies bf16 natively, see
:func:`~lowres_adapters.training.speed.native_bf16`), so CPU runs compute exactly as before.
Trained parameters stay float32 under every precision (autocast computes in the low precision;
the optimiser updates float32 weights). A training run on a GPU in bf16/fp16 loads its frozen base
in that dtype (:func:`base_dtype`: half the memory, no float32 copy); on the CPU the base stays
float32.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterable, Mapping

import torch

from lowres_adapters.errors import LowresError

DEVICES = ("auto", "cpu", "cuda", "mps")
"""Values ``--device`` accepts."""

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
"""Values ``--precision`` accepts."""

_PREFERENCE = ("cuda", "mps", "cpu")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
LOW_PRECISION = (torch.bfloat16, torch.float16)
"""The half-width dtypes a GPU run's base may be held in."""


def available_devices() -> list[str]:
    """Return the device types this machine can compute on, best first (the CPU always)."""
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return [*found, "cpu"]


def choose_device(requested: str = "auto", available: Iterable[str] | None = None,
                  local_index: int = 0) -> torch.device:
    """Return the device for ``requested`` (``auto`` = the best of ``available``).

    Args:
        requested: One of :data:`DEVICES`.
        available: Device types present (default :func:`available_devices`); tests pass a fake list.
        local_index: This process's index on its machine (``accelerate launch`` gives each GPU
            process its own CUDA device).

    Raises:
        LowresError: On an unknown name, or a device this machine does not have.
    """
    if requested not in DEVICES:
        raise LowresError(f"--device {requested!r}: expected one of {', '.join(DEVICES)}")
    present = list(available) if available is not None else available_devices()
    kind = next(d for d in _PREFERENCE if d in present) if requested == "auto" else requested
    if kind not in present:
        names = {"cuda": "CUDA (no NVIDIA GPU visible, or torch built without CUDA)", "mps": "Apple MPS"}
        raise LowresError(f"--device {kind}: {names.get(kind, kind)} is not available on this machine; "
                          f"available: {', '.join(present)} (or use --device auto)")
    return torch.device(kind, local_index) if kind == "cuda" else torch.device(kind)


def choose_precision(requested: str, device: torch.device, *, cpu_bf16: bool = False,
                     gpu_bf16: Callable[[], bool] | None = None) -> str:
    """Return the precision (``fp32``, ``bf16`` or ``fp16``) a run on ``device`` computes in.

    Args:
        requested: One of :data:`PRECISIONS`.
        device: The run's device (:func:`choose_device`).
        cpu_bf16: The speed switch's bf16 (on when the CPU multiplies bf16 natively): what ``auto``
            means on the CPU.
        gpu_bf16: Returns whether the CUDA device computes bf16 (default
            ``torch.cuda.is_bf16_supported``); tests pass a fake.

    Raises:
        LowresError: On an unknown name, fp16 on the CPU, or bf16 on a GPU without it.
    """
    if requested not in PRECISIONS:
        raise LowresError(f"--precision {requested!r}: expected one of {', '.join(PRECISIONS)}")
    supports_bf16 = gpu_bf16 or torch.cuda.is_bf16_supported
    if device.type == "cpu":
        if requested == "fp16":
            raise LowresError("--precision fp16 is for GPUs; on the CPU use fp32 or bf16")
        return ("bf16" if cpu_bf16 else "fp32") if requested == "auto" else requested
    if device.type == "cuda":
        if requested == "auto":
            return "bf16" if supports_bf16() else "fp16"
        if requested == "bf16" and not supports_bf16():
            raise LowresError("--precision bf16: this GPU does not compute bf16; use fp16 or fp32")
        return requested
    return "fp32" if requested == "auto" else requested


def compute_dtype(precision: str) -> torch.dtype:
    """Return the torch dtype of ``precision`` (``fp32``, ``bf16`` or ``fp16``)."""
    return _DTYPES[precision]


def run_placement(loop: Mapping[str, Any], local_index: int = 0, *, available: Iterable[str] | None = None,
                  gpu_bf16: Callable[[], bool] | None = None) -> tuple[torch.device, str]:
    """Return a run's ``(device, precision)`` from its loop settings as given, before any model loads.

    Args:
        loop: The run's ``[loop]`` overrides (``device`` and ``precision`` default to ``auto``).
        local_index: This process's index on its machine.
        available: Device types present (default :func:`available_devices`); tests pass a fake list.
        gpu_bf16: Whether the CUDA device computes bf16 (see :func:`choose_precision`).

    The CPU's ``auto`` precision here is fp32: the speed switch's CPU bf16 autocast leaves the
    base float32 (see :func:`base_dtype`), so it does not matter before the model loads.

    Raises:
        LowresError: As :func:`choose_device` and :func:`choose_precision`.
    """
    device = choose_device(str(loop.get("device", "auto")), available, local_index=local_index)
    return device, choose_precision(str(loop.get("precision", "auto")), device, gpu_bf16=gpu_bf16)


def base_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """Return the dtype a training run loads its frozen base in, or None for float32.

    On a GPU (CUDA or MPS) computing in bf16 or fp16 the base loads in that dtype: autocast would
    cast its float32 weights to it in every matrix product anyway, and it takes half the memory.
    On the CPU, and in fp32, the base stays float32 (CPU runs compute exactly as before).
    """
    if device.type == "cpu" or precision == "fp32":
        return None
    return compute_dtype(precision)


def low_precision_dtype(model: torch.nn.Module) -> torch.dtype | None:
    """Return bf16/fp16 when some of ``model``'s floating weights are held in it, else None."""
    return next((p.dtype for p in model.parameters() if p.dtype in LOW_PRECISION), None)


def weights_autocast(model: torch.nn.Module) -> contextlib.AbstractContextManager:
    """Return autocast in the dtype of ``model``'s low-precision weights (a base loaded in bf16/fp16,
    its trained parameters float32), so evaluation mixes them as training did; no context for a
    float32 model."""
    dtype = low_precision_dtype(model)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(model_device(model).type, dtype=dtype)


def cast_floating_(parameters: Iterable[torch.nn.Parameter],
                   dtype: torch.dtype) -> list[tuple[torch.nn.Parameter, torch.dtype]]:
    """Hold every floating parameter of ``parameters`` in ``dtype``, in place (the same Parameter
    objects, so optimisers and modules keep them); return ``(parameter, previous dtype)`` of those
    changed, for :func:`restore_dtypes_`."""
    changed = []
    with torch.no_grad():
        for parameter in parameters:
            if parameter.is_floating_point() and parameter.dtype != dtype:
                changed.append((parameter, parameter.dtype))
                parameter.data = parameter.data.to(dtype)
    return changed


def restore_dtypes_(changed: Iterable[tuple[torch.nn.Parameter, torch.dtype]]) -> None:
    """Put the parameters :func:`cast_floating_` changed back in their previous dtypes, in place."""
    with torch.no_grad():
        for parameter, dtype in changed:
            parameter.data = parameter.data.to(dtype)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Return the autocast context for ``precision`` on ``device`` (none for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=compute_dtype(precision))


def under_autocast(loss_fn: Callable[..., tuple[torch.Tensor, int]], device: torch.device,
                   precision: str) -> Callable[..., tuple[torch.Tensor, int]]:
    """Return ``loss_fn`` computing under :func:`autocast`, its loss back in float32."""
    if precision == "fp32":
        return loss_fn

    def loss_in_precision(model: torch.nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, int]:
        with autocast(device, precision):
            loss, count = loss_fn(model, batch)
        return loss.float(), count

    if hasattr(loss_fn, "trim"):  # the trimmed vocabulary the speed path scores, kept visible
        loss_in_precision.trim = loss_fn.trim  # type: ignore[attr-defined]
    return loss_in_precision


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """Return ``batch`` with every tensor on ``device`` (other values unchanged)."""
    return {key: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
            for key, value in batch.items()}


def move_parameters_(parameters: Iterable[torch.nn.Parameter], device: torch.device) -> None:
    """Move ``parameters`` to ``device`` in place: the same Parameter objects (an optimiser or a
    module holding them keeps working), their data on ``device``. For trained parameters outside
    the model (a task head, say), which ``model.to(device)`` does not reach."""
    for parameter in parameters:
        if parameter.device != device:
            parameter.data = parameter.data.to(device)


def model_device(model: torch.nn.Module) -> torch.device:
    """Return the device of ``model``'s first parameter (the CPU for a model without any)."""
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")
