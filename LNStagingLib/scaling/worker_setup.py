"""Preloaded into the worker processes of the LocalCluster that run-batch starts (clusters.start_local_cluster).

Ctrl-C in a terminal reaches the whole process group and scancel's SIGTERM every process of the job: run-batch
itself cancels the cases, stops these workers and writes the summary, so a worker ignores both signals instead of
printing its own traceback (it still exits when run-batch closes it or dies: distributed's parent-alive pipe).
Its Dask logs are silent unless run-batch was started with -v: what matters reaches run-batch anyway (a case's error is
its task's result, a dead worker a KilledWorker on the scheduler's side), and what a worker logs on its own is
shutdown noise (a heartbeat to a scheduler that has just closed, printed as a traceback).
"""

from __future__ import annotations

import logging
import signal

QUIET_CONFIG_KEY = "lnstaging.quiet-workers"


def dask_setup(worker) -> None:
    import dask

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if dask.config.get(QUIET_CONFIG_KEY, True):
        logging.getLogger("distributed").setLevel(logging.CRITICAL)
