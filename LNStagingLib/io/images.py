"""Read one 3D image (NIfTI, NRRD, MHA or a DICOM folder) and refuse anything that would give a wrong result.

Every failure is an LNStagingError whose message names the file and says what to do: missing file, not an image,
truncated gzip, 2D/4D/vector images, NaN/Inf voxels, an empty DICOM folder.
"""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import ImageFormatError, InputFileError

log = logging.getLogger(__name__)

DICOM_MAGIC_OFFSET = 128


def is_dicom_file(path: os.PathLike | str) -> bool:
    """True for a Part-10 DICOM file (the 'DICM' marker after the 128-byte preamble)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(DICOM_MAGIC_OFFSET)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def require_exists(path: os.PathLike | str, what: str = "input") -> Path:
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{what} '{path}' does not exist: check the path.")
    if path.is_file() and not os.access(path, os.R_OK):
        raise InputFileError(f"{what} '{path}' cannot be read (permissions): make it readable.")
    return path


def _diagnose_unreadable(path: Path, what: str) -> InputFileError:
    """Turn ITK's long RuntimeError into one actionable line."""
    if path.stat().st_size == 0:
        return InputFileError(f"{what} '{path}' is an empty file (0 bytes): copy it again.")
    return InputFileError(
        f"{what} '{path}' is not an image this program can read: give a NIfTI (.nii/.nii.gz), NRRD, MHA file "
        f"or a folder of DICOM files."
    )


NIFTI_FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIfTI datatype codes of float32 / float64
CHUNK = 1 << 22


def _nifti_float_layout(header: bytes) -> tuple[np.dtype, int] | None:
    """(voxel dtype, data offset) of a float NIfTI-1/2 header, or None for other types/formats."""
    for endian in "<>":
        size = int(np.frombuffer(header[:4], dtype=f"{endian}i4")[0]) if len(header) >= 4 else 0
        if size == 348 and len(header) >= 348:
            code = int(np.frombuffer(header[70:72], dtype=f"{endian}i2")[0])
            offset = int(np.frombuffer(header[108:112], dtype=f"{endian}f4")[0])
        elif size == 540 and len(header) >= 540:
            code = int(np.frombuffer(header[12:14], dtype=f"{endian}i2")[0])
            offset = int(np.frombuffer(header[168:176], dtype=f"{endian}i8")[0])
        else:
            continue
        return (np.dtype(f"{endian}{NIFTI_FLOAT_TYPES[code]}"), offset) if code in NIFTI_FLOAT_TYPES else None
    return None


def scan_file(path: Path, what: str) -> int:
    """Read a .gz or NIfTI file once before ITK does: a truncated gzip stream is an error, and for a float NIfTI
    the number of NaN/Inf voxels is returned (ITK's NIfTI reader silently turns NaN into 0)."""
    if not path.name.endswith((".nii", ".gz")):
        return 0
    try:
        with (gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")) as handle:
            data = handle.read(CHUNK)
            layout = _nifti_float_layout(data[:540]) if path.name.endswith((".nii", ".nii.gz")) else None
            if layout is None:
                while handle.read(CHUNK):  # only the gzip integrity matters
                    pass
                return 0
            dtype, offset = layout
            bad, pending = 0, data[offset:]
            while True:
                usable = len(pending) - len(pending) % dtype.itemsize
                values = np.frombuffer(pending[:usable], dtype=dtype)
                bad += int(values.size - np.count_nonzero(np.isfinite(values)))
                chunk = handle.read(CHUNK)
                if not chunk:
                    return bad
                pending = pending[usable:] + chunk
    except (EOFError, zlib.error):
        raise InputFileError(f"{what} '{path}' is truncated or corrupt (incomplete gzip data): copy the file again.") from None
    except gzip.BadGzipFile:
        return 0  # not gzip at all: ITK will say what it is


def _nonfinite_error(path, what: str, count: int) -> ImageFormatError:
    return ImageFormatError(f"{what} '{path}' has {count} voxels that are NaN or infinite: fix or re-export the image "
                            f"(e.g. replace them with 0 / background) before using it.")


def check_volume(image: sitk.Image, path: os.PathLike | str, what: str = "image", allow_nonfinite: bool = False) -> sitk.Image:
    """Refuse 2D, 4D, multi-component and non-finite images; return the image unchanged otherwise."""
    dim = image.GetDimension()
    if dim == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
        dim = 3
    if dim != 3:
        raise ImageFormatError(
            f"{what} '{path}' is {dim}D (size {image.GetSize()}): a single 3D volume is needed; "
            + ("split the time series and give one frame." if dim > 3 else "give the whole 3D series, not one slice.")
        )
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ImageFormatError(
            f"{what} '{path}' has {image.GetNumberOfComponentsPerPixel()} values per voxel (colour or vector image): "
            f"give a scalar (greyscale) volume."
        )
    if min(image.GetSize()) < 2:
        raise ImageFormatError(
            f"{what} '{path}' has only one slice along an axis (size {image.GetSize()}): give the whole 3D volume."
        )
    if not allow_nonfinite and image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        array = sitk.GetArrayViewFromImage(image)
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise _nonfinite_error(path, what, bad)
    return image


def read_image(
    path: os.PathLike | str,
    *,
    what: str = "image",
    modality: str | None = None,
    series_uid: str | None = None,
    allow_nonfinite: bool = False,
) -> sitk.Image:
    """Read a 3D scalar volume from a file or a DICOM folder, in LPS world coordinates (as ITK does).

    For a DICOM folder (or one DICOM file, meaning its series) ``modality``/``series_uid`` pick the series
    when the folder holds several; see io.dicom_series.
    """
    path = require_exists(path, what)
    if path.is_dir() or is_dicom_file(path):
        from .dicom_series import read_dicom_series

        return read_dicom_series(path, modality=modality, series_uid=series_uid, what=what).image
    nonfinite = scan_file(path, what)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise _diagnose_unreadable(path, what) from None
    image = check_volume(image, path, what, allow_nonfinite)
    if nonfinite and not allow_nonfinite:
        raise _nonfinite_error(path, what, nonfinite)
    return image


def read_label_map(path: os.PathLike | str, *, what: str = "label map") -> sitk.Image:
    """Read an integer label map; a float image whose values are not whole numbers is refused (it is not a label map)."""
    image = read_image(path, what=what)
    if image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        array = sitk.GetArrayViewFromImage(image)
        if not np.array_equal(array, np.round(array)):
            raise ImageFormatError(
                f"{what} '{path}' holds non-integer values: it looks like an intensity image, not a label map; "
                f"give the segmentation file."
            )
        image = sitk.Cast(image, sitk.sitkInt32)
    if image.GetPixelID() in (sitk.sitkInt64, sitk.sitkUInt64):
        image = sitk.Cast(image, sitk.sitkInt32)
    return image
