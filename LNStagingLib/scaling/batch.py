"""A cohort's cases as Dask tasks: one task per case, outcomes as (case_id, error or None, seconds).

The task writes its case folder atomically (pipeline.run_to_folder), so a folder that exists is complete. A worker
that dies mid-case (out of memory, kill -9) leaves only hidden ``.<case>.partial-<pid>-*`` folders, tidied here once
no task of this run can still write them. Tasks travel by reference (module + function name), their arguments are our
own dataclasses: what Dask pickles between our processes is never a user's file.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

Outcome = tuple[str, Optional[str], float]


def run_case_task(case_id: str, inputs, out: Path, options, overwrite: bool = False) -> Outcome:
    """The unit of work on a worker: one case to OUT/<case_id>/; a case's failure is returned as one line."""
    from ..errors import LNStagingError
    from ..pipeline import run_to_folder

    t = time.perf_counter()
    try:
        run_to_folder(inputs, Path(out) / case_id, options, overwrite=overwrite)
        return case_id, None, time.perf_counter() - t
    except LNStagingError as error:
        return case_id, str(error), time.perf_counter() - t
    except Exception as error:  # one case's bug must not stop a night's batch; recorded, not hidden
        return case_id, f"internal error {type(error).__name__}: {error}", time.perf_counter() - t


def task_key(out: Path, case_id: str) -> str:
    """Readable on the dashboard, unique per output folder (two batches on one scheduler never share a result)."""
    digest = hashlib.sha256(str(Path(out).absolute()).encode()).hexdigest()[:10]
    return f"lnstaging-case-{case_id}-{digest}"


def remove_partial_folders(out: Path, case_ids: Iterable[str]) -> None:
    """Tidy what killed workers left for these cases (io.atomic.recover_after_kill: their temporaries go, a previous
    folder moved aside is put back); call it only when no task of this run can still write them."""
    from ..io.atomic import recover_after_kill

    for case_id in case_ids:
        recover_after_kill(Path(out) / case_id)


def _failure_of(future, case_id: str) -> Outcome:
    """A task that raised on Dask's side (not inside our pipeline): the worker died too often, or Dask lost it."""
    from distributed import KilledWorker

    error = future.exception()
    if isinstance(error, KilledWorker):
        return case_id, "the worker running this case died twice (out of memory or killed); not retried again", 0.0
    return case_id, f"engine error {type(error).__name__}: {error}", 0.0


def run_cases(client, jobs: list[tuple], out: Path, on_outcome: Callable[[Outcome], None] = lambda o: None,
              task: Callable[..., Outcome] = run_case_task, await_running: bool = False) -> list[Outcome]:
    """Submit one ``task`` per (case_id, inputs, out, options) job and collect outcomes as they finish.

    Ctrl-C cancels every future and re-raises KeyboardInterrupt with the outcomes gathered so far on
    ``interrupt.outcomes`` and the cancelled case ids on ``interrupt.unfinished`` (the caller stops its workers, then
    removes their temporaries with remove_partial_folders). With ``await_running`` (someone else's workers, which
    cannot be stopped mid-case) only the cases not yet started are cancelled; the running ones are awaited and
    counted, until a second Ctrl-C.
    """
    from distributed import as_completed

    futures = {client.submit(task, *job, key=task_key(out, job[0]), pure=False): job[0] for job in jobs}
    outcomes: list[Outcome] = []

    def collect(pending) -> None:
        for future in as_completed(pending):
            case_id = futures[future]
            outcome = future.result() if future.status == "finished" else _failure_of(future, case_id)
            outcomes.append(outcome)
            on_outcome(outcome)

    try:
        collect(futures)
    except KeyboardInterrupt as interrupt:
        seen = {o[0] for o in outcomes}
        running = _running(client, futures) if await_running else []
        client.cancel([f for f in futures if f not in running])
        if running:
            try:
                collect([f for f in running if futures[f] not in seen])
            except KeyboardInterrupt:
                client.cancel(running)
        interrupt.outcomes = outcomes
        interrupt.unfinished = sorted(set(futures.values()) - {o[0] for o in outcomes})
        raise interrupt
    remove_partial_folders(out, futures.values())
    return outcomes


def _running(client, futures) -> list:
    """The futures a worker is executing now (asked of the workers: the scheduler's "processing" also holds tasks
    queued on a worker that has not started them)."""
    try:
        executing = client.run(lambda dask_worker: [ts.key for ts in dask_worker.state.executing])
        busy = {key for keys in executing.values() for key in keys}
    except Exception:  # the scheduler or its workers are gone: nothing to wait for
        return []
    return [future for future in futures if future.key in busy and future.status == "pending"]
