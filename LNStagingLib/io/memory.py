"""Refuse a run that cannot fit in memory before any work, with the figure, instead of ITK's allocation failure
(a traceback) or the operating system killing the process half-way.

The estimate comes from the image headers only (NIfTI/NRRD/MHA image information, or the first DICOM header times
the number of files). Its constants were measured with ``lnstaging run`` (default models, CPU) on real CTs:
198 x 202 x 59 voxels (IBSI STS_001) peaked at 458 MB, 244 x 202 x 224 (TotalSegmentator CT at 1.5 mm) at 620 MB,
i.e. about 19.7 bytes per CT voxel (the CT, the PET on its grid and the maps, float32) on top of about 410 MB for
Python, torch and the models. docs/IO.md gives the figures.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ResourceError

#: What ITK's RuntimeError says when an image buffer cannot be allocated (SimpleITK raises it, not MemoryError).
ITK_ALLOCATION_FAILURE = "Failed to allocate memory for image"
BASE_BYTES = 450 * 2**20  # Python, torch, SimpleITK and the models (measured 410 MB, rounded up)
BYTES_PER_VOXEL = 24  # measured 19.7 per CT voxel, rounded up
GB = 2**30


def voxel_count(path: os.PathLike | str) -> int | None:
    """Voxels of an image from its header only; None when the header cannot be read (the reader says why later)."""
    path = Path(path)
    if path.is_dir():
        return _dicom_folder_voxels(path)
    import SimpleITK as sitk

    from .images import is_dicom_file

    if is_dicom_file(path):
        return _dicom_folder_voxels(path.parent)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    count = 1
    for size in reader.GetSize():
        count *= int(size)
    return count


def _dicom_folder_voxels(folder: Path) -> int | None:
    """Rows x columns x frames of the first image header, times the number of files below the folder."""
    import pydicom

    files = [Path(root) / name for root, _, names in os.walk(folder) for name in names]
    for path in files:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # not DICOM (or unreadable): the series reader decides later
            continue
        if "Rows" in ds and "Columns" in ds:
            frames = int(ds.get("NumberOfFrames", 1) or 1)
            return int(ds.Rows) * int(ds.Columns) * (frames if frames > 1 else len(files))
    return None


def available_bytes() -> int | None:
    """Memory the run can use without being killed: MemAvailable plus free swap (Linux), else the free physical
    pages; None when the system does not say."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        return (int(fields["MemAvailable"].split()[0]) + int(fields.get("SwapFree", "0 kB").split()[0])) * 1024
    except (OSError, KeyError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def estimate_run_bytes(ct: os.PathLike | str) -> int | None:
    """Peak memory of ``lnstaging run`` on this CT (everything is done on the CT grid), or None if unknown."""
    voxels = voxel_count(ct)
    return None if voxels is None else BASE_BYTES + BYTES_PER_VOXEL * voxels


def check_memory(ct: os.PathLike | str, command: str = "this run") -> None:
    """ResourceError, before any work, when the estimated peak memory exceeds what the machine has available."""
    needed, available = estimate_run_bytes(ct), available_bytes()
    if needed is None or available is None or needed <= available:
        return
    voxels = (needed - BASE_BYTES) // BYTES_PER_VOXEL
    raise ResourceError(f"{command} needs about {needed / GB:.1f} GB of memory for a CT of {voxels / 1e6:.0f} million "
                        f"voxels, but {available / GB:.1f} GB are available: close other programs, use a machine "
                        "with more memory, or crop the CT and PET to the region of interest.")


def allocation_error(error: RuntimeError, path, what: str) -> ResourceError | None:
    """One line for ITK's allocation failure while reading ``path`` (None for any other ITK error)."""
    if ITK_ALLOCATION_FAILURE not in str(error):
        return None
    voxels = voxel_count(path)
    size = f" ({voxels / 1e6:.0f} million voxels)" if voxels else ""
    return ResourceError(f"{what} '{path}' does not fit in memory{size}: close other programs, use a machine with "
                         "more memory, or crop the image to the region of interest.")
