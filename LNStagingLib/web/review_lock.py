"""One review server per results folder: a lock file, and the cleaning of what a killed server left behind.

Two servers on one folder each save their own state over the other's (the last writer wins: decisions are lost).
``ReviewLock.acquire`` creates ``CASE/.lnstaging-review.lock`` holding the owner's PID, host, start time and
command, and holds an exclusive ``flock`` on it while the server runs. The file is opened without following a link
(O_NOFOLLOW, and O_EXCL when it is new): a symbolic link, a hard link or a special file under that name is refused
in one line and the file it points to is never truncated. A second server finds the flock taken and
stops with one line naming the owner. A lock whose owner was killed (kill -9, power cut) has no flock any more: it is
taken over, saying so. A lock written on another host (a shared network folder) is never taken over automatically,
since its owner's liveness cannot be checked from here: the message says how to remove it. ``release`` removes the
file; it runs on a normal exit, Ctrl-C and SIGTERM.

``clean_stale_temporaries`` then removes the temporary files a killed save left beside and inside CASE/review/
(``.review.partial-*``, ``.node-*``, ``.tables-*``, ``review/.*.partial-*``) and puts back a review folder that a
kill left renamed to ``.review.old-*``: it is called only by the lock's owner, so no live save is disturbed.
"""

from __future__ import annotations

import datetime
import errno
import json
import logging
import os
import shutil
import socket
import stat
import sys
from pathlib import Path
from typing import Optional

from ..errors import LNStagingError

try:
    import fcntl
except ImportError:  # Windows: no flock; an existing lock is then never taken over automatically
    fcntl = None

LOCK_NAME = ".lnstaging-review.lock"
MAX_LOCK_BYTES = 4096  # the owner's JSON line is about 150 bytes
REVIEW_SUBDIR = "review"

log = logging.getLogger(__name__)


class ReviewLockedError(LNStagingError):
    """Another review server owns this results folder."""


def _owner_text(owner: dict) -> str:
    return (f"PID {owner.get('pid', '?')} on host {owner.get('host', '?')}, started {owner.get('started', '?')}")


def _read_owner_fd(fd: int) -> dict:
    """The owner recorded in an open lock file (read through the descriptor, never through a path: no link)."""
    try:
        owner = json.loads(os.pread(fd, MAX_LOCK_BYTES, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _not_a_plain_file(path: Path, what: str) -> LNStagingError:
    return LNStagingError(f"The review lock {path} is {what}, not a plain file: a lock is never written through it "
                          f"(that would overwrite another file); delete {path} (only the link or entry itself) and "
                          "start again.")


def _open_lock_file(path: Path) -> Optional[int]:
    """Open the lock file read-write without following a link: created new (O_EXCL), or the existing plain file
    (a stale lock to take over, or a held one to name). A symbolic link, a hard link to another file or anything
    but a plain file is refused, and the file it points to is left untouched. None: it vanished meanwhile."""
    flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    if not hasattr(os, "O_NOFOLLOW") and path.is_symlink():  # Windows
        raise _not_a_plain_file(path, "a symbolic link")
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        try:
            fd = os.open(path, flags | getattr(os, "O_NONBLOCK", 0))  # O_NONBLOCK: a FIFO planted there never blocks
        except FileNotFoundError:
            return None
        except OSError as error:
            if error.errno == errno.ELOOP or path.is_symlink():
                raise _not_a_plain_file(path, "a symbolic link") from None
            raise LNStagingError(f"Cannot open the review lock {path} ({error.strerror}): the results folder must be "
                                 "writable to review it.") from None
    except OSError as error:
        raise LNStagingError(f"Cannot create the review lock {path} ({error.strerror}): the results folder "
                             "must be writable to review it.") from None
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode) or status.st_nlink != 1:
        os.close(fd)
        raise _not_a_plain_file(path, "a hard link to another file" if stat.S_ISREG(status.st_mode)
                                else "a special file")
    if status.st_size > MAX_LOCK_BYTES:  # a lock holds a line of JSON: this is some other file put there
        os.close(fd)
        raise _not_a_plain_file(path, f"a {status.st_size}-byte file")
    return fd


class ReviewLock:
    """The lock of one results folder, held from ``acquire`` to ``release``."""

    def __init__(self, folder: Path, fd: int, taken_over: Optional[dict]):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: Optional[int] = fd
        self.taken_over = taken_over  # the stale owner replaced, or None

    @classmethod
    def acquire(cls, folder: Path | str) -> "ReviewLock":
        """Take the lock of ``folder`` or raise ReviewLockedError (one line, naming the owner)."""
        folder = Path(folder)
        path = folder / LOCK_NAME
        host = socket.gethostname()
        for _ in range(5):
            fd = _open_lock_file(path)
            if fd is None:  # removed between two attempts to open it: try again
                continue
            if not cls._lock_fd(fd):
                owner = _read_owner_fd(fd)
                os.close(fd)
                raise ReviewLockedError(
                    f"{folder} is already being reviewed by another 'lnstaging review' ({_owner_text(owner)}): "
                    "use that server's page, or stop it first (two servers would overwrite each other's decisions).")
            if not _same_file(fd, path):  # the previous owner removed the file between our open and flock: again
                os.close(fd)
                continue
            previous = _read_owner_fd(fd)
            if previous and (previous.get("host") != host or fcntl is None):
                os.close(fd)
                raise ReviewLockedError(
                    f"{folder} has the review lock of another 'lnstaging review' ({_owner_text(previous)}) whose "
                    f"state cannot be checked from {host}: if no review of this folder is running, delete {path} "
                    "and start again.")
            owner = {"pid": os.getpid(), "host": host,
                     "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                     "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv[:2]))}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(owner).encode(), 0)
            os.fsync(fd)
            return cls(folder, fd, previous or None)
        raise ReviewLockedError(f"{folder}: the review lock {path} keeps changing; is another review starting?")

    @staticmethod
    def _lock_fd(fd: int) -> bool:
        if fcntl is None:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

    def release(self) -> None:
        """Remove the lock file and let go of the flock (idempotent)."""
        if self._fd is None:
            return
        try:
            owner = _read_owner_fd(self._fd)
            mine = owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname()
            if mine and _same_file(self._fd, self.path):
                self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def takeover_message(self) -> Optional[str]:
        if not self.taken_over:
            return None
        return (f"Took over the review lock of {self.folder}: its owner ({_owner_text(self.taken_over)}) is no longer "
                "running.")


def _same_file(fd: int, path: Path) -> bool:
    """``path`` (not followed if it is a link) is the file open as ``fd``."""
    try:
        here, there = os.fstat(fd), os.lstat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def acquire_all(folders) -> list[ReviewLock]:
    """Lock every folder, or none: on a refusal the locks already taken are released."""
    locks: list[ReviewLock] = []
    try:
        for folder in folders:
            locks.append(ReviewLock.acquire(folder))
    except BaseException:
        release_all(locks)
        raise
    return locks


def release_all(locks) -> None:
    for lock in locks:
        lock.release()


def clean_stale_temporaries(results_dir: Path | str) -> list[str]:
    """Remove what an interrupted save left in ``results_dir`` (call only while holding its lock); put back a review
    folder left renamed by a kill between two renames. Returns what was done, one line each."""
    results_dir = Path(results_dir)
    review = results_dir / REVIEW_SUBDIR
    done = []
    old = sorted(results_dir.glob(f".{REVIEW_SUBDIR}.old-*"))
    if old and not review.exists():
        old[-1].rename(review)  # a complete earlier review (atomic_directory renames it aside before the new one)
        done.append(f"restored {review} from {old[-1].name} (a save was interrupted between two renames)")
        old = old[:-1]
    stale = [*old, *results_dir.glob(f".{REVIEW_SUBDIR}.partial-*"), *results_dir.glob(".node-*"),
             *results_dir.glob(".tables-*")]
    if review.is_dir():
        stale += [p for p in review.glob(".*.partial-*")]
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        done.append(f"removed {path.name} (left by an interrupted save)")
    for line in done:
        log.info("%s: %s", results_dir, line)
    return done
