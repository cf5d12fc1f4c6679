"""One entry point for masks from any source: an RTSTRUCT, a DICOM SEG, or a label map file (NIfTI/NRRD/MHA).

Returns name -> binary mask on the reference grid. A label-map file must already be on the reference grid unless
``resample`` is set (a label map on another grid is a user error, not something to fix silently).
"""

from __future__ import annotations

import os

import numpy as np
import pydicom
import SimpleITK as sitk

from .dicom_series import DicomSeries
from .images import is_dicom_file, read_label_map, require_exists
from .resample import require_overlap, require_same_grid, resample_to_reference


def _binary(image: sitk.Image, value: int) -> sitk.Image:
    return sitk.Cast(sitk.BinaryThreshold(image, value, value, 1, 0), sitk.sitkUInt8)


def read_masks(path: os.PathLike | str, reference: sitk.Image | DicomSeries, *, resample: bool = False,
               reference_what: str = "reference image") -> dict[str, sitk.Image]:
    """Masks by name on the reference grid. RTSTRUCT ROIs keep their names; SEG segments are '<number> <label>';
    label-map values are 'label <value>'."""
    path = require_exists(path, "mask")
    image = reference.image if isinstance(reference, DicomSeries) else reference
    if is_dicom_file(path):
        modality = str(pydicom.dcmread(path, stop_before_pixels=True).get("Modality", ""))
        if modality == "SEG":
            from .seg_read import read_seg

            seg = read_seg(path, reference)
            return {f"{s.label} {s.name}": _binary(seg.label_map, s.label) for s in seg.segments}
        from .rtstruct_read import read_rtstruct

        return read_rtstruct(path, reference)
    labels = read_label_map(path, what="label map")
    if resample:
        require_overlap(labels, image, "label map", reference_what)
        labels = resample_to_reference(labels, image, "nearest", 0)
    else:
        labels = require_same_grid(labels, image, "label map", reference_what)
    values = np.unique(sitk.GetArrayViewFromImage(labels))
    return {f"label {int(v)}": _binary(labels, int(v)) for v in values if v != 0}
