"""Independent pieces of scoring and generation side by side, one worker thread per CPU core.

On a CPU, PyTorch's own threads split the matrix products of a small model's small batches
poorly; pieces of evaluation that share nothing but the (frozen) model — one batch of held-out
scoring, one batch of beam search — run better side by side, each single-threaded. A
:class:`WorkPool` keeps ``workers`` threads; :meth:`WorkPool.run` hands it pieces and returns
their results in the order given, so the figures do not depend on which worker ran what. Pending
pieces are taken costliest first (pieces from several callers share one queue), so the last
pieces to finish are short ones. Pieces run without gradients; the model is only read.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Generic, Sequence, TypeVar

import torch

T = TypeVar("T")


@dataclass(frozen=True)
class Piece(Generic[T]):
    """One independent piece of work.

    Attributes:
        cost: Estimated cost (any unit shared by the pieces of one pool, e.g. token positions).
        run: Computes the piece's result.
    """

    cost: float
    run: Callable[[], T]


def cpu_workers(model: Any) -> int:
    """Return how many workers suit ``model``: PyTorch's thread count on a CPU (``OMP_NUM_THREADS``), else 1."""
    parameter = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    if parameter is not None and parameter.device.type != "cpu":
        return 1
    return max(1, torch.get_num_threads())


class WorkPool:
    """Worker threads, each running PyTorch single-threaded, fed from one queue ordered by cost.

    Use as a context manager: the threads start on entry and stop on exit, and the calling
    thread's PyTorch thread count is put back. With ``workers=1`` (or outside the ``with``
    block) :meth:`run` runs the pieces in the calling thread, one after another, unchanged.

    Args:
        workers: Number of worker threads (CPU cores to use).
    """

    def __init__(self, workers: int = 1):
        self.workers = max(1, int(workers))
        self._queue: list[tuple[float, int, Piece, Future]] = []  # heap: costliest first, then oldest
        self._order = itertools.count()
        self._condition = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._caller_threads = 0

    @property
    def parallel(self) -> bool:
        """Return True while worker threads are running."""
        return bool(self._threads)

    def __enter__(self) -> "WorkPool":
        if self.workers > 1:
            self._caller_threads = torch.get_num_threads()
            torch.set_num_threads(1)
            self._closed = False
            self._threads = [threading.Thread(target=self._work, name=f"lowres-worker-{index}", daemon=True)
                             for index in range(self.workers)]
            for thread in self._threads:
                thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if not self._threads:
            return
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        for thread in self._threads:
            thread.join()
        self._threads = []
        torch.set_num_threads(self._caller_threads)

    def run(self, pieces: Sequence[Piece[T]]) -> list[T]:
        """Run ``pieces`` (on the workers when the pool is running) and return their results in order.

        The first exception raised by a piece is raised here, after the other pieces have ended.
        """
        if not self.parallel:
            with torch.no_grad():
                return [piece.run() for piece in pieces]
        futures: list[Future] = []
        with self._condition:
            for piece in pieces:
                future: Future = Future()
                heapq.heappush(self._queue, (-float(piece.cost), next(self._order), piece, future))
                futures.append(future)
            self._condition.notify_all()
        errors = [future.exception() for future in futures]
        for error in errors:
            if error is not None:
                raise error
        return [future.result() for future in futures]

    def _work(self) -> None:
        torch.set_num_threads(1)  # this thread's OpenMP and MKL settings: one core per worker
        while True:
            with self._condition:
                while not self._queue and not self._closed:
                    self._condition.wait()
                if not self._queue:
                    return
                _, _, piece, future = heapq.heappop(self._queue)
            if not future.set_running_or_notify_cancel():
                continue
            try:
                with torch.no_grad():
                    future.set_result(piece.run())
            except BaseException as error:  # handed to the caller of run()
                future.set_exception(error)


def run_side_by_side(pool: WorkPool, *tasks: Callable[[], Any]) -> list[Any]:
    """Call ``tasks`` at the same time when ``pool`` runs workers (each task's pieces then share its queue),
    else one after another; return their results in order.

    A task is a phase that hands pieces to ``pool`` (held-out scoring, generation); run side by
    side, one phase's short pieces fill the cores while the other's long ones finish.
    """
    if not pool.parallel or len(tasks) <= 1:
        return [task() for task in tasks]
    results: list[Any] = [None] * len(tasks)
    errors: list[BaseException | None] = [None] * len(tasks)

    def call(index: int) -> None:
        try:
            results[index] = tasks[index]()
        except BaseException as error:  # raised in the caller below
            errors[index] = error

    threads = [threading.Thread(target=call, args=(index,), name=f"lowres-phase-{index}")
               for index in range(len(tasks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for error in errors:
        if error is not None:
            raise error
    return results
