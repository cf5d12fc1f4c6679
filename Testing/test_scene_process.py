"""The inference child process, for real (no Slicer needed): progress from tqdm lines, cancel kills the whole
process tree, failures become one sentence a user can act on."""

import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "LNStaging"))
from LNStagingModule import process  # noqa: E402
from waiting import wait_for  # noqa: E402


def test_parse_progress_reads_the_cli_tqdm_bar():
    assert process.parse_progress("run  42% |####      | stage 2: classifying") == (0.42, "stage 2: classifying")
    assert process.parse_progress("run 100% |##########| done") == (1.0, "done")
    assert process.parse_progress("PROGRESS 0.2500 stage 1: segmenting") == (0.25, "stage 1: segmenting")
    assert process.parse_progress("WARNING something") is None



def test_the_library_bars_are_what_the_module_parses_and_a_block_bar_closes_on_error(capsys):
    from LNStagingLib.progress import tqdm_bar, tqdm_progress

    tqdm_progress("priors fit").step(0.25, "fitting")
    with pytest.raises(RuntimeError, match="boom"):
        with tqdm_bar("export rtstruct", leave=False) as progress:
            progress.step(0.5, "writing contours")
            raise RuntimeError("boom")
    err = capsys.readouterr().err
    parsed = [process.parse_progress(line) for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert any(p and p[0] == 0.25 and p[1].endswith("fitting") for p in parsed), err
    assert any(p and p[0] == 0.5 and p[1].endswith("writing contours") for p in parsed), err
    assert err.endswith("\r") and not err.split("\r")[-2].strip()  # the export bar was closed and cleared

def test_failure_messages():
    assert "GPU ran out of memory" in process.failure_message("torch.OutOfMemoryError: CUDA out of memory.", 1)
    assert "No usable GPU" in process.failure_message("RuntimeError: No CUDA GPUs are available", 1)
    assert process.failure_message("lnstaging run: error: PET and CT do not overlap: register them first.", 2) == \
        "PET and CT do not overlap: register them first."
    assert "exit code 3" in process.failure_message("boom", 3)


def test_run_argv_and_environment():
    argv = process.run_argv("PythonSlicer", "/o", "/ct.nrrd", "/pet.nrrd", models="cls=demo", device="cuda",
                            organ_mapping="slicer")
    assert argv[:4] == ["PythonSlicer", "-m", "LNStagingLib.cli", "run"]
    assert argv[argv.index("--pet") + 1] == "/pet.nrrd" and "--organs" not in argv and "--organ-mapping" not in argv
    assert "--progress-lines" in argv and argv[argv.index("--models") + 1] == "cls=demo"
    with_organs = process.run_argv("PythonSlicer", "/o", "/ct", "/pet", organs="/organs.seg.nrrd", tumor="/t.nrrd",
                                   organ_mapping="slicer")
    assert with_organs[with_organs.index("--organ-mapping") + 1] == "slicer" and "--tumor" in with_organs
    env = process.child_environment({"PYTHONPATH": "/x"})
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(process.LIBRARY_DIR)
    assert (process.LIBRARY_DIR / "LNStagingLib").is_dir()


def test_child_process_streams_progress_and_exit_code():
    script = textwrap.dedent("""
        import sys, time
        for i in (10, 50, 100):
            sys.stderr.write(f"\\rrun {i:3d}% |###| step {i}"); sys.stderr.flush(); time.sleep(0.05)
        print("\\nwrote results")
        sys.exit(0)
    """)
    child = process.ChildProcess([sys.executable, "-c", script])
    assert child.wait(30) == 0
    fractions = [p[0] for p in map(process.parse_progress, child.output) if p]
    assert fractions == [0.1, 0.5, 1.0]
    assert "wrote results" in child.output


def test_cancel_kills_the_process_tree(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    script = textwrap.dedent(f"""
        import subprocess, sys, time
        g = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pid_file)!r}, "w").write(str(g.pid))
        print("started", flush=True)
        time.sleep(60)
    """)
    child = process.ChildProcess([sys.executable, "-c", script], env=process.child_environment())
    assert wait_for(lambda: pid_file.is_file() and pid_file.read_text(), what="the grandchild pid", interval=0.05)
    grandchild = int(pid_file.read_text())
    child.cancel()
    assert child.wait(10) in (-signal.SIGTERM, -signal.SIGKILL)
    assert child.cancelled

    def gone():
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            return True
        # a zombie reparented to init still answers kill(0); check its state
        try:
            return Path(f"/proc/{grandchild}/stat").read_text().split()[2] == "Z"
        except FileNotFoundError:
            return True

    assert wait_for(gone, 10, what="the grandchild to exit after cancel", interval=0.05)
    assert "Cancelled" in process.failure_message("\n".join(child.output), 130)


def test_run_argv_is_accepted_by_the_library_cli():
    """The flags the module passes are the flags `lnstaging run` defines (parsed, not run)."""
    from LNStagingLib.cli import build_parser

    argv = process.run_argv("PythonSlicer", "/o", "/ct.nrrd", "/pet.nrrd", organs="/o.seg.nrrd", tumor="/t.nrrd",
                            models="default", device="cpu", organ_mapping="slicer")
    args = build_parser().parse_args(argv[3:])
    assert args.command == "run" and str(args.tumor) == "/t.nrrd" and args.organ_mapping == "slicer"
    assert args.progress_lines
    assert str(args.ct) == "/ct.nrrd"
    pet_only = build_parser().parse_args(process.run_argv("PythonSlicer", "/o", None, "/pet.nrrd")[3:])
    assert pet_only.ct is None and str(pet_only.pet) == "/pet.nrrd"  # no CT selected: `lnstaging run` without --ct
    phantom = build_parser().parse_args(process.phantom_argv("PythonSlicer", "/p")[3:])
    assert phantom.command == "phantom" and phantom.cases == 1


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")
def test_library_cli_runs_in_the_child_environment():
    child = process.ChildProcess([sys.executable, "-m", "LNStagingLib.cli", "--version"],
                                 env=process.child_environment(), cwd="/")
    assert child.wait(60) == 0
    assert any(line.startswith("lnstaging ") for line in child.output)
