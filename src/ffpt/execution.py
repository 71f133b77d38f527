"""The one execution engine for embarrassingly parallel work: Dask ``distributed``.

:func:`executor` yields a :class:`concurrent.futures.Executor`: in-process for one worker, an
embedded ``LocalCluster`` of ``workers`` single-threaded processes by default, or a running Dask
scheduler (``scheduler="tcp://HOST:PORT"`` or a scheduler JSON file). Library functions take any
``concurrent.futures.Executor``-compatible object, so other engines (Parsl, a plain process pool)
plug in the same way.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class InlineExecutor(cf.Executor):
    """Runs each task at submission, in this process (one worker: no start-up cost, plain tracebacks)."""

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(exc)
        return future


@contextmanager
def executor(workers: int = 1, scheduler: str | None = None, threads_per_worker: int = 1) -> Iterator[cf.Executor]:
    """An executor for independent tasks; closed (and its local cluster shut down) on exit.

    ``scheduler``: address (``tcp://HOST:PORT``) or scheduler-file path of a running Dask cluster;
    ``workers`` then does not apply. Without it, ``workers`` > 1 starts an embedded ``LocalCluster``
    of that many processes with ``threads_per_worker`` threads each.
    """
    if scheduler is None and workers <= 1:
        yield InlineExecutor()
        return
    from distributed import Client, LocalCluster

    if scheduler is not None:
        path = Path(scheduler)
        client = Client(scheduler_file=str(path)) if path.is_file() else Client(scheduler)
        try:
            yield client.get_executor(pure=False)
        finally:
            client.close()
        return
    with LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client.get_executor(pure=False)
