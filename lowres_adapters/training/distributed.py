"""Multi-process training through Accelerate (``accelerate launch``; gloo on CPU, NCCL on GPUs).

The loop runs unchanged in every process. Each process takes its contiguous share of the global
batch; after the micro-batches of a step, the gradients of the *trained* parameters only (the
adapter: a few MB, not the frozen backbone) and the predicted-token counts are summed across
processes, so the update equals the one-process update on the same global batch. Accelerate
starts the processes and sets up the process group (``PartialState``); the collectives are
``torch.distributed``'s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import torch
from accelerate import PartialState


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

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over all processes in place and return it (through the GPU under NCCL,
        which reduces only CUDA tensors)."""
        if not self.distributed:
            return tensor
        if torch.distributed.get_backend() == "nccl" and tensor.device.type != "cuda":
            moved = tensor.to(torch.device("cuda", self.local_rank))
            torch.distributed.all_reduce(moved, op=torch.distributed.ReduceOp.SUM)
            return tensor.copy_(moved)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor

    def sum_gradients_(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Sum the gradients of ``parameters`` over all processes, in one flat all-reduce."""
        if not self.distributed:
            return
        parameters = [p for p in parameters if p.grad is not None]
        if not parameters:
            return
        flat = torch.cat([p.grad.reshape(-1) for p in parameters])  # (total trainable,)
        self.sum_(flat)
        offset = 0
        for parameter in parameters:
            size = parameter.grad.numel()
            parameter.grad.copy_(flat[offset: offset + size].view_as(parameter.grad))
            offset += size


def launched_world_size() -> int:
    """Return the number of processes the launcher started (``WORLD_SIZE``; 1 when not launched)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def current_process() -> ProcessInfo:
    """Return this process's place, initialising the process group through Accelerate when launched."""
    if launched_world_size() <= 1:
        return ProcessInfo()

    state = PartialState(cpu=not torch.cuda.is_available())
    return ProcessInfo(rank=state.process_index, world_size=state.num_processes,
                       local_rank=state.local_process_index)
