"""Where run-batch's cases run: an embedded Dask LocalCluster, a running Dask scheduler, or Slurm via dask-jobqueue.

One engine (dask.distributed) for every size: the same task per case, the same retry rule and the same progress,
whether the workers are two processes on a laptop or a hundred Slurm jobs.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from typing import Optional

CASE_PEAK_GB = 3.0  # peak resident memory of one case through the whole pipeline (docs/PERFORMANCE.md)
WORKER_DEATHS_ALLOWED = 1  # a case whose worker dies is retried once elsewhere, then recorded as failed


@dataclass
class LocalSizing:
    """Worker processes of an embedded LocalCluster and the torch threads each case gets."""

    workers: int
    threads_per_worker: int  # Dask task slots per worker: 1, one case at a time (a case already uses torch threads)
    torch_threads: int
    cores: int
    memory_gb: float

    def describe(self) -> str:
        return (f"{self.workers} worker process(es) x {self.threads_per_worker} case at a time, "
                f"{self.torch_threads} torch thread(s) per case ({self.cores} cores, {self.memory_gb:.1f} GB RAM, "
                f"~{CASE_PEAK_GB:g} GB per case)")


def local_sizing(workers: Optional[int] = None, cores: Optional[int] = None,
                 memory_gb: Optional[float] = None) -> LocalSizing:
    """As many workers as both the cores and the memory (one ~3 GB case per worker) allow, unless ``workers`` says."""
    import psutil

    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    memory_gb = memory_gb or psutil.virtual_memory().total / 2**30
    n = workers or max(1, min(cores, int(memory_gb // CASE_PEAK_GB)))
    return LocalSizing(workers=n, threads_per_worker=1, torch_threads=max(1, cores // n), cores=cores,
                       memory_gb=memory_gb)


def dashboard_available() -> bool:
    """Dask's dashboard needs bokeh, which is not a dependency of LNStaging."""
    return importlib.util.find_spec("bokeh") is not None


def retry_config() -> dict:
    """Scheduler settings for clusters we start: a task whose worker dies is retried once, then fails (KilledWorker)."""
    return {"distributed.scheduler.allowed-failures": WORKER_DEATHS_ALLOWED}


def start_local_cluster(sizing: LocalSizing, quiet: bool = True):
    """A LocalCluster whose scheduler, workers and HTTP endpoints listen on 127.0.0.1 only (a free port each: the
    scheduler always serves /health, and the dashboard too when bokeh is installed). Its workers ignore Ctrl-C and
    SIGTERM (run-batch stops them) and log quietly unless ``quiet`` is False (scaling/worker_setup.py)."""
    import dask
    from distributed import LocalCluster

    from .worker_setup import QUIET_CONFIG_KEY

    workers = {"distributed.worker.preload": [f"{__package__}.worker_setup"], QUIET_CONFIG_KEY: quiet}
    with dask.config.set({**retry_config(), **workers}):
        return LocalCluster(n_workers=sizing.workers, threads_per_worker=sizing.threads_per_worker, processes=True,
                            host="127.0.0.1", dashboard_address="127.0.0.1:0", memory_limit="auto")


def slurm_job_options(jobs: int, queue: Optional[str] = None, memory: Optional[str] = None,
                      walltime: Optional[str] = None, cores: int = 4) -> dict:
    """dask-jobqueue options for Slurm: per job one worker process running one case at a time (one Dask thread)
    on ``cores`` CPUs for its torch threads; memory defaults to the case peak plus headroom."""
    options = {"cores": 1, "job_cpu": cores, "processes": 1, "memory": memory or f"{int(CASE_PEAK_GB + 3)}GB",
               "walltime": walltime or "04:00:00", "python": sys.executable, "job_name": "lnstaging-batch"}
    if queue:
        options["queue"] = queue
    return options


def slurm_job_script(options: dict, scheduler_address: str = "tcp://SCHEDULER:8786") -> str:
    """The sbatch script dask-jobqueue would submit, rendered without starting a scheduler or calling Slurm."""
    from dask_jobqueue.slurm import SLURMJob

    return SLURMJob(scheduler=scheduler_address, name="lnstaging-worker", **options).job_script()


def start_slurm_cluster(options: dict, jobs: int, interface: Optional[str] = None):
    """A SLURMCluster with ``jobs`` jobs. Its scheduler must be reachable from the compute nodes, so it listens on
    ``interface`` (or the host name's address), never on all interfaces; its dashboard stays on 127.0.0.1."""
    import shutil
    import socket

    import dask
    from dask_jobqueue import SLURMCluster

    from ..errors import LNStagingError

    if shutil.which("sbatch") is None:
        raise LNStagingError("--cluster slurm needs Slurm's sbatch here: run the command on the cluster's login node.")

    where = {"interface": interface} if interface else {"host": socket.gethostbyname(socket.gethostname())}
    scheduler_options = {**where, "dashboard_address": "127.0.0.1:0"}
    with dask.config.set(retry_config()):
        cluster = SLURMCluster(**options, interface=interface, scheduler_options=scheduler_options)
    cluster.scale(jobs=jobs)
    return cluster


def dashboard_link(client, ours: bool) -> Optional[str]:
    """The dashboard address, or None when there is no dashboard to see: Dask serves one only with bokeh installed
    (without it the page says only "Dask needs bokeh"), on our scheduler here, on someone else's where it runs."""
    if "dashboard" not in client.scheduler_info().get("services", {}):
        return None
    if ours:
        return client.dashboard_link if dashboard_available() else None
    try:
        has_bokeh = client.run_on_scheduler(lambda: __import__("importlib.util").util.find_spec("bokeh") is not None)
    except Exception:  # a scheduler that does not run client code: no link rather than a possibly empty page
        return None
    return client.dashboard_link if has_bokeh else None


def exposure_warning(address: str) -> Optional[str]:
    """A warning when run-batch would send its tasks to a scheduler off this machine without TLS: a Dask scheduler
    runs whatever its clients send, so anyone who reaches it can run code on the workers."""
    import dask
    from distributed.comm import parse_address, parse_host_port

    from ..web.security import is_loopback

    scheme, location = parse_address(address)
    secured = scheme == "tls" or bool(dask.config.get("distributed.comm.require-encryption", False))
    host = parse_host_port(location)[0] if scheme in ("tcp", "tls", "ws", "wss") else None
    if secured or scheme in ("inproc", "ucx") or (host is not None and is_loopback(host)):
        return None
    return (f"Warning: the Dask scheduler {address} is not on this machine's loopback and the connection is not "
            "encrypted: anyone who can reach it can run code on its workers. Use a tls:// address with Dask's "
            "security settings, or keep the scheduler on a trusted network (docs/SCALING.md, Security).")


def quiet_dask_logs() -> None:
    """Dask logs every worker start and stop at INFO; a batch prints only warnings it can act on (-v shows all)."""
    import logging

    import distributed  # noqa: F401  (its import configures its loggers: quiet them after it)

    logging.getLogger("distributed").setLevel(logging.ERROR)
