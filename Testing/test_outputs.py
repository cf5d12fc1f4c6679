"""The output rule at work (LNStagingLib/io/outputs.py, io/atomic.py): what --overwrite may replace, a review that
appears during a run, a full or read-only disk found before the work, errors while writing, and kill -9 while saving.
The refusals themselves are the table of Testing/test_reliability.py."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from LNStagingLib.cli import main
from LNStagingLib.errors import OutputError
from LNStagingLib.io.atomic import atomic_directory
from LNStagingLib.phantom.cohort import write_cohort

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("outputs") / "cohort", seed=5, cases=2, size="48x48x32", folds=1,
                        test_fraction=0.5)


def run_argv(cohort, out, *extra):
    case = cohort / "cases" / "case000"
    return ["run", "--ct", str(case / "ct.nii.gz"), "--pet", str(case / "pet.nii.gz"), "--models", "none",
            "--out", str(out), *extra]


def files(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_overwrite_replaces_results_lnstaging_wrote_and_nothing_else(cohort, tmp_path, capsys):
    out = tmp_path / "results"
    assert main(run_argv(cohort, out)) == 0
    assert main(run_argv(cohort, out)) == 2
    assert "already exists" in capsys.readouterr().err
    (out / "stale.txt").write_text("from the first run")
    assert main(run_argv(cohort, out, "--overwrite")) == 0
    assert not (out / "stale.txt").exists() and (out / "candidates.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # no temporary or old folder left


def test_a_review_started_during_the_run_is_kept(tmp_path):
    final = tmp_path / "results"
    final.mkdir()
    (final / "provenance.json").write_text("{}")
    with pytest.raises(OutputError, match="holds a review.*kept in"):
        with atomic_directory(final, replace_marker="provenance.json") as tmp:
            (tmp / "candidates.json").write_text("new")
            (final / "review").mkdir()  # the review server saved a decision meanwhile
            (final / "review" / "review.json").write_text('{"decisions": {"1": "accepted"}}')
    assert (final / "review" / "review.json").is_file() and (final / "provenance.json").is_file()
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("results_")]
    assert len(kept) == 1 and (kept[0] / "candidates.json").read_text() == "new"


def test_atomic_directory_refuses_before_the_work(tmp_path):
    final = tmp_path / "mine"
    final.mkdir()
    (final / "letter.txt").write_text("keep me")
    worked = []
    with pytest.raises(OutputError, match="already exists"):
        with atomic_directory(final):
            worked.append(True)
    with pytest.raises(OutputError, match="not a folder lnstaging wrote"):
        with atomic_directory(final, replace_marker="provenance.json"):
            worked.append(True)
    assert worked == [] and files(final) == {"letter.txt": b"keep me"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_batch_overwrite_keeps_reviewed_cases(cohort, tmp_path, capsys):
    out = tmp_path / "batch"
    assert main(["run-batch", "--data", str(cohort), "--out", str(out), "--models", "none"]) == 0
    review = out / "case000" / "review" / "review.json"
    review.parent.mkdir()
    review.write_text('{"decisions": {"1": "rejected"}}')
    kept = files(out / "case000")
    other = (out / "case001" / "provenance.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["run-batch", "--data", str(cohort), "--out", str(out), "--models", "none", "--overwrite"]) == 0
    assert "Kept (they hold a review): case000" in capsys.readouterr().out
    assert files(out / "case000") == kept
    assert (out / "case001" / "provenance.json").stat().st_mtime_ns != other
    summary = json.loads((out / "batch_summary.json").read_text())
    assert summary["finished"] == ["case000", "case001"] and not list(out.glob(".batch_summary*"))


def test_full_disk_is_found_before_the_work(cohort, tmp_path, monkeypatch, capsys):
    import shutil

    from LNStagingLib.io import outputs

    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    started = []
    monkeypatch.setattr("LNStagingLib.pipeline.run_case", lambda *a, **k: started.append(1))
    assert main(run_argv(cohort, tmp_path / "r")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "MB free" in err and started == []
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder_is_found_before_the_work(cohort, tmp_path, monkeypatch, capsys):
    from LNStagingLib.io import outputs

    # root ignores permission bits, so the answer of access(2) for a read-only mount is simulated
    monkeypatch.setattr(outputs.os, "access", lambda path, mode: False)
    assert main(run_argv(cohort, tmp_path / "r")) == 2
    assert "cannot be written" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("failure,code,words", [
    (OSError(errno.ENOSPC, "No space left on device", "gtv_ln.nii.gz"), 2, "No space left on device (gtv_ln.nii.gz)"),
    (OSError(errno.EROFS, "Read-only file system", "report.html"), 2, "writable disk"),
    (MemoryError(), 1, "out of memory"),
])
def test_failures_while_writing_are_one_line_and_leave_nothing(cohort, tmp_path, monkeypatch, capsys, failure, code,
                                                               words):
    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr("LNStagingLib.results.Results.write", fail)
    assert main(run_argv(cohort, tmp_path / "r")) == code
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and words in err and "Traceback" not in err + captured.out
    assert list(tmp_path.iterdir()) == []


# The run with every folder rename of the results swap delayed by 2 s, so that a kill sent after the first result
# file appears lands while saving on any machine (without the delay a fast machine finishes the swap first).
SLOW_SWAP_RUN = """
import pathlib, sys, time
rename = pathlib.Path.rename
def slow_rename(self, target):
    time.sleep(2)
    return rename(self, target)
pathlib.Path.rename = slow_rename
from LNStagingLib.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_kill_9_while_replacing_results_leaves_every_file_readable(cohort, tmp_path):
    """SIGKILL as soon as the new results start being written: the old results stay complete and readable, the
    inputs are untouched; a later run with --overwrite cleans up and succeeds."""
    out = tmp_path / "results"
    assert main(run_argv(cohort, out)) == 0
    old = files(out)
    first_candidates = json.loads((out / "candidates.json").read_text())["candidates"]
    inputs = files(cohort)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for delay in (0.0, 0.05, 0.2):
        proc = subprocess.Popen([sys.executable, "-c", SLOW_SWAP_RUN, *run_argv(cohort, out, "--overwrite")],
                                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and not list(tmp_path.glob(".results.partial-*/*")):
            time.sleep(0.01)
        time.sleep(delay)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # the run finished within the delay: its folder must then be complete
            pass
        proc.wait()
        assert files(cohort) == inputs
        if (out / "candidates.json").is_file():  # killed before or after the swap: a complete folder either way
            for name in ("candidates.json", "provenance.json", "patient.json"):
                json.loads((out / name).read_text())
            assert set(files(out)) == set(old)
        else:  # killed between the two renames: the previous results are complete under their hidden name
            hidden = list(tmp_path.glob(".results.old-*"))
            assert hidden and set(files(hidden[0])) == set(old)
        if delay == 0.0:
            assert list(tmp_path.glob(".results.partial-*")), "the kill did not happen while saving"
    assert main(run_argv(cohort, out, "--overwrite")) == 0
    assert json.loads((out / "candidates.json").read_text())["candidates"] == first_candidates
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # the killed runs' leftovers were tidied


@pytest.mark.parametrize("text", ["", "{not json", "[1, 2]", '{"decisions": "all accepted"}'])
def test_empty_or_corrupt_review_json_is_one_line(tmp_path, text):
    from LNStagingLib.errors import InputFileError
    from LNStagingLib.scene.review_state import read_decisions

    (tmp_path / "review.json").write_text(text)
    with pytest.raises(InputFileError, match="review") as caught:
        read_decisions(tmp_path)
    assert "\n" not in str(caught.value)
    assert (tmp_path / "review.json").read_text() == text  # left as it was


def test_run_out_dot_in_the_case_folder_exits_2_in_a_real_process(cohort, tmp_path):
    """Issue 12's first reproduction as a user types it: the process exits 2 with one line; the case is untouched."""
    import shutil

    case = tmp_path / "case"
    shutil.copytree(cohort / "cases" / "case000", case)
    before = files(case)
    result = subprocess.run([sys.executable, "-m", "LNStagingLib.cli", "run", "--ct", "ct.nii.gz", "--pet", "pet.nii.gz",
                             "--models", "none", "--out", ".", "--overwrite"], cwd=case, capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "is the current working folder" in result.stderr
    assert files(case) == before and sorted(p.name for p in tmp_path.iterdir()) == ["case"]
