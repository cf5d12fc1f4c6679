"""Which nodes leave as which ROIs/segments: names, colours, review filtering, and the label map on the CT grid.

One place decides this so that the RTSTRUCT and the SEG of the same export hold the same structures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..errors import ExportError, ImageFormatError
from ..io.resample import require_same_grid, resample_to_reference
from ..results import Candidate
from .review_rule import fit_words, is_exported

COMBINED_NAME = "GTVn"
# Distinct colours for nodes without a probability (RGB 0-255); with a probability the colour encodes it.
PALETTE = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40), (128, 0, 0))


@dataclass
class RoiSpec:
    """One exported structure: ROI Number (RTSTRUCT) = segment number (SEG)."""

    number: int
    name: str
    label_values: tuple[int, ...]
    colour: tuple[int, int, int]
    probability: float | None = None
    algorithm: str = "AUTOMATIC"  # AUTOMATIC | SEMIAUTOMATIC | MANUAL (DICOM enumerated values)
    description: str = ""


def colour_for_probability(p: float) -> tuple[int, int, int]:
    """Yellow (p = 0) to red (p = 1): the hotter, the more likely metastatic."""
    p = min(max(float(p), 0.0), 1.0)
    return (255, int(round(255 * (1.0 - p))), 0)


def _algorithm(c: Candidate | None) -> str:
    if c is None:
        return "AUTOMATIC"
    if c.source == "user":
        return "MANUAL"
    return "SEMIAUTOMATIC" if c.review == "accepted" else "AUTOMATIC"


def labels_on_ct_grid(labels: sitk.Image, ct: sitk.Image, resample: bool = False) -> np.ndarray:
    """The instance label map as an integer array [z, y, x] on the CT slices; refuse or resample another grid."""
    if labels.GetDimension() != 3 or labels.GetNumberOfComponentsPerPixel() != 1:
        raise ImageFormatError("The label map must be a 3D single-component image of node ids (0 = background).")
    if resample:
        labels = resample_to_reference(labels, ct, "nearest")
    else:
        labels = require_same_grid(labels, ct, "label map", "CT series", remedy=(
            "resample it onto the CT with nearest-neighbour interpolation first, or pass --resample to let the "
            "exporter do that"))
    array = sitk.GetArrayFromImage(labels)
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise ImageFormatError("The label map holds non-integer values: give the instance label map (gtv_ln.nii.gz), not a probability map.")
        array = array.astype(np.int64)
    if array.min() < 0:
        raise ImageFormatError("The label map holds negative values: node ids must be 1, 2, ... and 0 for background.")
    return array


def select_rois(label_array: np.ndarray, candidates: list[Candidate] | None = None, include_pending: bool = False,
                combined: bool = False, rescored_ids=()) -> tuple[list[RoiSpec], list[str]]:
    """Pick the nodes to export by the review rule (review_rule.is_exported) and describe them.

    Accepted nodes always, pending ones only with ``include_pending``, rejected never; a label missing from the
    candidate list counts as pending. Without any candidate list (a bare label map) every label is exported.
    ``rescored_ids``: candidates whose probability was re-scored from review decisions (their description says so).
    Returns (rois, notes for the user).
    """
    present = [int(v) for v in np.unique(label_array) if v != 0]
    if not present:
        raise ExportError("The label map holds no nodes (all voxels are 0): nothing to export.")
    by_id = {c.id: c for c in (candidates or [])}
    notes: list[str] = []
    chosen: list[tuple[int, Candidate | None]] = []
    if candidates is None:
        notes.append("no candidate list given: every label of the label map is exported (no review states)")
    for value in present:
        c = by_id.get(value)
        if candidates is not None and c is None:
            notes.append(f"label {value} is not in the candidate list (counted as pending)")
        review = c.review if c is not None else "pending"
        if candidates is not None and not is_exported(review, include_pending):
            continue
        chosen.append((value, c))
    for c in candidates or []:
        if c.id not in present and is_exported(c.review, include_pending):
            notes.append(f"{c.name} has no voxels in the label map and is not exported")
    if not chosen:
        what = "accepted or pending" if include_pending else "accepted"
        raise ExportError(f"No {what} nodes to export: review the candidates first (accept at least one node).")
    if combined:
        probabilities = [c.probability for _, c in chosen if c is not None and c.probability is not None]
        p = max(probabilities) if probabilities else None
        algorithms = {_algorithm(c) for _, c in chosen}
        algorithm = algorithms.pop() if len(algorithms) == 1 else "SEMIAUTOMATIC"
        ids = ", ".join(f"{v:02d}" for v, _ in chosen)
        return [RoiSpec(1, COMBINED_NAME, tuple(v for v, _ in chosen), (255, 0, 0), p, algorithm,
                        fit_words(f"Union of {len(chosen)} nodes: {ids}"))], notes
    rois = []
    for number, (value, c) in enumerate(chosen, start=1):
        name = c.name if c is not None else f"GTVn_{value:02d}"
        p = c.probability if c is not None else None
        colour = colour_for_probability(p) if p is not None else PALETTE[(value - 1) % len(PALETTE)]
        rois.append(RoiSpec(number, name, (value,), colour, p, _algorithm(c),
                            roi_description(value, c, rescored=value in set(rescored_ids))))
    return rois, notes


def roi_description(value: int, c: Candidate | None, rescored: bool = False) -> str:
    """'Lymph node candidate 12, p(metastasis) 0.873, accepted' ('... 0.873 re-scored, pending' when the review's
    decisions re-scored it): whole words within the 64 characters of DICOM LO."""
    parts = [f"Lymph node candidate {value}"]
    if c is not None and c.probability is not None:
        parts.append(f"p(metastasis) {c.probability:.3f}" + (" re-scored" if rescored else ""))
    if c is not None:
        parts.append(c.review)
    return fit_words(", ".join(parts))


def roi_mask(label_array: np.ndarray, roi: RoiSpec) -> np.ndarray:
    return np.isin(label_array, roi.label_values)


def roi_boxes(label_array: np.ndarray, rois: list[RoiSpec]) -> dict[int, tuple[slice, slice, slice]]:
    """ROI number -> the bounding box (z, y, x slices) of its voxels, from one pass over the label map."""
    from scipy import ndimage

    objects = ndimage.find_objects(label_array)
    boxes = {}
    for roi in rois:
        parts = [objects[v - 1] for v in roi.label_values if v - 1 < len(objects) and objects[v - 1] is not None]
        if parts:
            boxes[roi.number] = tuple(slice(min(p[a].start for p in parts), max(p[a].stop for p in parts)) for a in range(3))
    return boxes
