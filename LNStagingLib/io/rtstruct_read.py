"""DICOM RTSTRUCT to binary masks on a reference grid.

Each closed planar contour is filled on its slice (a voxel is inside when its centre is inside the polygon);
contours on one slice are combined by XOR (even-odd), so a contour inside another is a hole. Contours whose
planes do not coincide with the reference slices are filled on an intermediate grid along the reference's slice
normal (spaced like the contours) and then resampled with nearest neighbour.

Before any pixel is filled the RTSTRUCT is checked against the reference: it must share its frame of reference
(or at least reference its series), and its contours must fall on the reference grid. A mismatch is a DicomError,
never an empty or misplaced mask.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import pydicom
import SimpleITK as sitk
from matplotlib.path import Path as PolygonPath

from ..errors import DicomError, InputFileError
from .dicom_series import DicomSeries
from .images import require_exists

log = logging.getLogger(__name__)

MODALITY_NAMES = {"PT": "PET"}
#: A contour is on a slice when its index along the normal is within this many slices of an integer.
PLANE_TOLERANCE = 0.1


@dataclass(frozen=True)
class Contour:
    roi_name: str
    points: np.ndarray  # (N, 3) LPS mm


def read_rtstruct_dataset(path: os.PathLike | str) -> pydicom.Dataset:
    path = require_exists(path, "RTSTRUCT")
    try:
        ds = pydicom.dcmread(path)
    except (pydicom.errors.InvalidDicomError, OSError, EOFError):
        raise InputFileError(f"RTSTRUCT '{path}' is not a DICOM file: give the RTSTRUCT (.dcm) exported with the "
                             f"contours.") from None
    if str(ds.get("Modality", "")) != "RTSTRUCT":
        raise InputFileError(f"'{path}' is a DICOM {ds.get('Modality', 'object')}, not an RTSTRUCT: give the "
                             f"structure set file.")
    return ds


def roi_names(ds: pydicom.Dataset) -> dict[int, str]:
    """ROI number -> name, from the StructureSetROISequence."""
    return {int(item.ROINumber): str(item.ROIName) for item in ds.get("StructureSetROISequence", [])}


def referenced_uids(ds: pydicom.Dataset) -> tuple[set[str], set[str]]:
    """(frames of reference, series) the RTSTRUCT says its contours were drawn on."""
    frames, series = set(), set()
    for ref in ds.get("ReferencedFrameOfReferenceSequence", []):
        if ref.get("FrameOfReferenceUID"):
            frames.add(str(ref.FrameOfReferenceUID))
        for study in ref.get("RTReferencedStudySequence", []):
            for item in study.get("RTReferencedSeriesSequence", []):
                if item.get("SeriesInstanceUID"):
                    series.add(str(item.SeriesInstanceUID))
    for roi in ds.get("StructureSetROISequence", []):
        if roi.get("ReferencedFrameOfReferenceUID"):
            frames.add(str(roi.ReferencedFrameOfReferenceUID))
    return frames, series


def check_references(ds: pydicom.Dataset, reference: DicomSeries, path) -> None:
    """DicomError unless the RTSTRUCT shares the reference's frame of reference or references its series.

    Sharing the frame of reference is enough (a GTV drawn on the CT applies to the PET of the same PET/CT);
    referencing the series is accepted with a warning when the frame UID disagrees (some writers put a fresh UID).
    """
    frames, series = referenced_uids(ds)
    same_frame = reference.frame_of_reference_uid is not None and reference.frame_of_reference_uid in frames
    same_series = reference.series_instance_uid is not None and reference.series_instance_uid in series
    if same_frame:
        return
    if same_series:
        log.warning("RTSTRUCT references this series but another FrameOfReferenceUID; using the series reference")
        return
    if not frames and not series:
        log.warning("RTSTRUCT names no referenced frame of reference or series; only the geometry is checked")
        return
    raise DicomError(f"RTSTRUCT '{path}' was drawn on another image series (its frame of reference and series do "
                     f"not match the {reference.modality} images given): give the images it was drawn on.")


def roi_listing(ds: pydicom.Dataset) -> str:
    """The ROI names for messages ('GTV_Mass, GTV_Edema'); by number and name ('1 GTV, 2 GTV, 3 Liver') when two
    ROIs share a name, so that the user can choose by number."""
    names = roi_names(ds)
    if len(set(names.values())) == len(names):
        return ", ".join(names.values()) or "none"
    return ", ".join(f"{number} {name}" for number, name in names.items())


def resolve_roi(ds: pydicom.Dataset, roi: str | int, path, option: str | None = None) -> int:
    """The ROI number meant by a name (that only one ROI has) or by an ROI number; else an InputFileError that
    lists the ROIs (two ROIs may share a name: combining them would be neither of them)."""
    names = roi_names(ds)
    text = str(roi).strip()
    named = [number for number, name in names.items() if name == text]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        choose = f"choose one by number with {option} NUMBER" if option else "rename them in the planning system"
        raise InputFileError(f"RTSTRUCT '{path}' has {len(named)} ROIs named {text!r} (numbers "
                             f"{', '.join(map(str, named))}): {choose} (ROIs: {roi_listing(ds)}).")
    if text.isdigit() and int(text) in names:
        return int(text)
    kind = "named or numbered" if text.isdigit() else "named"
    raise InputFileError(f"RTSTRUCT '{path}' has no ROI {kind} {text!r} (it has: {roi_listing(ds)})"
                         + (f": check {option}." if option else "."))


def _contour_points(data, name: str) -> np.ndarray:
    points = np.asarray([float(v) for v in data], dtype=float).reshape(-1, 3)
    if not np.all(np.isfinite(points)):
        raise DicomError(f"a contour of RTSTRUCT ROI {name!r} has coordinates that are not numbers (NaN or infinite "
                         f"ContourData): export the structure set again from the planning system.")
    return points


def contours_by_number(ds: pydicom.Dataset, numbers: set[int] | None = None) -> dict[int, list[np.ndarray]]:
    """ROI number -> its closed planar contours (N, 3) in mm; open/point contours are skipped; a contour with
    NaN or infinite coordinates is a DicomError."""
    names = roi_names(ds)
    contours: dict[int, list[np.ndarray]] = {}
    for roi in ds.get("ROIContourSequence", []):
        number = int(roi.get("ReferencedROINumber", -1))
        if numbers is not None and number not in numbers:
            continue
        items = contours.setdefault(number, [])
        for contour in roi.get("ContourSequence", []):
            kind = str(contour.get("ContourGeometricType", "CLOSED_PLANAR"))
            data = contour.get("ContourData")
            if kind != "CLOSED_PLANAR" or not data or len(data) < 9:
                continue
            items.append(_contour_points(data, names.get(number, f"ROI-{number}")))
    return contours


def read_contours(ds: pydicom.Dataset, wanted: set[str] | None = None) -> dict[str, list[np.ndarray]]:
    """ROI name -> list of closed planar contours (N, 3) in mm (ROIs sharing a name: see resolve_roi)."""
    names = roi_names(ds)
    contours: dict[str, list[np.ndarray]] = {}
    for number, items in contours_by_number(ds).items():
        name = names.get(number, f"ROI-{number}")
        if wanted is None or name in wanted:
            contours.setdefault(name, []).extend(items)
    return contours


def _world_to_index(reference: sitk.Image, points: np.ndarray) -> np.ndarray:
    """Continuous (i, j, k) indices of LPS points on the reference grid, vectorised."""
    direction = np.array(reference.GetDirection()).reshape(3, 3)
    scale = direction @ np.diag(reference.GetSpacing())
    return np.linalg.solve(scale, (points - np.array(reference.GetOrigin())).T).T


def _slice_grid(reference: sitk.Image, contours: list[np.ndarray]) -> sitk.Image:
    """The grid to fill on: the reference itself when contours lie on its slices, otherwise the reference's
    in-plane grid stacked at the contours' own plane spacing along the same normal."""
    ks = np.concatenate([_world_to_index(reference, c)[:, 2] for c in contours])
    planes = np.unique(np.round([np.median(_world_to_index(reference, c)[:, 2]) for c in contours], 4))
    if np.all(np.abs(ks - np.round(ks)) < PLANE_TOLERANCE):
        return reference
    gaps = np.diff(planes)
    gap = float(np.median(gaps[gaps > 1e-3])) if np.any(gaps > 1e-3) else 1.0
    step = gap * reference.GetSpacing()[2]
    count = int(round((planes[-1] - planes[0]) / gap)) + 1
    grid = sitk.Image([reference.GetSize()[0], reference.GetSize()[1], count], sitk.sitkUInt8)
    grid.SetSpacing([reference.GetSpacing()[0], reference.GetSpacing()[1], step])
    grid.SetDirection(reference.GetDirection())
    grid.SetOrigin(reference.TransformContinuousIndexToPhysicalPoint([0.0, 0.0, float(planes[0])]))
    return grid


def fill_contours(grid: sitk.Image, contours: list[np.ndarray]) -> tuple[np.ndarray, list[float]]:
    """Even-odd fill of closed contours on ``grid``; returns the [z, y, x] mask and the z (mm) of contours off-grid."""
    nx, ny, nz = grid.GetSize()
    mask = np.zeros((nz, ny, nx), dtype=bool)
    off_grid: list[float] = []
    for points in contours:
        index = _world_to_index(grid, points)
        k_values = index[:, 2]
        if np.ptp(k_values) > 2 * PLANE_TOLERANCE + 1e-6:
            raise DicomError("an RTSTRUCT contour is not parallel to the image slices (oblique or sagittal contours): "
                             "draw or export the contours on the axial image slices.")
        k = int(np.round(np.median(k_values)))
        if not 0 <= k < nz:
            off_grid.append(float(np.median(points[:, 2])))
            continue
        ij = index[:, :2]
        lo = np.maximum(np.floor(ij.min(axis=0)).astype(int), 0)
        hi = np.minimum(np.ceil(ij.max(axis=0)).astype(int), [nx - 1, ny - 1])
        if np.any(hi < lo):
            off_grid.append(float(np.median(points[:, 2])))
            continue
        ii, jj = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1))
        inside = PolygonPath(ij).contains_points(np.column_stack([ii.ravel(), jj.ravel()])).reshape(ii.shape)
        mask[k, lo[1]:hi[1] + 1, lo[0]:hi[0] + 1] ^= inside
    return mask, off_grid


def rasterise_roi(contours: list[np.ndarray], reference: sitk.Image) -> tuple[sitk.Image, list[float]]:
    """One ROI's contours as a uint8 mask on the reference grid, and the z (mm) of contours outside it."""
    if not contours:
        empty = sitk.Image(reference.GetSize(), sitk.sitkUInt8)
        empty.CopyInformation(reference)
        return empty, []
    grid = _slice_grid(reference, contours)
    array, off_grid = fill_contours(grid, contours)
    mask = sitk.GetImageFromArray(array.astype(np.uint8))
    mask.CopyInformation(grid)
    if grid is not reference:
        mask = sitk.Resample(mask, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return mask, off_grid


def drawn_on(ds: pydicom.Dataset, reference: DicomSeries) -> bool:
    """True when the RTSTRUCT references the reference series itself (by series UID or by one of its slices)."""
    if reference.series_instance_uid and reference.series_instance_uid in referenced_uids(ds)[1]:
        return True
    slices = set(reference.sop_instance_uids)
    for roi in ds.get("ROIContourSequence", []):
        for contour in roi.get("ContourSequence", []):
            for image in contour.get("ContourImageSequence", []):
                if str(image.get("ReferencedSOPInstanceUID", "")) in slices:
                    return True
    return False


def read_rtstruct(path: os.PathLike | str, reference: sitk.Image | DicomSeries,
                  rois: list[str | int] | None = None, allow_outside: bool = False,
                  option: str | None = None) -> dict:
    """ROI -> binary uint8 mask on the reference grid; each ROI is filled on its own (two ROIs sharing a name are
    never combined).

    ``reference`` is the image the masks are wanted on; pass the DicomSeries (not just its image) so the
    frame-of-reference/series checks can run. ``rois`` restricts to (and requires) these ROIs, each a name only one
    ROI has or an ROI number, and keys the result by them (``option`` is the command-line option that chose them,
    for the messages); without ``rois`` every ROI is read, keyed by name, or "name (ROI n)" where names repeat.
    Contours outside the reference are an error when the reference is the very series the RTSTRUCT was drawn on (slices are
    missing), and cropped with a warning otherwise or when ``allow_outside``.
    """
    ds = read_rtstruct_dataset(path)
    image = reference.image if isinstance(reference, DicomSeries) else reference
    strict = False
    if isinstance(reference, DicomSeries):
        check_references(ds, reference, path)
        strict = not allow_outside and drawn_on(ds, reference)
    names = roi_names(ds)
    if rois is not None:
        keys = {roi: resolve_roi(ds, roi, path, option) for roi in rois}
    else:  # every ROI: by name, or by name and number where two ROIs share a name
        shared = {name for name in names.values() if list(names.values()).count(name) > 1}
        keys = {(f"{name} (ROI {number})" if name in shared else name): number for number, name in names.items()}
    by_number = contours_by_number(ds, set(keys.values()))
    contours = {key: by_number.get(number, []) for key, number in keys.items()}
    masks, placed, outside = {}, 0, []
    for name, items in contours.items():
        mask, off_grid = rasterise_roi(items, image)
        if items and len(off_grid) == len(items):
            log.warning("ROI %d of the RTSTRUCT lies entirely outside the reference grid", len(masks) + 1)
        elif off_grid:
            log.warning("%d of %d contours of an ROI lie outside the reference grid (cropped)", len(off_grid), len(items))
        outside += off_grid
        placed += len(items) - len(off_grid)
        masks[name] = mask
    if contours and placed == 0 and any(contours.values()):
        raise DicomError(f"no contour of RTSTRUCT '{path}' lies on the reference image (wrong or broken references, "
                         f"or contours on slices the image does not have): give the images the RTSTRUCT was drawn on.")
    if strict and outside:
        planes = ", ".join(f"{z:g}" for z in sorted(set(np.round(outside, 2)))[:5])
        raise DicomError(f"RTSTRUCT '{path}' has {len(outside)} contours on slices the image series does not have "
                         f"(z = {planes} mm; it references images missing from the series): give the complete series "
                         f"the RTSTRUCT was drawn on.")
    return masks
