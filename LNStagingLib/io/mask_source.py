"""A mask from wherever a clinician keeps it: a label map file, an RTSTRUCT ROI, or a DICOM SEG segment.

One resolution for every command that takes a mask (``--tumor`` of run, candidates and priors; ``--organs``): the
kind of file is read from the file itself, an ROI or segment is chosen by name (or number) or, when only one can be
meant, for the user; every error names the file. The RTSTRUCT and SEG are read by io.rtstruct_read / io.seg_read.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputFileError
from .images import is_dicom_file, read_label_map, require_exists
from .resample import require_same_grid, resample_to_reference

#: "Neoplasm, Primary" as a SEG's segmented property type: SNOMED CT 86049000, or its older SNOMED RT code M-80003.
PRIMARY_NEOPLASM = {"86049000", "M-80003"}


def _grid(reference) -> sitk.Image:
    """The image of a reference given as an image or as an io.dicom_series.DicomSeries."""
    return reference if isinstance(reference, sitk.Image) else reference.image


def dicom_modality(path: os.PathLike | str) -> str | None:
    """The Modality of a DICOM file ('RTSTRUCT', 'SEG', 'CT', ...); None for a file that is not DICOM."""
    path = Path(path)
    if not path.is_file() or not is_dicom_file(path):
        return None
    import pydicom  # only for DICOM input: a label map needs none of it

    try:
        return str(pydicom.dcmread(path, stop_before_pixels=True).get("Modality", "")) or "without modality"
    except (pydicom.errors.InvalidDicomError, OSError, EOFError, ValueError):
        raise InputFileError(f"'{path}' is a damaged DICOM file: export it again.") from None


def _is_gtv(name: str, interpreted_type: str) -> bool:
    return interpreted_type.upper() == "GTV" or name.upper().startswith("GTV")


def choose_roi(path: Path, roi: str | None, what: str, option: str) -> int:
    """The RTSTRUCT ROI number meant: the one named (a name only one ROI has) or numbered, the only ROI, or the only
    GTV ROI; else an error listing the ROIs by number."""
    from .rtstruct_read import read_rtstruct_dataset, resolve_roi, roi_listing, roi_names

    ds = read_rtstruct_dataset(path)
    names = roi_names(ds)
    if roi is not None:
        return resolve_roi(ds, roi, path, f"{option}-roi")
    if len(names) == 1:
        return next(iter(names))
    types = {int(o.ReferencedROINumber): str(o.get("RTROIInterpretedType", "")) for o in ds.get("RTROIObservationsSequence", [])}
    gtv = [number for number, name in names.items() if _is_gtv(name, types.get(number, ""))]
    if len(gtv) == 1:
        return gtv[0]
    raise InputFileError(f"RTSTRUCT '{path}' holds {len(names)} ROIs ({roi_listing(ds)}): choose the {what} with "
                         f"{option}-roi NAME_OR_NUMBER.")


def choose_segment(path: Path, segments, segment: str | None, what: str, option: str):
    """The SEG segment meant: by number or label, the only segment, or the only 'Neoplasm, Primary' segment."""
    listed = ", ".join(f"{s.label} {s.name!r}" for s in segments) or "none"
    if segment is not None:
        text = str(segment).strip()
        found = [s for s in segments if (text.isdigit() and s.label == int(text)) or s.name == text]
        if len(found) == 1:
            return found[0]
        problem = "several segments are labelled" if found else "no segment is numbered or labelled"
        raise InputFileError(f"in DICOM SEG '{path}' {problem} {text!r} (segments: {listed}): give the segment "
                             f"number with {option}-segment.")
    if len(segments) == 1:
        return segments[0]
    primary = [s for s in segments if s.type is not None and s.type.value in PRIMARY_NEOPLASM]
    if len(primary) == 1:
        return primary[0]
    raise InputFileError(f"DICOM SEG '{path}' holds {len(segments)} segments ({listed}): choose the {what} with "
                         f"{option}-segment NUMBER_OR_LABEL.")


def read_mask(path: os.PathLike | str, reference: sitk.Image | "DicomSeries", *, what: str = "tumour mask",
              roi: str | None = None, segment: str | None = None, option: str = "--tumor",
              resample: bool = True) -> sitk.Image:
    """One binary (uint8, 0/1) mask on the reference grid, from a label map file (non-zero = inside), an RTSTRUCT
    ROI or a DICOM SEG segment. ``option`` is the command-line option the path came from (for the messages).

    A label map on another grid is resampled with nearest neighbour (refused when not ``resample``); an RTSTRUCT is
    rasterised and a SEG resampled by their readers, which check the frame of reference when ``reference`` is a
    DicomSeries.
    """
    path = require_exists(path, what)
    image = _grid(reference)
    modality = dicom_modality(path)
    if modality == "RTSTRUCT":
        if segment is not None:
            raise InputFileError(f"{what} '{path}' is an RTSTRUCT: choose its ROI with {option}-roi, not a segment.")
        from .rtstruct_read import read_rtstruct

        number = choose_roi(path, roi, what, option)
        mask = read_rtstruct(path, reference, rois=[number])[number]
    elif modality == "SEG":
        if roi is not None:
            raise InputFileError(f"{what} '{path}' is a DICOM SEG: choose its segment with {option}-segment, not an ROI.")
        from .seg_read import read_seg

        seg = read_seg(path, reference)
        chosen = choose_segment(path, seg.segments, segment, what, option)
        mask = sitk.BinaryThreshold(seg.label_map, chosen.label, chosen.label, 1, 0)
    elif modality is not None:
        raise InputFileError(f"{what} '{path}' is a DICOM {modality} file, not a mask: give an RTSTRUCT, a DICOM SEG "
                             "or a label map (NIfTI/NRRD).")
    else:
        if roi is not None or segment is not None:
            raise InputFileError(f"{option}-roi and {option}-segment choose inside an RTSTRUCT or a DICOM SEG; "
                                 f"{what} '{path}' is a label map (every non-zero voxel is the mask).")
        labels = read_label_map(path, what=what)
        if resample:
            labels = resample_to_reference(labels, image, "nearest", 0)
        else:
            labels = require_same_grid(labels, image, what)
        mask = labels != 0
    return sitk.Cast(mask, sitk.sitkUInt8)


def read_named_labels(path: os.PathLike | str, reference: sitk.Image | "DicomSeries", *, what: str = "organ masks",
                      names: list[str] | None = None, option: str = "--organs",
                      roi_option: str | None = None) -> tuple[sitk.Image, dict[int, str]]:
    """An RTSTRUCT's ROIs or a DICOM SEG's segments as one label map on the reference grid plus value -> name
    (ROI name, segment label); ``names`` keeps only those ROIs/segment labels. Where structures overlap, the later
    one wins. ``roi_option`` is the calling command's option that chooses them (None: it has none)."""
    path = require_exists(path, what)
    image = _grid(reference)
    modality = dicom_modality(path)
    if modality == "RTSTRUCT":
        from .rtstruct_read import read_rtstruct, read_rtstruct_dataset, resolve_roi, roi_names

        ds = read_rtstruct_dataset(path)
        numbers = roi_names(ds)
        chosen = names or list(dict.fromkeys(numbers.values()))
        # each structure by a name only one ROI has, or by its number (an organ is matched by its ROI name)
        masks = {numbers[number]: mask for number, mask in read_rtstruct(
            path, reference, rois=[resolve_roi(ds, roi, path, roi_option) for roi in chosen]).items()}
        labels = np.zeros(sitk.GetArrayViewFromImage(image).shape, np.uint16)
        found = {}
        for value, (name, mask) in enumerate(masks.items(), start=1):
            labels[sitk.GetArrayViewFromImage(mask) != 0] = value
            found[value] = name
        out = sitk.GetImageFromArray(labels)
        out.CopyInformation(image)
        return out, found
    if modality == "SEG":
        from .seg_read import read_seg

        seg = read_seg(path, reference)
        segments = [s for s in seg.segments if not names or s.name in names]
        missing = [n for n in names or [] if n not in {s.name for s in seg.segments}]
        if missing:
            raise InputFileError(f"DICOM SEG '{path}' has no segment labelled {', '.join(map(repr, missing))} "
                                 f"(it has: {', '.join(s.name for s in seg.segments)})"
                                 + (f": check {roi_option}." if roi_option else "."))
        kept = sitk.GetArrayFromImage(seg.label_map)
        kept[~np.isin(kept, [s.label for s in segments])] = 0
        out = sitk.GetImageFromArray(kept)
        out.CopyInformation(seg.label_map)
        return out, {s.label: s.name for s in segments}
    raise InputFileError(f"{what} '{path}' is {'a DICOM ' + modality + ' file' if modality else 'not DICOM'}: "
                         "only an RTSTRUCT or a DICOM SEG holds named structures.")
