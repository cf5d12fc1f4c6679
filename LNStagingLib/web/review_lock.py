"""One review server per results folder: a lock file, and the cleaning of what a killed server left behind.

Two servers on one folder each save their own state over the other's (the last writer wins: decisions are lost).
``ReviewLock.acquire`` creates ``CASE/.lnstaging-review.lock`` holding the owner's PID, host, start time and
command, and holds an exclusive ``flock`` on it while the server runs. A second server finds the flock taken and
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
import json
import logging
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Optional

from ..errors import LNStagingError

try:
    import fcntl
except ImportError:  # Windows: no flock; an existing lock is then never taken over automatically
    fcntl = None

LOCK_NAME = ".lnstaging-review.lock"
REVIEW_SUBDIR = "review"

log = logging.getLogger(__name__)


class ReviewLockedError(LNStagingError):
    """Another review server owns this results folder."""


def _owner_text(owner: dict) -> str:
    return (f"PID {owner.get('pid', '?')} on host {owner.get('host', '?')}, started {owner.get('started', '?')}")


def _read_owner(path: Path) -> dict:
    try:
        owner = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


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
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            except OSError as error:
                raise LNStagingError(f"Cannot create the review lock {path} ({error.strerror}): the results folder "
                                     "must be writable to review it.") from None
            if not cls._lock_fd(fd):
                owner = _read_owner(path)
                os.close(fd)
                raise ReviewLockedError(
                    f"{folder} is already being reviewed by another 'lnstaging review' ({_owner_text(owner)}): "
                    "use that server's page, or stop it first (two servers would overwrite each other's decisions).")
            try:
                same_file = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same_file = False
            if not same_file:  # the previous owner removed the file between our open and our flock: try again
                os.close(fd)
                continue
            previous = _read_owner(path)
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
            os.write(fd, json.dumps(owner).encode())
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
            owner = _read_owner(self.path)
            if owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
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
