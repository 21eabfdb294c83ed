"""Multi-process training through Accelerate (``accelerate launch``; gloo on CPU, NCCL on GPUs).

The loop runs unchanged in every process; each process takes its contiguous share of the global
batch. With one process nothing is wrapped: the loop calls the loss and ``backward`` directly.
With several, :class:`DataParallel` hands the trained module (the model, plus trained parameters
that live outside it, such as a task head) and the optimiser to ``Accelerator.prepare``, which
wraps the module in ``DistributedDataParallel``; ``accelerator.backward`` runs the backward pass,
``accelerator.no_sync`` skips the gradient all-reduce on all but the last micro-batch of a step
(what ``accelerator.accumulate`` does) and ``accelerate.utils.gather`` collects the step's token
counts and loss sums. DDP averages the gradients of the trained parameters over the processes;
dividing them by the global count of predicted tokens over the number of processes gives the
token-weighted mean of the whole global batch, so N processes make the one-process update.

FSDP and DeepSpeed settings from ``accelerate config`` are not applied (one line says so): the
loop reads, checkpoints and evaluates the trained parameters by name on the unwrapped model, which
FSDP would hold only as shards, and DeepSpeed's engine steps the optimiser inside ``backward``,
before the step's global token count is known. Such launches train data-parallel instead.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs, PartialState
from accelerate.utils import gather

from lowres_adapters.errors import LowresError

SHARDING_VARIABLES = {"FSDP": "ACCELERATE_USE_FSDP", "DeepSpeed": "ACCELERATE_USE_DEEPSPEED"}
"""The ``accelerate launch`` environment switches of the sharding back ends the loop does not apply."""


@dataclass(frozen=True)
class ProcessInfo:
    """Where this process stands in a (possibly single-process) run.

    Attributes:
        rank: Index of this process (0 in a single-process run).
        world_size: Number of processes.
        local_rank: Index of this process on its machine (which GPU it takes).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Return True for the process that writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Return True when more than one process runs."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait until every process reaches this point."""
        if self.distributed:
            torch.distributed.barrier()

    def total(self, tensor: torch.Tensor) -> torch.Tensor:
        """Return ``tensor`` summed over all processes (``tensor`` itself with one process).

        The processes' tensors are gathered (on the process group's device: NCCL gathers only
        CUDA tensors) and added in rank order, so every process gets the same figures.
        """
        if not self.distributed:
            return tensor
        gathered = gather(tensor.to(PartialState().device))  # (processes * len,)
        return gathered.reshape(self.world_size, *tensor.shape).sum(0).to(tensor.device)


def launched_world_size() -> int:
    """Return the number of processes the launcher started (``WORLD_SIZE``; 1 when not launched)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def current_process() -> ProcessInfo:
    """Return this process's place, initialising the process group through Accelerate when launched."""
    if launched_world_size() <= 1:
        return ProcessInfo()

    with _without_sharding():  # a DeepSpeed launch would otherwise set the process group up through DeepSpeed
        state = PartialState(cpu=not torch.cuda.is_available())
    return ProcessInfo(rank=state.process_index, world_size=state.num_processes,
                       local_rank=state.local_process_index)


def ignored_launch_settings(environ: Mapping[str, str] | None = None) -> list[str]:
    """Return the notes to print about ``accelerate launch`` settings the loop does not apply.

    Args:
        environ: The environment (default ``os.environ``); tests pass their own.
    """
    environ = os.environ if environ is None else environ
    notes = [f"note: the {name} settings of `accelerate config` are not applied: the loop trains data-parallel "
             "(every process holds the whole frozen base; see docs/gpus.md)"
             for name, variable in SHARDING_VARIABLES.items() if environ.get(variable, "false").lower() == "true"]
    mixed = environ.get("ACCELERATE_MIXED_PRECISION", "no").lower()
    if mixed != "no":
        notes.append(f"note: accelerate's --mixed_precision {mixed} is not used: --precision chooses the precision")
    return notes


class TrainedModule(torch.nn.Module):
    """The module DDP wraps: ``forward(batch)`` is ``loss_fn(model, batch)``.

    Trained parameters that live outside ``model`` (a task head the loss applies, say) are
    registered too, so their gradients are averaged with the model's. Frozen parameters and all
    buffers are left out of DDP's start-up broadcast and per-step buffer broadcast: every process
    loads the same base, and running statistics stay per process as in the one-process loop.
    """

    def __init__(self, model: torch.nn.Module, loss_fn: Callable[..., tuple[torch.Tensor, int]],
                 parameters: Sequence[torch.nn.Parameter]) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn
        inside = {id(p) for p in model.parameters()}
        self.outside = torch.nn.ParameterList([p for p in parameters if id(p) not in inside])
        trained = {id(p) for p in parameters}
        # read by DistributedDataParallel: names it neither broadcasts nor reduces
        self._ddp_params_and_buffers_to_ignore = [
            *(name for name, p in self.named_parameters() if id(p) not in trained),
            *(name for name, _ in self.named_buffers()),
        ]

    def forward(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, int]:
        """Return ``(mean loss over the batch's predicted tokens, their number)``."""
        return self.loss_fn(self.model, batch)


@dataclass
class DataParallel:
    """How one optimiser step's micro-batches become an update, in one process or through Accelerate.

    Build it with :meth:`build`; the loop then runs, per micro-batch, ``with micro_batch(last):``
    :meth:`loss` and :meth:`backward` (of the *summed* loss), and per step :meth:`mean_gradients_`
    with the global count of predicted tokens, :meth:`clip_` and ``optimizer.step()``.

    Attributes:
        model: The model the loss is called with.
        loss_fn: ``loss_fn(model, batch) -> (mean loss, n_predicted_tokens)``.
        optimizer: The optimiser to step (Accelerate's wrapper of it with several processes).
        parameters: The trained parameters, in the loop's order.
        world_size: Number of processes.
        accelerator: The Accelerator (None with one process).
        wrapped: The prepared (DDP) :class:`TrainedModule` (None with one process).
        notes: Lines for the start of the run about launch settings not applied
            (:func:`ignored_launch_settings`).
    """

    model: torch.nn.Module
    loss_fn: Callable[..., tuple[torch.Tensor, int]]
    optimizer: Any
    parameters: Sequence[torch.nn.Parameter]
    world_size: int = 1
    accelerator: Accelerator | None = None
    wrapped: torch.nn.Module | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, model: torch.nn.Module, loss_fn: Callable[..., tuple[torch.Tensor, int]],
              optimizer: torch.optim.Optimizer, parameters: Sequence[torch.nn.Parameter], process: ProcessInfo,
              device: torch.device) -> "DataParallel":
        """Return the one-process path, or (several processes) the module and optimiser prepared by Accelerate.

        Args:
            model: The model, already on ``device``, everything but ``parameters`` frozen.
            loss_fn: The loss the loop calls.
            optimizer: The optimiser over ``parameters``.
            parameters: The trained parameters.
            process: This process's place.
            device: The run's device (the model is placed by the loop, not by Accelerate).
        """
        if not process.distributed:
            return cls(model, loss_fn, optimizer, list(parameters))
        launched_on = PartialState().device.type
        if device.type != launched_on:
            raise LowresError(f"--device {device.type}: the processes were launched for {launched_on} "
                              f"(use --device {launched_on}, or launch CPU processes with CUDA_VISIBLE_DEVICES=)")
        notes = ignored_launch_settings()
        with _without_sharding():
            accelerator = Accelerator(cpu=device.type == "cpu", mixed_precision="no", device_placement=False,
                                      kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
        wrapped, prepared_optimizer = accelerator.prepare(TrainedModule(model, loss_fn, parameters), optimizer)
        return cls(model, loss_fn, prepared_optimizer, list(parameters), process.world_size, accelerator, wrapped,
                   notes)

    def micro_batch(self, last: bool) -> contextlib.AbstractContextManager:
        """Return the context of one micro-batch: gradients are all-reduced only after the ``last``."""
        if self.accelerator is None or last:
            return contextlib.nullcontext()
        return self.accelerator.no_sync(self.wrapped)

    def loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, int]:
        """Return ``(mean loss, n_predicted_tokens)`` of ``batch`` (through DDP with several processes)."""
        if self.wrapped is None:
            return self.loss_fn(self.model, batch)
        return self.wrapped(batch)

    def needs_backward(self, count: int) -> bool:
        """Return whether a micro-batch with ``count`` predicted tokens must run backward (always with
        several processes: DDP's all-reduce waits for every process)."""
        return count > 0 or self.accelerator is not None

    def backward(self, summed_loss: torch.Tensor) -> None:
        """Backpropagate ``summed_loss`` (the micro-batch's loss times its token count)."""
        if self.accelerator is None:
            summed_loss.backward()
        else:
            self.accelerator.backward(summed_loss)

    def mean_gradients_(self, predicted_tokens: float) -> None:
        """Turn the accumulated gradients into the token-weighted mean over the global batch.

        One process holds the gradient of the summed loss; DDP leaves its average over the
        processes, so the divisor is ``predicted_tokens / processes``.
        """
        divisor = predicted_tokens / self.world_size
        for parameter in self.parameters:
            if parameter.grad is not None:
                parameter.grad.div_(divisor)

    def clip_(self, max_norm: float) -> None:
        """Clip the trained parameters' gradients to ``max_norm`` (global L2 norm)."""
        if self.accelerator is None:
            torch.nn.utils.clip_grad_norm_(self.parameters, max_norm)
        else:
            self.accelerator.clip_grad_norm_(self.parameters, max_norm)


@contextlib.contextmanager
def _without_sharding() -> Iterator[None]:
    """Switch FSDP and DeepSpeed off in the environment for the block: Accelerate reads the launch
    settings there when it sets up the process state and the Accelerator (see the module notes)."""
    saved = {name: os.environ.get(name) for name in SHARDING_VARIABLES.values()}
    os.environ.update({name: "false" for name in saved})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
