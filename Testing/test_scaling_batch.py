"""`lnstaging run-batch` on Dask, with real engines on loopback (docs/SCALING.md): an embedded LocalCluster with 2
worker processes and a separately started `dask scheduler` + 2 `dask worker` processes give the same results as a
serial run; a worker killed mid-run loses no case; a case whose worker keeps dying is recorded as failed; a finished
cohort is skipped on a re-run; the Slurm job script renders. Needs 2 cores: few, slow tests."""

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from LNStagingLib.cli import main
from LNStagingLib.commands.run_batch import case_inputs_from_dataset
from LNStagingLib.dataset.format import read_dataset
from LNStagingLib.phantom.cohort import write_cohort
from LNStagingLib.pipeline import RunOptions, run_to_folder
from LNStagingLib.scaling.clusters import local_sizing, slurm_job_options, slurm_job_script
from scaling_support import models_option, stop_processes, write_tiny_models

CASES = ["case000", "case001", "case002", "case003"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("cohort") / "c", seed=9, cases=4, size="small", folds=1,
                        test_fraction=0.0)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return write_tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def serial(cohort, models, tmp_path_factory):
    """The reference: every case in this process, one after the other, without Dask."""
    out = tmp_path_factory.mktemp("serial")
    dataset = read_dataset(cohort)
    for case_id in CASES:
        run_to_folder(case_inputs_from_dataset(dataset, case_id), out / case_id, RunOptions(models=models, threads=1))
    return out


def results_of(folder: Path) -> dict:
    """What a case's results say (not its timings): candidate table, patient result, GTV_LN voxels."""
    found = {}
    for case_id in CASES:
        case = folder / case_id
        gtv = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "gtv_ln.nii.gz")))
        found[case_id] = ((case / "candidates.csv").read_text(), (case / "candidates.json").read_text(),
                          (case / "patient.json").read_text(), gtv.tobytes())
    return found


def batch_args(cohort, out, models, *more):
    return ["run-batch", "--data", str(cohort), "--out", str(out), "--models", models_option(models), "--threads", "1",
            *more]


def test_sizing_follows_cores_and_memory():
    assert local_sizing(cores=16, memory_gb=64).workers == 16  # cores limit
    assert local_sizing(cores=16, memory_gb=10).workers == 3  # ~3 GB per case limits
    small = local_sizing(cores=2, memory_gb=2)
    assert small.workers == 1 and small.torch_threads == 2
    assert local_sizing(workers=2, cores=8, memory_gb=64).torch_threads == 4


@pytest.mark.slow
def test_local_cluster_matches_serial_then_skips_finished(cohort, models, serial, tmp_path, capsys):
    out = tmp_path / "dask"
    assert main(batch_args(cohort, out, models, "--workers", "2")) == 0
    printed = capsys.readouterr().out
    assert "Dask LocalCluster on 127.0.0.1: 2 worker process(es)" in printed
    assert "No Dask dashboard" not in printed and "bokeh" not in printed  # no line, no link to an empty page
    if importlib.util.find_spec("bokeh"):
        assert "Dask dashboard: http://127.0.0.1:" in printed
    else:
        assert "Dask dashboard" not in printed
    # stdout is not a terminal here (captured): one line per finished case with elapsed time and ETA
    lines = [line for line in printed.splitlines() if re.match(r"\[\d/4\] case00\d finished in \d+ s; ", line)]
    assert [line[:5] for line in lines] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"], printed
    assert all(re.search(r"elapsed \d+:\d\d:\d\d, ETA \d+:\d\d:\d\d$", line) for line in lines), lines
    assert lines[-1].endswith("ETA 0:00:00")
    summary = json.loads((out / "batch_summary.json").read_text())
    assert summary["finished"] == CASES and summary["failed"] == {}
    assert results_of(out) == results_of(serial)
    assert sorted(p.name for p in out.iterdir()) == sorted(CASES + ["batch_summary.json"])  # no temporaries left

    assert main(batch_args(cohort, out, models)) == 0
    assert "4 already finished (skipped), 0 to run" in capsys.readouterr().out


def ctrl_c_as_in_a_terminal() -> None:
    """A command started from a terminal has Ctrl-C's default action. A test suite started in the background of a
    script (`make test &`, nohup) ignores SIGINT, and a child inherits that (Python then installs no KeyboardInterrupt
    handler): the run-batch these tests start must see Ctrl-C as a user's would, wherever the suite runs."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture()
def external_cluster(tmp_path):
    """`dask scheduler` + 2 `dask worker` processes on 127.0.0.1, started as a user would (retry once on death)."""
    from distributed import Client

    dask = str(Path(sys.executable).parent / "dask")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "Testing")]),
           "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"}
    file = tmp_path / "scheduler.json"
    processes = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address",
                                   "127.0.0.1:0", "--scheduler-file", str(file)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        for name in ("w1", "w2"):
            processes.append(subprocess.Popen([dask, "worker", "--scheduler-file", str(file), "--host", "127.0.0.1",
                                               "--nthreads", "1", "--no-dashboard", "--name", name], env=env,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with Client(scheduler_file=str(file), timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
            yield client.scheduler.address
    finally:
        stop_processes(processes)


def kill_a_busy_worker(address: str, killed: list) -> None:
    """Wait until a worker is running a case, let it work a moment, then SIGKILL that worker process."""
    from distributed import Client

    with Client(address, timeout="30s") as watcher:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            busy = [worker for worker, keys in watcher.processing().items() if keys]
            if busy:
                time.sleep(1.0)
                pid = watcher.run(os.getpid, workers=[busy[0]])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.1)


@pytest.mark.slow
def test_external_scheduler_survives_a_killed_worker(cohort, models, serial, external_cluster, tmp_path, capsys):
    out = tmp_path / "external"
    killed = []
    killer = threading.Thread(target=kill_a_busy_worker, args=(external_cluster, killed))
    killer.start()
    code = main(batch_args(cohort, out, models, "--scheduler", external_cluster))
    killer.join()
    assert killed, "no worker was killed mid-case: the test did not test anything"
    assert code == 0, capsys.readouterr()
    summary = json.loads((out / "batch_summary.json").read_text())
    assert summary["finished"] == CASES and summary["failed"] == {}  # the killed worker's case was retried
    assert results_of(out) == results_of(serial)
    assert sorted(p.name for p in out.iterdir()) == sorted(CASES + ["batch_summary.json"])

    # a case whose worker dies every time is retried once, then recorded as failed (never lost silently)
    from distributed import Client

    from LNStagingLib.scaling.batch import run_cases
    from worker_killer import kill_my_worker

    with Client(external_cluster) as client:
        outcomes = run_cases(client, [("case000", None, tmp_path / "doomed", None)], tmp_path / "doomed",
                             task=kill_my_worker)
    assert len(outcomes) == 1 and outcomes[0][0] == "case000" and "died twice" in outcomes[0][1]


@pytest.mark.slow
def test_ctrl_c_with_a_scheduler_waits_for_and_counts_the_running_cases(cohort, models, external_cluster, tmp_path):
    """Someone else's workers cannot be stopped mid-case: the cases they are running when Ctrl-C comes finish and
    are counted in the summary; the others are cancelled and never start."""
    from distributed import Client

    out = tmp_path / "external_interrupted"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "LNStagingLib.cli",
                                *batch_args(cohort, out, models, "--scheduler", external_cluster)], env=env,
                               start_new_session=True, preexec_fn=ctrl_c_as_in_a_terminal, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(out.glob(".case*.partial-*")):
        time.sleep(0.1)
    assert list(out.glob(".case*.partial-*")), "no case started within 5 minutes"
    os.kill(process.pid, signal.SIGINT)  # run-batch only: the scheduler and workers are not its processes
    printed, _ = process.communicate(timeout=400)
    assert process.returncode == 130, printed
    assert "Interrupted:" in printed and "Traceback" not in printed, printed
    summary = json.loads((out / "batch_summary.json").read_text())
    with Client(external_cluster, timeout="30s") as client:  # let anything still running on the workers end
        deadline = time.monotonic() + 300
        while any(client.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.5)
    while list(out.glob(".case*.partial-*")) and time.monotonic() < deadline:
        time.sleep(0.5)  # a case cancelled while running goes on in its worker's thread until its folder is written
    complete = sorted(p.name for p in out.iterdir() if p.is_dir() and (p / "candidates.json").is_file())
    assert complete and complete == sorted(summary["finished"]), (complete, summary, printed)
    assert len(complete) < len(CASES), "every case finished: the interrupt cancelled nothing"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_slurm_job_script_renders_without_slurm(tmp_path, cohort):
    script = slurm_job_script(slurm_job_options(jobs=3, queue="gpu", memory="12GB", walltime="02:00:00", cores=4),
                              "tcp://10.1.2.3:8786")
    assert script.startswith("#!/usr/bin/env bash")
    for line in ("#SBATCH -p gpu", "#SBATCH -n 1", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=12G",
                 "#SBATCH -t 02:00:00", "#SBATCH -J lnstaging-batch"):
        assert line in script, line
    assert f"{sys.executable} -m distributed.cli.dask_worker tcp://10.1.2.3:8786" in script
    assert "--nthreads 1 " in script and "--memory-limit" in script

    if not __import__("shutil").which("sbatch"):
        assert main(["run-batch", "--data", str(cohort), "--out", str(tmp_path / "o"), "--models", "none",
                     "--cluster", "slurm", "--jobs", "2"]) == 2


@pytest.mark.slow
@pytest.mark.parametrize("sent, to_group, code, said", [
    (signal.SIGINT, True, 130, "Interrupted:"),  # Ctrl-C as a terminal sends it: to the whole process group
    (signal.SIGTERM, False, 143, "Terminated (SIGTERM):"),  # timeout, kill: run-batch alone
    (signal.SIGTERM, True, 143, "Terminated (SIGTERM):"),  # scancel: every process of the job, workers included
])
def test_ctrl_c_or_sigterm_cancels_and_leaves_no_partial_case_folder(cohort, models, tmp_path, sent, to_group, code,
                                                                     said):
    out = tmp_path / "interrupted"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "LNStagingLib.cli", *batch_args(cohort, out, models, "--workers",
                                                                                     "2")], env=env, start_new_session=True,
                               preexec_fn=ctrl_c_as_in_a_terminal, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(out.glob(".case*.partial-*")):
        time.sleep(0.1)  # wait until a case is being written
    assert list(out.glob(".case*.partial-*")), "no case started within 5 minutes"
    (os.killpg if to_group else os.kill)(process.pid, sent)
    printed, _ = process.communicate(timeout=120)
    assert process.returncode == code, printed
    assert said in printed and "no partial case folder left" in printed
    assert "Traceback" not in printed and " - ERROR - " not in printed and " - WARNING - " not in printed, printed
    left = [p.name for p in out.iterdir()]
    assert not [name for name in left if name.startswith(".")], left  # no temporaries
    summary = json.loads((out / "batch_summary.json").read_text())
    assert sorted(summary["finished"]) == sorted(n for n in left if n.startswith("case"))  # finished = complete
    for case_id in summary["finished"]:
        assert (out / case_id / "report.html").is_file()


@pytest.mark.parametrize("extra", [["--scheduler", "tcp://127.0.0.1:1", "--workers", "2"], ["--jobs", "3"],
                                   ["--cluster", "slurm", "--workers", "2"]])
def test_options_of_another_engine_are_refused(tmp_path, extra, capsys):
    assert main(["run-batch", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--models", "none", *extra]) == 2
    assert "lnstaging run-batch: error:" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
