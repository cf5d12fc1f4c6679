"""The one output rule of every command: an output never destroys an input, a working folder or a review.

- An output that exists is never replaced unless the user says ``--overwrite``.
- Even then never when the output is or contains an input, the current working folder (or one of its ancestors),
  the home folder or ``/``; never a folder holding a review (``review/`` or ``export/``, the clinician's decisions
  and corrected contours); and a folder only when lnstaging wrote it (its marker file, e.g. provenance.json).
- Everything is checked before any work is done: the kind of path (file or folder), the file extension, that the
  folder it goes into can be written, and that the disk has room for about what the inputs weigh.

Every refusal is an ``OutputError`` (exit code 2, one line) and leaves every file as it was. See docs/RELIABILITY.md.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Union

from ..errors import InputFileError, OutputError

REVIEW_FOLDERS = ("review", "export")  # what a clinician made in a results folder: never replaced by a re-run
RESULTS_MARKER = "provenance.json"  # a results folder written by lnstaging run/demo/run-batch
MB = 1024 * 1024
IMAGE_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".mha")  # what every image output accepts (SimpleITK writes by name)

Inputs = Union[Mapping[str, Optional[os.PathLike]], Iterable[tuple[str, Optional[os.PathLike]]]]


def resolved(path: os.PathLike | str, option: str = "", error: type = InputFileError) -> Path:
    """Absolute path with symbolic links and '..' resolved (also for a path that does not exist yet).

    A symbolic link loop (a -> b -> a) is raised as ``error`` with one line naming ``option`` (pathlib raises
    RuntimeError on Python 3.11, OSError ELOOP on 3.13)."""
    try:
        return Path(os.path.expanduser(str(path))).resolve(strict=False)
    except (RuntimeError, OSError):
        named = f"{option} {path}" if option else str(path)
        raise error(f"{named} goes through a symbolic link loop (a link that points back to itself): remove or "
                    "fix the link, or give the real path.") from None


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def protected_folders() -> dict[Path, str]:
    """Folders no output may be or contain: the working folder, the home folder and the file-system root."""
    places = {Path("/"): "the file-system root"}
    try:
        places[resolved(Path.home())] = "your home folder"
    except RuntimeError:  # no HOME
        pass
    places[resolved(Path.cwd())] = "the current working folder"
    return places


def review_folders(folder: Path) -> list[Path]:
    """review/ and export/ folders in ``folder`` or in its sub-folders (a batch of results folders)."""
    if not folder.is_dir():
        return []
    found = []
    for name in REVIEW_FOLDERS:
        found += [p for p in [folder / name, *folder.glob(f"*/{name}")] if p.is_dir()]
    return found


def identity(path: Path) -> Optional[tuple[int, int]]:
    """(device, inode) of ``path`` itself (a link is not followed), or None when nothing is there. A rename keeps it;
    a folder renamed into the place of another has a different one. A path below a file or through a link loop has
    nothing there either (what pathlib's exists() says)."""
    try:
        stat = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:
            return None
        raise
    return stat.st_dev, stat.st_ino


def checked_while_stable(path: Path, check: Callable[[], None], attempts: int = 10) -> None:
    """Run ``check`` on ``path``; when it refuses or trips over a vanished file while ``path`` was replaced or
    removed under it (concurrent --overwrite runs into one --out swap their results in), check again the folder
    that is there now. A refusal of a folder that stayed the same is raised as it is."""
    for _ in range(attempts):
        before = identity(path)
        try:
            check()
            return
        except (OutputError, FileNotFoundError):
            if identity(path) == before:
                raise
    raise OutputError(f"{path} keeps changing while it is checked: is another run writing the same output?")


def _named_inputs(inputs: Inputs) -> list[tuple[str, Path]]:
    items = inputs.items() if isinstance(inputs, Mapping) else inputs
    return [(name, resolved(path, name)) for name, path in items if path is not None and str(path) != ""]


def input_bytes(paths: Iterable[Optional[os.PathLike]]) -> int:
    """Total size of the given files and folders (recursively); missing paths count 0."""
    total = 0
    for path in paths:
        if path is None:
            continue
        path = Path(path)
        try:
            if path.is_dir():
                total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            elif path.is_file():
                total += path.stat().st_size
        except OSError:
            continue
    return total


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def refuse_protected(out: Path, option: str) -> None:
    """Refuse an output that is or contains the working folder, the home folder or '/'."""
    for place, what in protected_folders().items():
        if _within(place, out):
            relation = "is" if place == out else "contains"
            raise OutputError(f"{option} {out} {relation} {what}, which an output never replaces: give a new folder "
                              f"for the results, e.g. {option} {out / 'lnstaging_results'}.")


def refuse_review(out: Path, option: str) -> None:
    """Refuse to replace a folder holding a review (the clinician's decisions and contours)."""
    reviews = review_folders(out)
    if reviews:
        held = reviews[0].relative_to(out)
        raise OutputError(f"{option} {out} holds a review ({held}/): it is never replaced, to keep the review give "
                          f"another folder for the new results, e.g. {option} {out.parent / (out.name + '_rerun')}.")


def check_replaceable(folder: Path, marker: str, option: str = "--out") -> None:
    """An existing, non-empty ``folder`` may be replaced only when lnstaging wrote it (``marker`` inside), it holds
    no review, and it is not the working folder, home or '/'. Called before the work and again at the swap."""
    folder = resolved(folder, option, OutputError)
    refuse_protected(folder, option)
    refuse_review(folder, option)
    if not (folder / marker).is_file():
        raise OutputError(f"{option} {folder} exists and is not a folder lnstaging wrote (no {marker}): it is kept; "
                          "give a new folder.")


def check_output(out: os.PathLike | str, *, kind: str = "folder", inputs: Inputs = (), overwrite: bool = False,
                 marker: Optional[str] = None, extensions: Iterable[str] = (), needed_bytes: int = 0,
                 write_into: bool = False, option: str = "--out") -> Path:
    """Check one output before any work; return its resolved path or raise OutputError.

    kind: 'folder' (replaced as a whole, or written into when ``write_into``) or 'file'.
    inputs: (option, path) of everything the command reads; the output may neither be nor contain one of them.
    marker: the file that shows lnstaging wrote an existing folder (only such a folder is replaced on --overwrite).
    write_into: the folder is kept and files are added or updated in it (run-batch, train): it may exist.
    needed_bytes: estimate of what will be written (checked against the free space).
    """
    if kind not in ("folder", "file"):
        raise ValueError(kind)
    if out is None or str(out).strip() == "":
        raise OutputError(f"{option} is empty: give a {'folder' if kind == 'folder' else 'file name'}.")
    given = Path(os.path.expanduser(str(out)))
    out = resolved(given, option, OutputError)
    extensions = tuple(e.lower() for e in extensions)
    refuse_protected(out, option)
    for name, path in _named_inputs(inputs):
        if _within(path, out):
            relation = "is" if path == out else "contains"
            raise OutputError(f"{option} {out} {relation} the input {name} {path}: an output never replaces an input; "
                              f"give another {'folder' if kind == 'folder' else 'file'}.")
    if kind == "file" and extensions and not out.name.lower().endswith(extensions):
        raise OutputError(f"{option} {given} has an unknown extension: use one of {', '.join(extensions)}.")

    def check_existing() -> None:
        """What is at ``out`` now: may it be replaced (or written into)?"""
        if (out.exists() or out.is_symlink()) and not (kind == "folder" and write_into):
            for name, path in _named_inputs(inputs):
                if path.is_dir() and path in out.parents:
                    raise OutputError(f"{option} {out} is part of the input {name} {path}: an output never replaces an "
                                      "input; write it outside that folder.")
        if out.exists() or out.is_symlink():
            if kind == "folder" and not out.is_dir():
                raise OutputError(f"{option} {given} is a file, not a folder: give a folder for the results.")
            if kind == "file" and out.is_dir():
                raise OutputError(f"{option} {given} is a folder: give a file name, e.g. {given / ('output' + (extensions[0] if extensions else ''))}.")
            if kind == "folder":
                if not write_into:
                    refuse_review(out, option)
                    if any(out.iterdir()):
                        if not overwrite:
                            raise OutputError(f"{option} {given} already exists: give a new folder, or pass --overwrite "
                                              "to replace results lnstaging wrote there.")
                        if marker:
                            check_replaceable(out, marker, option)
            elif not overwrite:
                raise OutputError(f"{option} {given} already exists: give a new file name, or pass --overwrite to replace it.")

    checked_while_stable(out, check_existing)
    where = _nearest_existing(out if kind == "folder" and write_into else out.parent)
    if not where.is_dir():
        raise OutputError(f"{option} {given}: {where} is a file, not a folder: give a path inside a folder.")
    if not os.access(where, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {given}: {where} cannot be written (read-only or no permission): "
                          "give a folder you can write to.")
    if needed_bytes:
        free = shutil.disk_usage(where).free
        if free < needed_bytes:
            raise OutputError(f"{option} {given}: about {needed_bytes / MB:.0f} MB are needed and {where} has "
                              f"{free / MB:.0f} MB free: free some space or write to another disk.")
    return out
