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


def _nifti1_geometry_problem(header: bytes) -> str | None:
    """What is wrong with a NIfTI-1 header's voxel size or orientation (ITK would read it as something else)."""
    for endian in "<>":
        if len(header) >= 348 and int(np.frombuffer(header[:4], dtype=f"{endian}i4")[0]) == 348:
            break
    else:
        return None
    ndim = int(np.frombuffer(header[40:42], dtype=f"{endian}i2")[0])
    pixdim = np.frombuffer(header[76:108], dtype=f"{endian}f4")
    spatial = pixdim[1:1 + min(max(ndim, 1), 3)]
    if not np.all(np.isfinite(spatial)) or np.any(spatial <= 0):
        return f"its header gives a zero, negative or undefined voxel size {tuple(float(v) for v in spatial)}"
    if int(np.frombuffer(header[254:256], dtype=f"{endian}i2")[0]) > 0:  # sform_code: the affine is used
        affine = np.frombuffer(header[280:328], dtype=f"{endian}f4").reshape(3, 4)[:, :3].astype(float)
        norms = np.linalg.norm(affine, axis=0)
        if not np.all(np.isfinite(affine)) or np.any(norms == 0):
            return "its orientation matrix (sform) is undefined"
        unit = affine / norms
        if np.max(np.abs(unit.T @ unit - np.eye(3))) > 1e-3:
            return "its orientation matrix (sform) is not orthogonal (sheared)"
    return None


def _nifti1_data_bytes(header: bytes) -> int | None:
    """Bytes the header says the file holds (offset + voxels), for a NIfTI-1 header; None otherwise."""
    for endian in "<>":
        if len(header) >= 348 and int(np.frombuffer(header[:4], dtype=f"{endian}i4")[0]) == 348:
            dims = np.frombuffer(header[40:56], dtype=f"{endian}i2").astype(np.int64)
            bitpix = int(np.frombuffer(header[72:74], dtype=f"{endian}i2")[0])
            offset = int(np.frombuffer(header[108:112], dtype=f"{endian}f4")[0])
            if not 1 <= dims[0] <= 7 or bitpix <= 0:
                return None
            return offset + int(np.prod(np.maximum(dims[1:1 + dims[0]], 1))) * bitpix // 8
    return None


def _embedded_stream_offset(path: Path) -> int | None:
    """Byte offset of the compressed voxel data of a .nrrd (encoding gzip) or .mha (CompressedData = True) file with
    the data in the same file; None when the file is not of that kind."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    if path.name.lower().endswith(".nrrd"):
        end = head.find(b"\n\n")
        fields = head[:max(end, 0)].decode("latin-1").lower()
        if end < 0 or "data file" in fields or not any(f"encoding: {e}" in fields for e in ("gzip", "gz")):
            return None
        return end + 2
    if path.name.lower().endswith(".mha"):
        marker = head.find(b"ElementDataFile")
        line_end = head.find(b"\n", marker)
        fields = head[:max(line_end, 0)].decode("latin-1").replace(" ", "").lower()
        if marker < 0 or line_end < 0 or "compresseddata=true" not in fields or "elementdatafile=local" not in fields:
            return None
        return line_end + 1
    return None


def check_embedded_stream(path: Path, what: str) -> None:
    """A compressed NRRD/MHA whose zlib/gzip stream is damaged: ITK prints 'Uncompress failed' and returns garbage
    voxels, so the stream is decompressed (and its check sum verified) here first, without keeping the data."""
    offset = _embedded_stream_offset(path)
    if offset is None:
        return
    decompressor = zlib.decompressobj(wbits=47)  # gzip or zlib header, check sum verified at the end
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            while chunk := handle.read(CHUNK):
                while chunk:
                    decompressor.decompress(chunk, CHUNK)
                    chunk = decompressor.unconsumed_tail
                if decompressor.eof:
                    break
    except zlib.error:
        raise InputFileError(f"{what} '{path}' is corrupt (its compressed voxel data fail their check): copy the file "
                             "again.") from None
    if not decompressor.eof:
        raise InputFileError(f"{what} '{path}' is truncated (its compressed voxel data end early): copy the file again.")


def scan_file(path: Path, what: str) -> int:
    """Read a .gz or NIfTI file once before ITK does: a truncated or corrupt gzip stream (CRC), a NIfTI shorter
    than its header says, a negative voxel size or a sheared orientation are errors; for a float NIfTI the number
    of NaN/Inf voxels is returned (ITK's NIfTI reader silently turns NaN into 0, and pads a short file)."""
    if path.name.lower().endswith((".nrrd", ".mha")):
        check_embedded_stream(path, what)
        return 0
    if not path.name.endswith((".nii", ".gz")):
        return 0
    is_nifti = path.name.endswith((".nii", ".nii.gz"))
    try:
        with (gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")) as handle:
            data = handle.read(CHUNK)
            total = len(data)
            if is_nifti:
                problem = _nifti1_geometry_problem(data[:348])
                if problem:
                    raise ImageFormatError(f"{what} '{path}': {problem}: re-export the image from its source.")
            expected = _nifti1_data_bytes(data[:348]) if is_nifti else None
            layout = _nifti_float_layout(data[:540]) if is_nifti else None
            bad = 0
            if layout is None:
                while chunk := handle.read(CHUNK):  # the gzip integrity and the length matter
                    total += len(chunk)
            else:
                dtype, offset = layout
                pending = data[offset:]
                while True:
                    usable = len(pending) - len(pending) % dtype.itemsize
                    values = np.frombuffer(pending[:usable], dtype=dtype)
                    bad += int(values.size - np.count_nonzero(np.isfinite(values)))
                    chunk = handle.read(CHUNK)
                    if not chunk:
                        break
                    total += len(chunk)
                    pending = pending[usable:] + chunk
    except (EOFError, zlib.error):
        raise InputFileError(f"{what} '{path}' is truncated or corrupt (incomplete gzip data): copy the file again.") from None
    except gzip.BadGzipFile:
        with open(path, "rb") as raw:
            if raw.read(2) == b"\x1f\x8b":  # a gzip file whose check sum or length does not match: corrupt
                raise InputFileError(f"{what} '{path}' is corrupt (gzip check sum failed): copy the file again.") from None
        return 0  # not gzip at all: ITK will say what it is
    if expected is not None and total < expected:
        raise InputFileError(f"{what} '{path}' is truncated ({total} of {expected} bytes): copy the file again.")
    return bad


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
    spacing, direction = np.array(image.GetSpacing()), np.array(image.GetDirection()).reshape(3, 3)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0) or not np.all(np.isfinite(image.GetOrigin())):
        raise ImageFormatError(f"{what} '{path}' has an undefined, zero or negative voxel size or origin "
                               f"(spacing {tuple(round(float(v), 4) for v in spacing)}): re-export the image.")
    if not np.all(np.isfinite(direction)) or np.max(np.abs(direction.T @ direction - np.eye(3))) > 1e-3:
        raise ImageFormatError(f"{what} '{path}' has a direction matrix that is not orthonormal (sheared or scaled "
                               f"axes): re-export the image, or resample it onto an orthogonal grid first.")
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
        from .memory import allocation_error

        raise (allocation_error(error, path, what) or _diagnose_unreadable(path, what)) from None
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
    lowest = float(np.min(sitk.GetArrayViewFromImage(image)))
    if lowest < 0:
        raise ImageFormatError(f"{what} '{path}' holds negative values (down to {lowest:g}): it looks like a CT or "
                               "another intensity image, not a label map; give the segmentation file.")
    return image
