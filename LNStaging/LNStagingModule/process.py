"""The inference child process: command line, progress parsed from its output, cancel that kills the tree.

Pure Python (subprocess + a reader thread), so Slicer polls it from a QTimer and pytest can test it for real.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Optional, Sequence

# --progress-lines output of the CLI: "PROGRESS 0.4200 <message>"; or a tqdm bar "<desc>  42% |####   | <message>"
_LINE = re.compile(r"^PROGRESS\s+(?P<fraction>[0-9.]+)\s?(?P<message>.*)$")
_TQDM = re.compile(r"(?P<percent>\d{1,3})%\s*\|[^|]*\|\s*(?P<message>.*)$")
_CLI_ERROR = re.compile(r"^lnstaging [\w-]+: (error: )?(?P<message>.+)$")



def library_dir() -> Path:
    """The folder holding LNStagingLib: beside the module when installed, the repository root in a source tree."""
    here = Path(__file__).resolve()
    for folder in (here.parents[1], here.parents[2]):
        if (folder / "LNStagingLib" / "__init__.py").is_file():
            return folder
    return here.parents[1]


LIBRARY_DIR = library_dir()


def run_argv(python: str, out_dir: Path | str, ct: Optional[Path | str], pet: Path | str,
             organs: Optional[Path | str] = None, tumor: Optional[Path | str] = None,
             models: str = "default", device: str = "cpu", organ_mapping: Optional[str] = None) -> list[str]:
    """``PythonSlicer -m LNStagingLib.cli run ...`` for one case, with machine-readable progress lines.

    ``models`` is the CLI's --models spec ('default' or stage=ID[,...]); ``organ_mapping`` e.g. 'slicer' for a
    .seg.nrrd whose segment names say which organ is which. ``--overwrite``: the module reuses its results folder
    (one lnstaging wrote); the output rule still refuses a folder holding a review or an input. ``ct`` None: a
    PET-only run (no --ct; docs/CANDIDATES.md "PET-only runs").
    """
    argv = [python, "-m", "LNStagingLib.cli", "run", "--pet", str(pet), "--out", str(out_dir),
            "--device", device, "--models", models or "default", "--progress-lines", "--overwrite"]
    for flag, value in (("--ct", ct), ("--organs", organs), ("--organ-mapping", organ_mapping if organs else None), ("--tumor", tumor)):
        if value:
            argv += [flag, str(value)]
    return argv


def phantom_argv(python: str, out_dir: Path | str, seed: int = 1, cases: int = 1) -> list[str]:
    """A small synthetic PET/CT patient in the dataset format (docs/DATASET.md), for the self-test."""
    return [python, "-m", "LNStagingLib.cli", "phantom", "--seed", str(seed), "--cases", str(cases), "--size", "small",
            "--out", str(out_dir)]


def child_environment(base: Optional[dict] = None) -> dict:
    """The caller's environment with LNStagingLib importable and output unbuffered."""
    env = dict(os.environ if base is None else base)
    paths = [str(LIBRARY_DIR)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def parse_progress(line: str) -> Optional[tuple[float, str]]:
    """(fraction, message) from a progress line of the CLI, or None."""
    match = _LINE.match(line.strip())
    if match:
        try:
            return min(max(float(match["fraction"]), 0.0), 1.0), match["message"].strip()
        except ValueError:
            return None
    match = _TQDM.search(line.strip())
    if not match:
        return None
    return min(int(match["percent"]), 100) / 100.0, match["message"].strip()


def failure_message(output: str, returncode: int) -> str:
    """One sentence a user can act on, from the child's output and exit code."""
    text = output.lower()
    if "out of memory" in text or "outofmemoryerror" in text:
        return "The GPU ran out of memory: choose CPU, or close other programs that use the GPU, then run again."
    if ("no cuda gpus are available" in text or "torch not compiled with cuda" in text
            or "found no nvidia driver" in text or "cuda driver" in text and "error" in text):
        return "No usable GPU was found: choose CPU (slower) or install the NVIDIA driver and a CUDA build of PyTorch."
    if returncode in (130, -signal.SIGTERM, -signal.SIGKILL if hasattr(signal, "SIGKILL") else -9):
        return "Cancelled; no results were written."
    for line in reversed(output.splitlines()):
        match = _CLI_ERROR.match(line.strip())
        if match:
            return match["message"]
    tail = [line for line in output.splitlines() if line.strip()][-1:] or ["no output"]
    return f"The analysis stopped with exit code {returncode} ({tail[0][:200]}); see the log for details."


class ChildProcess:
    """A child process in its own process group; ``poll`` returns new output lines without blocking."""

    def __init__(self, argv: Sequence[str], env: Optional[dict] = None, cwd: Optional[str] = None):
        kwargs = {}
        if sys.platform == "win32":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
            kwargs["startupinfo"] = hidden_window_startupinfo()
        else:
            kwargs["start_new_session"] = True  # its own group: cancel reaches grandchildren too
        self.process = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                        cwd=cwd, **kwargs)
        self.output: list[str] = []
        self._lines: "queue.Queue[str]" = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.cancelled = False

    def _read(self) -> None:
        buffer = b""
        while True:
            chunk = self.process.stdout.read1(4096) if hasattr(self.process.stdout, "read1") else self.process.stdout.read(1)
            if not chunk:
                break
            buffer += chunk
            parts = re.split(rb"[\r\n]", buffer)  # tqdm redraws with \r
            buffer = parts.pop()
            for part in parts:
                if part.strip():
                    self._lines.put(part.decode("utf-8", "replace"))
        if buffer.strip():
            self._lines.put(buffer.decode("utf-8", "replace"))

    def poll(self) -> list[str]:
        lines = []
        while True:
            try:
                lines.append(self._lines.get_nowait())
            except queue.Empty:
                break
        self.output += lines
        return lines

    @property
    def returncode(self) -> Optional[int]:
        code = self.process.poll()
        if code is not None and self._reader.is_alive():
            return None  # exited, but output is still being drained
        return code

    def wait(self, timeout: Optional[float] = None) -> int:
        self.process.wait(timeout)
        self._reader.join(timeout)
        self.poll()
        return self.process.returncode

    def cancel(self, wait: bool = True) -> None:
        """Kill the child and everything it started. ``wait=False`` (the GUI's Cancel) only asks it to stop and
        returns at once; ``kill()`` then ends what is still running (the panel's timer calls it after 5 s)."""
        self.cancelled = True
        if self.process.poll() is not None:
            return
        if sys.platform == "win32":
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(self.process.pid)], capture_output=True,
                           startupinfo=hidden_window_startupinfo())
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        if wait:
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL the child's process group (it did not stop after cancel)."""
        if sys.platform != "win32" and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def hidden_window_startupinfo():
    """Windows: no console window for the child (what slicer.util.launchConsoleProcess does at v5.10.0 and v5.12.3:
    STARTUPINFO with dwFlags STARTF_USESHOWWINDOW and wShowWindow SW_HIDE). Closing such a window would kill the run."""
    info = subprocess.STARTUPINFO()
    info.dwFlags |= subprocess.STARTF_USESHOWWINDOW
    info.wShowWindow = 0  # SW_HIDE
    return info
