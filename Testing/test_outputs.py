"""The output rule at work (LNStagingLib/io/outputs.py, io/atomic.py): what --overwrite may replace, a review that
appears during a run, a full or read-only disk found before the work, errors while writing, and kill -9 while saving.
The refusals themselves are the table of Testing/test_reliability.py."""

import errno
import json
import os
import re
import shutil
import signal
import stat
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


# ---- concurrent runs into one --out, and the umask (issue 25 items 9 and 10) ------------------------------------

STS = ROOT / "Testing" / "Data" / "ibsi_validation_sts" / "nifti" / "STS_001"  # a real PET/CT pair (CC BY 3.0)

# The run, held after writing its results until all N runs have: the N swaps then happen within milliseconds of each
# other (without the barrier the runs finish seconds apart on a loaded machine and never race).
BARRIER_RUN = """
import os, pathlib, sys, time
from LNStagingLib.results import Results
write = Results.write
def write_then_wait(self, folder):
    write(self, folder)
    barrier = pathlib.Path(os.environ["BARRIER"])
    (barrier / str(os.getpid())).touch()
    deadline = time.time() + 600
    while len(list(barrier.iterdir())) < int(os.environ["RUNS"]) and time.time() < deadline:
        time.sleep(0.002)
Results.write = write_then_wait
from LNStagingLib.cli import main
sys.exit(main(sys.argv[1:]))
"""


def real_run_argv(out, *extra):
    return ["run", "--ct", str(STS / "CT_image.nii.gz"), "--pet", str(STS / "PET_image.nii.gz"), "--models", "none",
            "--out", str(out), *extra]


def concurrent_runs(tmp_path, out, n, *extra, umask=0o022):
    barrier = tmp_path / f"barrier{len(list(tmp_path.glob('barrier*')))}"
    barrier.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), BARRIER=str(barrier), RUNS=str(n))
    procs = [subprocess.Popen([sys.executable, "-c", BARRIER_RUN, *real_run_argv(out, *extra)], cwd=tmp_path,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: os.umask(umask)) for _ in range(n)]
    results = [(p.wait(timeout=900), *p.communicate()) for p in procs]
    shutil.rmtree(barrier)
    return results


def modes(folder: Path) -> dict:
    return {str(p.relative_to(folder.parent)): stat.S_IMODE(p.stat().st_mode) for p in [folder, *folder.rglob("*")]}


@pytest.mark.slow
def test_five_concurrent_runs_into_one_out_all_end_visible_and_reported(tmp_path):
    """Five real runs finishing at the same instant into one --out: one result is --out, the four others are kept
    beside under distinct names that their one-line errors name; nothing is left hidden (a hidden .partial folder
    is deleted by the next --overwrite). Made under umask 022, every folder and file is group/other readable."""
    inputs = files(STS)
    out = tmp_path / "results"
    results = concurrent_runs(tmp_path, out, 5)
    assert sorted(code for code, _, _ in results) == [0, 2, 2, 2, 2], [err for _, _, err in results]
    kept = []
    for code, stdout, stderr in results:
        assert "Traceback" not in stderr
        if code == 2:
            lines = [line for line in stderr.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("lnstaging run: error: ") and "already exists" in lines[0]
            kept.append(Path(re.search(r"The new results were kept in (\S+)\.$", lines[0]).group(1)))
        else:
            assert f"Report: {out / 'report.html'}" in stdout
    assert len(set(kept)) == 4 and all(k.parent == tmp_path and k.name.startswith("results_") for k in kept)
    visible = sorted(p.name for p in tmp_path.iterdir())
    assert visible == sorted(["results", *(k.name for k in kept)]), visible  # nothing hidden left
    candidates = json.loads((out / "candidates.json").read_text())["candidates"]
    for folder in (out, *kept):
        assert json.loads((folder / "candidates.json").read_text())["candidates"] == candidates  # complete
        for path, mode in modes(folder).items():
            assert mode == (0o755 if (tmp_path / path).is_dir() else 0o644), (path, oct(mode))
    assert files(STS) == inputs
    # the same five with --overwrite: each replaces what it finds, the last one stays; none is left hidden
    results = concurrent_runs(tmp_path, out, 5, "--overwrite")
    assert [code for code, _, _ in results] == [0] * 5, [err for _, _, err in results]
    assert sorted(p.name for p in tmp_path.iterdir()) == visible
    assert json.loads((out / "candidates.json").read_text())["candidates"] == candidates
    assert files(STS) == inputs


def test_kept_beside_names_are_unique_within_one_microsecond(tmp_path, monkeypatch):
    """Two results kept beside at the same clock reading get distinct names (a counter), each reserved with mkdir
    (O_EXCL semantics) before the rename: a name is never shared and a folder never vanishes."""
    import datetime as dt
    import types

    from LNStagingLib.io import atomic

    frozen = dt.datetime(2026, 12, 7, 10, 0, 0, 123456)
    clock = types.SimpleNamespace(datetime=types.SimpleNamespace(now=lambda: frozen))
    monkeypatch.setattr(atomic, "datetime", clock)  # atomic's clock only
    final = tmp_path / "results"
    names = []
    for k in range(3):
        tmp = tmp_path / f".results.partial-{k}"
        tmp.mkdir()
        (tmp / "candidates.json").write_text(str(k))
        names.append(atomic.keep_beside(tmp, final).name)
    assert names == ["results_20261207-100000-123456", "results_20261207-100000-123456-2",
                     "results_20261207-100000-123456-3"]
    assert [(tmp_path / n / "candidates.json").read_text() for n in names] == ["0", "1", "2"]


@pytest.mark.parametrize("umask, folder_mode, file_mode", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640),
                                                           (0o077, 0o700, 0o600)])
def test_outputs_follow_the_umask(tmp_path, umask, folder_mode, file_mode):
    """Temporaries are private (mkdtemp 0700, mkstemp 0600) until the rename that makes them visible; then a folder
    or file has the mode the umask gives, as if made by mkdir/open. Written from a real CT."""
    import SimpleITK as sitk

    from LNStagingLib.io import atomic

    inputs = files(STS)
    ct = sitk.ReadImage(str(STS / "CT_image.nii.gz"))
    before = os.umask(umask)
    try:
        assert atomic.current_umask() == umask
        with atomic.atomic_directory(tmp_path / "results") as tmp:
            assert stat.S_IMODE(tmp.stat().st_mode) == 0o700  # private while being written
            sitk.WriteImage(ct[:, :, :2], str(tmp / "ct.nii.gz"))
            (tmp / "sub").mkdir()
        with atomic.atomic_file(tmp_path / "results" / "sub" / "review.json") as tmp:
            assert stat.S_IMODE(tmp.stat().st_mode) == 0o600
            tmp.write_text("{}")
    finally:
        os.umask(before)
    assert modes(tmp_path / "results") == {"results": folder_mode, "results/ct.nii.gz": file_mode,
                                           "results/sub": folder_mode, "results/sub/review.json": file_mode}
    assert files(STS) == inputs


def test_outputs_never_write_through_a_link(tmp_path):
    """Issue 25 item 8, outside the lock: temporaries are new files made with O_EXCL|O_NOFOLLOW (mkstemp, mkdtemp),
    and the final rename replaces a symbolic link planted at the output's name instead of writing into its target."""
    from LNStagingLib.io import atomic

    victim = tmp_path / "victim.json"
    victim.write_bytes((STS.parent.parent / "README.md").read_bytes())  # someone else's file (a real README)
    before = victim.read_bytes()
    (tmp_path / "out").mkdir()
    planted = tmp_path / "out" / "review.json"
    planted.symlink_to(victim)
    with atomic.atomic_file(planted) as tmp:
        assert not tmp.is_symlink() and tmp.stat().st_nlink == 1
        tmp.write_text('{"decisions": {}}')
    assert not planted.is_symlink() and planted.read_text() == '{"decisions": {}}'
    assert victim.read_bytes() == before


def test_a_folder_moved_aside_by_another_run_during_the_check_is_not_refused(tmp_path, monkeypatch):
    """Concurrent --overwrite runs: between the check's "it exists" and its look for provenance.json, another run may
    rename the folder aside (to swap in its own results). Nothing is there any more, so nothing is refused; a folder
    that stays without the marker is still refused."""
    from LNStagingLib.errors import OutputError
    from LNStagingLib.io import atomic

    final = tmp_path / "results"
    final.mkdir()
    (final / "provenance.json").write_text("{}")
    real_is_empty = atomic._is_empty_folder

    def moved_aside_meanwhile(path):
        empty = real_is_empty(path)
        if path == final and final.exists():
            final.rename(tmp_path / ".results.old-other")  # the other run's swap
        return empty

    monkeypatch.setattr(atomic, "_is_empty_folder", moved_aside_meanwhile)
    atomic._check_target(final, "provenance.json")  # no error: the folder is gone, not foreign
    monkeypatch.setattr(atomic, "_is_empty_folder", real_is_empty)
    final.mkdir()
    (final / "notes.txt").write_text("not lnstaging's")
    with pytest.raises(OutputError, match="not a folder lnstaging wrote"):
        atomic._check_target(final, "provenance.json")


def test_the_check_before_the_work_follows_a_folder_another_run_swaps(tmp_path, monkeypatch):
    """Five concurrent --overwrite runs (CI, load 1.5): one run's check before the work found --out, then another run
    moved it aside to swap in its own results, and the check's listing failed with "No such file or directory" (exit
    2). Now a folder moved aside or replaced during the check is checked again as it is now: gone or another run's
    results pass, a folder holding a review that took its place is still refused."""
    from LNStagingLib.io import outputs

    out = tmp_path / "results"
    real_refuse_review = outputs.refuse_review

    def results_folder(path, review=False):
        path.mkdir()
        (path / "provenance.json").write_text("{}")
        if review:
            (path / "review").mkdir()

    def swapped_meanwhile(replacement):
        def refuse_review(folder, option):
            real_refuse_review(folder, option)
            if folder == out and not (tmp_path / ".results.old-other").exists():
                out.rename(tmp_path / ".results.old-other")  # the other run's swap...
                if replacement:
                    results_folder(out, review=replacement == "review")  # ...and what it put there
        return refuse_review

    for replacement in (None, "results"):
        shutil.rmtree(tmp_path / ".results.old-other", ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        results_folder(out)
        monkeypatch.setattr(outputs, "refuse_review", swapped_meanwhile(replacement))
        assert outputs.check_output(out, overwrite=True, marker="provenance.json") == out
    shutil.rmtree(tmp_path / ".results.old-other")
    shutil.rmtree(out)
    results_folder(out)
    monkeypatch.setattr(outputs, "refuse_review", swapped_meanwhile("review"))
    with pytest.raises(OutputError, match="holds a review"):
        outputs.check_output(out, overwrite=True, marker="provenance.json")


def test_a_folder_that_vanishes_while_it_is_listed_counts_as_empty(tmp_path, monkeypatch):
    """At the swap, "is --out an empty folder?" lists it; another run may rename it away between is_dir and the
    listing. Nothing is there to keep, so the rename of the new results is tried (and checked again if it fails)."""
    from LNStagingLib.io import atomic

    final = tmp_path / "results"
    final.mkdir()
    (final / "provenance.json").write_text("{}")

    def vanished(self):
        raise FileNotFoundError(2, "No such file or directory", str(self))

    assert not atomic._is_empty_folder(final)
    monkeypatch.setattr(Path, "iterdir", vanished)
    assert atomic._is_empty_folder(final)
