"""``lnstaging run-batch``: the pipeline over a cohort in the data set format, resumable, failure-tolerant.

Each case goes to OUT/<case_id>/ (written atomically, so a folder that exists is complete and is skipped on a
re-run; --overwrite runs it again, except a case that holds a review). A failing case is recorded in
OUT/batch_summary.json (written atomically) with its one-line reason and the rest continue. OUT may neither be nor
contain the cohort or one of its cases (docs/RELIABILITY.md).
Cases run as Dask tasks (LNStagingLib.scaling, docs/SCALING.md): an embedded LocalCluster on 127.0.0.1 by default,
a running Dask scheduler with --scheduler, or Slurm jobs with --cluster slurm.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from pathlib import Path

from .. import NOT_FOR_CLINICAL_USE
from ..docs_links import link_docs
from ..errors import LNStagingError, OutputError
from ..io.atomic import atomic_file
from ..io.outputs import MB, check_output, input_bytes, review_folders
from ._common import add_model_arguments, add_overwrite_argument, select_models


def register(sub):
    parser = sub.add_parser("run-batch", help="run the pipeline on every case of a cohort folder (resumable)")
    parser.add_argument("--data", required=True, type=Path, help="cohort folder in the data set format (docs/DATASET.md)")
    parser.add_argument("--out", required=True, type=Path, help="output folder: one results folder per case")
    parser.add_argument("--workers", type=int, help="worker processes of the embedded Dask cluster (default: from the "
                                                    "cores and ~3 GB per case, printed at start)")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="use a running Dask scheduler (e.g. tcp://127.0.0.1:8786)")
    parser.add_argument("--cluster", choices=("local", "slurm"), default="local",
                        help="local: embedded Dask LocalCluster (default); slurm: Dask workers as Slurm jobs")
    parser.add_argument("--jobs", type=int, help="--cluster slurm: number of Slurm jobs (one worker each; default 1)")
    parser.add_argument("--queue", help="--cluster slurm: partition")
    parser.add_argument("--memory", help="--cluster slurm: memory per job (default 6GB)")
    parser.add_argument("--walltime", help="--cluster slurm: time limit per job (default 04:00:00)")
    parser.add_argument("--interface", help="--cluster slurm: network interface the scheduler and workers use (e.g. ib0)")
    parser.add_argument("--cases", nargs="*", help="only these case ids")
    parser.add_argument("--threshold", type=float, default=0.5)
    add_model_arguments(parser)
    add_overwrite_argument(parser, "run finished cases again; a case holding a review is kept")
    parser.set_defaults(func=main)


def case_inputs_from_dataset(dataset, case_id: str):
    """A cohort case as pipeline inputs; only files that exist are given (no ground truth is read)."""
    from ..pipeline import CaseInputs

    case = dataset.case(case_id)
    optional = {key: case.path(key) if case.has(key) else None for key in ("organs", "tumor")}
    return CaseInputs(ct=case.path("ct"), pet=case.path("pet"), organs=optional["organs"], tumor=optional["tumor"],
                      organ_mapping=dataset.organ_mapping)


def read_summary(path: Path) -> dict:
    """The previous batch_summary.json, or {} when there is none; a corrupt one is refused (it holds the failures)."""
    if not path.exists():
        return {}
    try:
        summary = json.loads(path.read_text())
        if not isinstance(summary, dict) or not all(isinstance(summary.get(k, {}), (dict, list))
                                                    for k in ("finished", "failed", "seconds")):
            raise ValueError("not a batch summary")
        return summary
    except (OSError, ValueError) as error:
        raise OutputError(f"{path} cannot be read ({type(error).__name__}): move it away (the finished case folders "
                          "are kept) and run again.") from None


def main(args) -> int:
    from ..dataset.format import read_dataset
    from ..pipeline import RunOptions

    check_engine_options(args)
    args.data, args.out = Path(args.data).absolute(), Path(args.out).absolute()  # workers may have another cwd
    dataset = read_dataset(args.data)
    RunOptions(threshold=args.threshold, threads=args.threads)
    if args.workers is not None and args.workers < 1:
        raise LNStagingError(f"--workers {args.workers} is not a process count: give 1 or more.")
    wanted = args.cases or dataset.case_ids
    unknown = sorted(set(wanted) - set(dataset.case_ids))
    if unknown:
        raise LNStagingError(f"case id(s) {', '.join(unknown)} are not in {args.data}: check --cases.")
    inputs = [("--data", args.data), *((f"case {c}", dataset.case(c).root) for c in dataset.case_ids)]
    needed = sum(input_bytes([dataset.case(c).path("ct"), dataset.case(c).path("pet")]) for c in wanted) + 10 * MB
    check_output(args.out, kind="folder", write_into=True, inputs=inputs, needed_bytes=needed)
    previous = read_summary(args.out / "batch_summary.json")
    options = RunOptions(models=select_models(args.models), device=args.device, threshold=args.threshold,
                         threads=args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    done = [c for c in wanted if (args.out / c / "candidates.json").is_file()]
    if args.overwrite:
        reviewed = [c for c in done if review_folders(args.out / c)]
        if reviewed:
            print(f"Kept (they hold a review): {', '.join(reviewed)}.")
        done = reviewed
    todo = [c for c in wanted if c not in done]
    print(f"{len(wanted)} cases: {len(done)} already finished (skipped), {len(todo)} to run.")
    jobs = [(c, case_inputs_from_dataset(dataset, c), args.out, options, args.overwrite) for c in todo]
    started = time.time()
    with _sigterm_as_interrupt() as terminated:
        outcomes, interrupted = _run_on_dask(args, options, jobs) if jobs else ([], None)
    late = set()  # cases a worker finished while the cluster was being stopped: finished (their time is not known)
    if interrupted is not None:
        late = {c for c in interrupted if _written_since(args.out / c, started)}
        interrupted = [c for c in interrupted if c not in late]
    failed = {c: why for c, why, _ in outcomes if why is not None}
    summary_path = args.out / "batch_summary.json"
    summary = {
        "disclaimer": NOT_FOR_CLINICAL_USE,
        "finished": sorted(set(done) | late | {c for c, why, _ in outcomes if why is None}),
        "failed": {**{c: w for c, w in previous.get("failed", {}).items()
                      if c not in {o[0] for o in outcomes} | late}, **failed},
        "seconds": {**previous.get("seconds", {}), **{c: round(s, 2) for c, _, s in outcomes}},
    }
    with atomic_file(summary_path) as tmp:
        tmp.write_text(json.dumps(summary, indent=1))
    print(f"Finished {len(summary['finished'])}/{len(wanted)}; failed {len(failed)}. Summary: {summary_path}")
    if interrupted is not None:
        what = "Terminated (SIGTERM)" if terminated else "Interrupted"
        print(f"{what}: {len(interrupted)} case(s) cancelled, no partial case folder left; run the same "
              f"command again to continue.", file=sys.stderr)
        return 128 + terminated[0] if terminated else 130
    return 1 if failed else 0


def _written_since(case_folder: Path, since: float) -> bool:
    """The case's results are complete on disk and were written by this run (after ``since``, a time.time())."""
    candidates = case_folder / "candidates.json"
    return candidates.is_file() and candidates.stat().st_mtime >= since


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (timeout, scancel, kill) ends the batch as Ctrl-C does: cases cancelled, temporaries removed, the
    summary written. Yields a list that holds the signal number once one arrived."""
    received: list[int] = []

    def interrupt(signum, _frame):
        if not received:  # a second SIGTERM must not break the clean-up the first one started
            received.append(signum)
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_on_dask(args, options: RunOptions, jobs: list[tuple]):
    """(outcomes, cancelled case ids or None): the cases on the Dask cluster the options ask for."""
    from ..scaling import batch, clusters

    if not getattr(args, "verbose", False):
        clusters.quiet_dask_logs()
    cluster, client = _connect(args, options)
    try:
        link = clusters.dashboard_link(client, ours=cluster is not None)
        if link:
            print(f"Dask dashboard: {link}")
        with _progress_bar(len(jobs)) as bar:
            log = _CaseLog(len(jobs)) if not sys.stdout.isatty() else None

            def report(outcome):
                bar.update(1)
                if outcome[1] is not None:
                    bar.write(f"  {outcome[0]}: FAILED: {outcome[1]}")
                if log is not None:
                    log.finished(outcome)
            try:
                # someone else's workers cannot be stopped mid-case: their running cases are awaited and counted
                return batch.run_cases(client, jobs, args.out, report, await_running=cluster is None), None
            except KeyboardInterrupt as interrupt:
                cancelled = interrupt.unfinished
                outcomes = interrupt.outcomes
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    if cluster is not None:  # our workers are stopped: their temporaries can go
        batch.remove_partial_folders(args.out, cancelled)
    return outcomes, cancelled


def check_engine_options(args) -> None:
    """Options of one engine only: a user error before anything runs, not a silently ignored flag."""
    if args.scheduler and (args.cluster != "local" or args.workers):
        raise LNStagingError("--scheduler uses a running Dask cluster: drop --cluster/--workers.")
    slurm_only = [f"--{name}" for name in ("jobs", "queue", "memory", "walltime", "interface") if getattr(args, name)]
    if args.cluster != "slurm" and slurm_only:
        raise LNStagingError(f"{', '.join(slurm_only)} only apply with --cluster slurm.")
    if args.cluster == "slurm" and args.workers:
        raise LNStagingError("--workers sizes the local cluster; with --cluster slurm give --jobs.")
    if args.cluster == "slurm":
        args.jobs = args.jobs or 1


def _connect(args, options: RunOptions):
    """(cluster we own or None, client)."""
    from distributed import Client

    from ..scaling import clusters

    if args.scheduler:
        print(f"Dask scheduler {args.scheduler} (its workers, its retry setting: see {link_docs('docs/SCALING.md')})")
        warning = clusters.exposure_warning(args.scheduler)
        if warning:
            print(link_docs(warning), file=sys.stderr)
        try:
            return None, Client(args.scheduler, timeout="20s")
        except OSError as error:
            raise LNStagingError(f"Cannot reach the Dask scheduler at {args.scheduler} ({error}); is it running?")
    if args.cluster == "slurm":
        options.threads = options.threads or 4  # torch threads per case = CPUs per job
        slurm = clusters.slurm_job_options(args.jobs, args.queue, args.memory, args.walltime, cores=options.threads)
        cluster = clusters.start_slurm_cluster(slurm, args.jobs, args.interface)
        print(f"Dask on Slurm: {args.jobs} job(s) of {slurm['job_cpu']} CPUs, {slurm['memory']}, {slurm['walltime']}; "
              f"scheduler {cluster.scheduler_address}")
        return cluster, Client(cluster)
    sizing = clusters.local_sizing(args.workers)
    if options.threads is None:
        options.threads = sizing.torch_threads
    print(f"Dask LocalCluster on 127.0.0.1: {sizing.describe()}")
    cluster = clusters.start_local_cluster(sizing, quiet=not getattr(args, "verbose", False))
    return cluster, Client(cluster)


class _CaseLog:
    """One line per finished case on stdout when it is not a terminal (nohup, a batch job, a log file), where the
    progress bar is not drawn: case, outcome, case seconds, elapsed time and the ETA from the mean so far."""

    def __init__(self, total: int):
        self.total, self.done, self.start = total, 0, time.monotonic()

    def finished(self, outcome) -> None:
        case_id, why, seconds = outcome
        self.done += 1
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        state = "finished" if why is None else "FAILED"
        print(f"[{self.done}/{self.total}] {case_id} {state} in {seconds:.0f} s; elapsed {_clock(elapsed)}, "
              f"ETA {_clock(eta)}", flush=True)


def _clock(seconds: float) -> str:
    minutes, second = divmod(int(round(seconds)), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}:{minute:02d}:{second:02d}"


def _progress_bar(total: int):
    from tqdm import tqdm

    return tqdm(total=total, desc="cases", unit="case", disable=not sys.stderr.isatty())
