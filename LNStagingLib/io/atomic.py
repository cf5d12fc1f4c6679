"""Write a folder or a file of outputs so that it is either complete or absent, and never destroys what was there.

Outputs go to a hidden sibling temporary folder (file); only when the block finishes without error is it moved into
place. A failed or cancelled run (including Ctrl-C) leaves nothing that looks like results; what a killed
run (kill -9) left under hidden names is tidied by the next write of the same output (recover_after_kill). Hidden names
carry the writer's PID and host (writer_tag): on a file system shared by several hosts (cluster runs) only this host's
dead writers are tidied, never another host's. An existing folder is
replaced only when the caller names the marker file that shows lnstaging wrote it (``replace_marker``), and never
when it is the working folder, home, '/', or holds a review (LNStagingLib/io/outputs.py checks it again at the swap,
since a review may have started while the run was working). When that second check fails (a review, or another run
into the same --out, arrived meanwhile) the results are kept beside under a unique visible name (keep_beside) and
the error says where. Temporaries are private (0700/0600) until the rename that makes them visible; they then get
the mode the user's umask gives (publish_mode), so a group-readable umask makes results group-readable.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import glob
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Iterator, Optional

from ..errors import OutputError


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def host_tag() -> str:
    """This host's short name, safe in a file name: the first label of the host name with anything but letters,
    digits and '_' made '_', at most 24 characters."""
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname().split(".")[0])[:24] or "host"


def writer_tag() -> str:
    """``<pid>.<host>``: the writer of a temporary name. A PID alone is not enough on a file system that several
    hosts share (cluster runs): two hosts can run writers with the same PID."""
    return f"{os.getpid()}.{host_tag()}"


def recover_after_kill(final: Path) -> None:
    """Tidy what a killed writer (kill -9, power loss) left beside ``final``: its unfinished temporary folders are
    removed, and a previous folder it had moved aside but not yet replaced is put back. Only leftovers of this host's
    processes that no longer run are touched (writer_tag is in the name); another host's are left alone, since
    whether their writer still runs cannot be checked from here. Names with a PID only (written before the host was
    added) count as this host's."""
    if not final.parent.is_dir():
        return
    for leftover in final.parent.glob(f".{glob.escape(final.name)}.*-*"):
        kind, _, rest = leftover.name[len(final.name) + 2:].partition("-")
        pid, _, host = rest.split("-")[0].partition(".")
        if kind not in ("partial", "old") or not pid.isdigit() or (host and host != host_tag()):
            continue
        if _pid_alive(int(pid)):
            continue
        if kind == "old" and not (final.exists() or final.is_symlink()):
            leftover.rename(final)
        elif leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def _is_empty_folder(path: Path) -> bool:
    """An empty folder (not a link). A folder that vanishes while it is read (another run moved it aside) counts as
    empty: nothing is there to keep."""
    try:
        return path.is_dir() and not path.is_symlink() and not any(path.iterdir())
    except FileNotFoundError:
        return True


def _check_target(final: Path, replace_marker: Optional[str]) -> None:
    """Refuse a ``final`` that may not be replaced. A refusal of a folder that was moved aside or replaced during the
    check (concurrent --overwrite runs swap their results in) is not kept: what is there now is checked again."""
    from .outputs import checked_while_stable

    checked_while_stable(final, lambda: _refuse_unreplaceable(final, replace_marker))


def _refuse_unreplaceable(final: Path, replace_marker: Optional[str]) -> None:
    from .outputs import check_replaceable

    if not (final.exists() or final.is_symlink()) or _is_empty_folder(final):
        return
    if not final.is_dir() or final.is_symlink():
        raise OutputError(f"{final} exists and is not a folder: give a new folder for the results.")
    if replace_marker is None:
        raise OutputError(f"{final} already exists: give a new folder, or pass --overwrite to replace results "
                          "lnstaging wrote there.")
    check_replaceable(final, replace_marker)


def current_umask() -> int:
    """The process's umask, read without changing it where Linux says it (/proc/self/status, Linux 4.7+); elsewhere
    set and put back at once."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def publish_mode(path: Path) -> None:
    """Give a private temporary (mkdtemp 0700, mkstemp 0600) the mode a folder or file made with the user's umask
    has, right before it is renamed into sight: colleagues in the group read a review when the umask lets them."""
    full = 0o777 if path.is_dir() else 0o666
    os.chmod(path, full & ~current_umask())


def keep_beside(tmp: Path, final: Path) -> Path:
    """Move the finished ``tmp`` to a new visible name beside ``final`` and return it: ``NAME_<date-time to the
    microsecond>`` plus ``-2``, ``-3``... when taken. The name is reserved with mkdir (atomic, fails if it exists:
    O_EXCL semantics), so concurrent runs into one folder never pick the same name, then ``tmp`` is renamed onto
    the empty reserved folder."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    for counter in range(1, 1000):
        kept = final.with_name(f"{final.name}_{stamp}" + (f"-{counter}" if counter > 1 else ""))
        try:
            os.mkdir(kept)
        except FileExistsError:
            continue
        try:
            os.rename(tmp, kept)
        except OSError:
            os.rmdir(kept)
            raise
        return kept
    raise OutputError(f"No free name beside {final} for the new results: they are in {tmp}; move them.")


_TAKEN = (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR)  # rename: another writer's output is there


def _move_into_place(tmp: Path, final: Path, replace_marker: Optional[str]) -> None:
    """Rename ``tmp`` onto ``final``, checking the target again each time: another run writing the same output at
    the same moment (concurrent runs into one --out) makes a rename fail, never lets one vanish into a hidden name.
    Raises OutputError (the caller keeps the results beside) when ``final`` may not be replaced."""
    for _ in range(10):
        _check_target(final, replace_marker)
        if not (final.exists() or final.is_symlink()) or _is_empty_folder(final):
            try:
                os.rename(tmp, final)
                return
            except OSError as error:
                if error.errno in _TAKEN:
                    continue  # another run's results arrived meanwhile: check again
                raise
        old = final.with_name(f".{final.name}.old-{writer_tag()}")
        try:
            final.rename(old)
        except FileNotFoundError:
            continue  # another run moved it aside meanwhile
        try:
            os.rename(tmp, final)
        except OSError as error:
            if error.errno not in _TAKEN:
                old.rename(final)
                raise
            shutil.rmtree(old, ignore_errors=True)  # another run's results replaced it, as ours would have
            continue
        shutil.rmtree(old, ignore_errors=True)
        return
    raise OutputError(f"{final} keeps changing while this run finishes: is another run writing the same output?")


@contextlib.contextmanager
def atomic_directory(final: os.PathLike | str, replace_marker: Optional[str] = None) -> Iterator[Path]:
    """Yield a temporary folder that becomes ``final`` on success.

    ``replace_marker``: None = ``final`` must not exist (or be an empty folder); a file name (e.g. 'provenance.json')
    = an existing folder holding that file, and no review, is replaced. Checked before and again after the work;
    when the check fails after the work (a review, or another run's results, appeared meanwhile), the results are
    kept beside under a unique name (keep_beside) and the error says where.
    """
    final = Path(final).absolute()
    recover_after_kill(final)
    _check_target(final, replace_marker)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-{writer_tag()}-", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    publish_mode(tmp)
    try:
        _move_into_place(tmp, final, replace_marker)
    except OutputError as error:  # something appeared while working (e.g. a review): keep both, lose nothing
        kept = keep_beside(tmp, final)
        raise OutputError(f"{error} The new results were kept in {kept}.") from None


@contextlib.contextmanager
def atomic_file(final: os.PathLike | str) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` only on success.

    The caller decides whether an existing ``final`` may be replaced (LNStagingLib/io/outputs.check_output)."""
    final = Path(final).absolute()
    final.parent.mkdir(parents=True, exist_ok=True)
    recover_after_kill(final)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.partial-{writer_tag()}-", dir=final.parent,
                                suffix="".join(final.suffixes))
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    publish_mode(tmp)
    os.replace(tmp, final)
