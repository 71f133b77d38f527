"""The one execution engine for embarrassingly parallel work: Dask ``distributed``.

:func:`executor` yields a :class:`concurrent.futures.Executor`: in-process for one worker, an
embedded ``LocalCluster`` of ``workers`` processes with ``threads_per_worker`` threads each (and
as many OpenMP/BLAS threads) by default, or a running Dask scheduler (``scheduler="tcp://HOST:PORT"``
or a scheduler JSON file). Library functions take any ``concurrent.futures.Executor``-compatible
object, so other engines (Parsl, a plain process pool) plug in the same way; :func:`completed`
runs tasks on one and yields their results as they finish.

Faults: a task whose worker dies is rescheduled by the Dask scheduler on another worker (up to
``distributed.scheduler.allowed-failures`` deaths per task, default 3); the embedded cluster's
worker processes exit when the process that started them dies, even by SIGKILL (Dask watches a
pipe to the parent). Tasks should store their own results (e.g. an atomic per-item cache), so a
killed client loses nothing that had finished.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class InlineExecutor(cf.Executor):
    """Runs each task at submission, in this process (one worker: no start-up cost, plain tracebacks)."""

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(exc)
        return future


def connect(scheduler: str):
    """A Dask ``Client`` of a running scheduler: ``tcp://HOST:PORT`` or a scheduler JSON file."""
    from distributed import Client

    from ffpt.config import ConfigError

    try:
        if Path(scheduler).is_file():
            return Client(scheduler_file=scheduler, timeout="30s")
        return Client(scheduler, timeout="30s")
    except (OSError, ValueError, TypeError) as exc:  # unreachable, refused, malformed address or file
        raise ConfigError(f"scheduler {scheduler}: cannot connect ({exc})") from None


@contextmanager
def executor(workers: int | None = 1, scheduler: str | None = None, threads_per_worker: int = 1) -> Iterator[cf.Executor]:
    """An executor for independent tasks; closed (and its local cluster shut down) on exit.

    ``scheduler``: address (``tcp://HOST:PORT``) or scheduler-file path of a running Dask cluster;
    ``workers`` then does not apply (the cluster's workers set their own thread variables). Without
    it, ``workers`` > 1 starts an embedded ``LocalCluster`` of that many processes with
    ``threads_per_worker`` threads each; OMP/OpenBLAS/MKL_NUM_THREADS are set to
    ``threads_per_worker`` in those processes before they start. Its dashboard listens on a free
    local port (never a fixed one that a second run would collide on).
    """
    workers = workers or 1  # None: the flag was not given
    if scheduler is None and workers <= 1:
        yield InlineExecutor()
        return
    if scheduler is not None:
        client = connect(scheduler)
        try:
            yield client.get_executor(pure=False)
        finally:
            client.close()
        return
    import dask
    from distributed import Client, LocalCluster

    threads = {name: str(threads_per_worker) for name in THREAD_VARIABLES}
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    # set in the spawned worker before Python starts; the nanny sets them in this process too,
    # so this process's values are restored on exit
    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **threads}
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}), LocalCluster(
            n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
            dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR,
        ) as cluster, Client(cluster) as client:
            yield client.get_executor(pure=False)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def completed(pool: cf.Executor, fn: Callable, calls: Iterable[tuple]) -> Iterator[tuple[int, Any]]:
    """Run ``fn(*args)`` for every ``args`` of ``calls`` on ``pool``; yield ``(index, result)`` as
    each finishes (completion order). A task's exception is raised here; then, or when the caller
    stops early (Ctrl-C, ``break``), the tasks not yet finished are cancelled.

    An in-process pool runs each task when it is submitted, so results arrive one by one there too.
    """
    pending: dict[cf.Future, int] = {}
    try:
        for index, args in enumerate(calls):
            future = pool.submit(fn, *args)
            if isinstance(pool, InlineExecutor):
                yield index, future.result()
            else:
                pending[future] = index
        for future in cf.as_completed(pending):
            index = pending.pop(future)
            yield index, future.result()
    finally:
        for future in pending:
            future.cancel()
