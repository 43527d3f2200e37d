"""One worker pool for every long job (trajectory collection, proxy runs, leaderboard episodes).

`run_jobs(work, jobs)` calls `work(*job)` for each job and yields `(index, result)` as each one
ends: in this process (`workers=1`), in spawned local processes, or on a Ray cluster (the one at
$RAY_ADDRESS, or a local one started and stopped here). `initializer(*initargs)` runs once per
worker before its first job, so a worker can build its env once. A failing job raises `JobFailed`
naming its index; jobs not yet started are cancelled, as they are when the caller stops reading the results
(closes the iterator, or raises while iterating). `work` and `initializer` must be importable
module-level functions, since spawned processes and Ray workers import them by name.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any, Callable, Iterator, Literal, Sequence

from ..errors import ConfigError

Backend = Literal["process", "ray"]


class JobFailed(RuntimeError):
    """A job raised: `index` says which, `__cause__` holds its error."""

    def __init__(self, index: int, error: BaseException):
        super().__init__(f"job {index} failed: {type(error).__name__}: {error}")
        self.index, self.error = index, error


def threads_per_worker(workers: int) -> int:
    """The machine's cores shared evenly over the workers (at least one each)."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def _init_threads(threads: int, initializer: Callable[..., None] | None, initargs: tuple) -> None:
    if threads > 0:  # 0: leave this process's thread count alone
        import torch

        torch.set_num_threads(threads)
    if initializer is not None:
        initializer(*initargs)


def run_jobs(work: Callable[..., Any], jobs: Sequence[tuple], workers: int = 1, backend: Backend = "process",
             initializer: Callable[..., None] | None = None, initargs: tuple = (),
             threads: int | None = None) -> Iterator[tuple[int, Any]]:
    """Run `work(*job)` for every job; yield (job index, result) as each ends (in order when `workers` is 1).

    `threads`: torch threads per worker (default: the cores shared over the workers; in-process runs keep theirs).
    """
    if backend not in ("process", "ray"):
        raise ConfigError(f"unknown backend {backend!r}; choose 'process' or 'ray'")
    if not jobs:
        return
    workers = max(1, min(workers, len(jobs)))
    threads = threads_per_worker(workers) if threads is None else threads
    if backend == "ray":
        yield from _run_ray(work, jobs, workers, initializer, initargs, threads)
        return
    if workers == 1:  # in this process: no start-up cost
        if initializer is not None:
            initializer(*initargs)
        for index, job in enumerate(jobs):
            try:
                result = work(*job)
            except Exception as error:
                raise JobFailed(index, error) from error
            yield index, result
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_threads,
                             initargs=(threads, initializer, initargs)) as pool:
        futures = {pool.submit(work, *job): index for index, job in enumerate(jobs)}
        try:
            for future in as_completed(futures):
                index = futures[future]
                try:
                    result = future.result()
                except Exception as error:
                    raise JobFailed(index, error) from error
                yield index, result
        finally:  # a failed job, or a caller that stops reading (it raised, or broke off): queued jobs never start
            for other in futures:
                other.cancel()


def _run_ray(work: Callable[..., Any], jobs: Sequence[tuple], workers: int, initializer: Callable[..., None] | None,
             initargs: tuple, threads: int) -> Iterator[tuple[int, Any]]:
    try:
        import ray
    except ImportError as error:
        raise ImportError("backend='ray' needs Ray: pip install 'dmix[ray]'") from error

    started_here = not ray.is_initialized()
    if started_here:
        local = not os.environ.get("RAY_ADDRESS")
        if local:
            # Ray runs workers at nice 15: on a busy machine they starve (a worker took minutes to import torch).
            os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(num_cpus=workers * threads if local else None, log_to_driver=True)

    @ray.remote(num_cpus=threads)
    class Worker:
        def __init__(self) -> None:
            _init_threads(threads, initializer, initargs)

        def run(self, index: int, job: tuple) -> tuple[int, Any]:
            try:
                return index, work(*job)
            except Exception as error:
                raise JobFailed(index, error) from error

    try:
        pool = ray.util.ActorPool([Worker.remote() for _ in range(workers)])
        for index, result in pool.map_unordered(lambda actor, item: actor.run.remote(*item), list(enumerate(jobs))):
            yield index, result
    except ray.exceptions.RayTaskError as error:
        cause = getattr(error, "cause", None) or error
        raise (cause if isinstance(cause, JobFailed) else JobFailed(-1, cause)) from error
    finally:
        if started_here:
            ray.shutdown()
