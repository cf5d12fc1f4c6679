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


def read_contours(ds: pydicom.Dataset, wanted: set[str] | None = None) -> dict[str, list[np.ndarray]]:
    """ROI name -> list of closed planar contours (N, 3) in mm; open/point contours are skipped."""
    names = roi_names(ds)
    contours: dict[str, list[np.ndarray]] = {}
    for roi in ds.get("ROIContourSequence", []):
        name = names.get(int(roi.get("ReferencedROINumber", -1)), f"ROI-{roi.get('ReferencedROINumber', '?')}")
        if wanted is not None and name not in wanted:
            continue
        items = contours.setdefault(name, [])
        for contour in roi.get("ContourSequence", []):
            kind = str(contour.get("ContourGeometricType", "CLOSED_PLANAR"))
            data = contour.get("ContourData")
            if kind != "CLOSED_PLANAR" or not data or len(data) < 9:
                continue
            items.append(np.asarray([float(v) for v in data], dtype=float).reshape(-1, 3))
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
                  rois: list[str] | None = None, allow_outside: bool = False) -> dict[str, sitk.Image]:
    """ROI name -> binary uint8 mask on the reference grid.

    ``reference`` is the image the masks are wanted on; pass the DicomSeries (not just its image) so the
    frame-of-reference/series checks can run. ``rois`` restricts (and requires) the ROI names. Contours outside
    the reference are an error when the reference is the very series the RTSTRUCT was drawn on (slices are
    missing), and cropped with a warning otherwise or when ``allow_outside``.
    """
    ds = read_rtstruct_dataset(path)
    image = reference.image if isinstance(reference, DicomSeries) else reference
    strict = False
    if isinstance(reference, DicomSeries):
        check_references(ds, reference, path)
        strict = not allow_outside and drawn_on(ds, reference)
    available = list(roi_names(ds).values())
    if rois is not None:
        missing = [name for name in rois if name not in available]
        if missing:
            raise DicomError(f"RTSTRUCT '{path}' has no ROI named {', '.join(missing)}; it has: {', '.join(available)}.")
    contours = read_contours(ds, set(rois) if rois is not None else None)
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
