"""The inputs a run read, recorded in provenance.json, and the one check that images given later are those.

``lnstaging run`` records each input (CT, PET, organs, tumour, candidate file) with its path relative to the results
folder where possible (a results folder moved together with its images still finds them), its absolute path, the
sha256 of the file or folder, and for a folder the sha256 of every file in it. ``lnstaging review RESULTS`` and
``lnstaging report RESULTS`` read the images from there without options, and refuse other images (one line;
``--allow-other-images`` overrides): the same ``check_images_match_run`` in both. No torch, no MRML.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from ..errors import InputFileError
from .checksums import input_sha256, sha256_of


def recorded_inputs(given: dict) -> dict:
    """{name: {"path", "sha256", "files" (a folder: relative name -> sha256)}} for the inputs that were given."""
    out = {}
    for name, value in given.items():
        if value is None:
            continue
        path = Path(value).absolute()
        entry = {"path": str(path), "sha256": input_sha256(path)}
        if path.is_dir():
            entry["files"] = {str(f.relative_to(path)): sha256_of(f) for f in sorted(path.rglob("*")) if f.is_file()}
        out[name] = entry
    return out


def add_relative_paths(inputs: dict, results_dir: Path | str) -> None:
    """Each input's path relative to the results folder (kept when both are moved together)."""
    base = Path(results_dir).absolute()
    for entry in inputs.values():
        if isinstance(entry, dict) and entry.get("path"):
            try:
                entry["relative_path"] = os.path.relpath(entry["path"], base)
            except ValueError:  # another drive (Windows): the absolute path only
                pass


def _provenance_part(results_dir: Path | str, key: str) -> dict:
    """One dict of a results folder's provenance.json ({} when absent or unreadable)."""
    path = Path(results_dir) / "provenance.json"
    try:
        part = json.loads(path.read_text()).get(key) if path.is_file() else None
    except (OSError, ValueError, AttributeError):
        return {}
    return part if isinstance(part, dict) else {}


def read_recorded_inputs(results_dir: Path | str) -> dict:
    """provenance.json "inputs" of a results folder ({} when the run recorded none)."""
    return _provenance_part(results_dir, "inputs")


def is_pet_only_run(results_dir: Path | str) -> bool:
    """The run recorded a PET and no CT (``lnstaging run --pet`` without --ct): its results are on the PET's grid."""
    recorded = read_recorded_inputs(results_dir)
    return bool(recorded.get("pet")) and not recorded.get("ct")


def recorded_image_reading(results_dir: Path | str) -> dict:
    """How the run read its images (weight, dose, injection time, series UIDs): the same SUV on review."""
    return _provenance_part(results_dir, "image_reading")


def recorded_input_path(results_dir: Path | str, name: str) -> Optional[Path]:
    """Where the run's input ``name`` ("ct", "pet") is now: its relative path from the results folder, else its
    absolute path; None when neither exists or the run recorded no path."""
    entry = read_recorded_inputs(results_dir).get(name)
    if not isinstance(entry, dict):
        return None
    tries = []
    if entry.get("relative_path"):
        tries.append(Path(results_dir).absolute() / entry["relative_path"])
    if entry.get("path"):
        tries.append(Path(entry["path"]))
    return next((Path(os.path.normpath(p)) for p in tries if p.exists()), None)


def check_images_match_run(results_dir: Path | str, images: dict, case_id: str = "") -> Optional[str]:
    """Refuse a CT or PET that is not the one the run read: its sha256 must equal the checksum ``lnstaging run``
    recorded in provenance.json (another patient's images would show these contours on the wrong anatomy).
    ``images``: {"ct": path, "pet": path or None}. Returns a note when the run recorded no checksums; raises
    InputFileError (one line, naming --allow-other-images) on a mismatch."""
    inputs = read_recorded_inputs(results_dir)
    label = f"case '{case_id}'" if case_id else str(results_dir)
    if not inputs:
        return (f"{label}: the run recorded no input checksums (provenance.json), so the CT/PET cannot be checked "
                "against the run's inputs.")
    for what, image in images.items():
        entry = inputs.get(what)
        recorded = entry.get("sha256") if isinstance(entry, dict) else None
        if image is None or not recorded:
            continue
        if input_sha256(Path(image)) != recorded:
            changed = _changed_files(Path(image), entry.get("files"))
            raise InputFileError(
                f"The {what.upper()} {image} is not the {what.upper()} that {label} was run on (its sha256 differs "
                f"from provenance.json{changed}): give the run's own images, or add --allow-other-images if it is "
                "the same scan in another format.")
    return None


def _changed_files(path: Path, recorded_files) -> str:
    """'; 3 of 120 files differ' for a folder whose per-file checksums were recorded, else ''."""
    if not path.is_dir() or not isinstance(recorded_files, dict):
        return ""
    now = {str(f.relative_to(path)): f for f in path.rglob("*") if f.is_file()}
    differ = sum(1 for name, sha in recorded_files.items() if name not in now or sha256_of(now[name]) != sha)
    differ += sum(1 for name in now if name not in recorded_files)
    return f"; {differ} of {len(recorded_files)} recorded files differ or are missing/added" if differ else ""


def missing_recorded_image(results_dir: Path | str, name: str) -> InputFileError:
    """The one-line error when the run's image can no longer be found."""
    entry = read_recorded_inputs(results_dir).get(name)
    where = entry.get("path") if isinstance(entry, dict) else None
    if where:
        return InputFileError(f"The {name.upper()} this run read ({where}) is no longer there: give it with "
                              f"--{name} (a moved copy; its checksum is checked).")
    return InputFileError(f"The run in {results_dir} recorded no {name.upper()} path (an older run): give it with "
                          f"--{name}.")
