"""One paired study to one cohort case folder (docs/DATASET.md), written atomically: complete or absent.

CT in HU (int16, the reference grid); PET to SUVbw by io.suv (the same factor and messages as ``lnstaging suv``; PET
already in SUV, Units GML, is kept as it is) on its own grid; ROIs rasterised onto the CT by io.rtstruct_read /
io.seg_read with their frame-of-reference checks; the tumour mask is the union of the primary ROIs, gtv_ln gives
every GTVn ROI its own id, lymph_nodes adds the all-node ROIs (a positive node keeps its gtv_ln id).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ...errors import DatasetError, DicomError, LNStagingError
from ..format import CANDIDATES_CSV, PATIENT_JSON, write_candidates
from .discover import CasePlan
from .roi_roles import RoiRules, assign_roles, segment_code_role

#: A node ROI lying this much inside a GTVn ROI is the same node contoured twice (it keeps the GTVn id).
SAME_NODE_FRACTION = 0.5


@dataclass
class CaseOptions:
    rules: RoiRules
    organs_dir: Path | None = None  # the case's folder of organ masks (TotalSegmentator output), if any
    organ_ids: dict[str, int] = field(default_factory=dict)  # organ name -> label id, shared by the cohort
    metastasis: int | None = None  # from --labels


def segment_names(segments) -> list[str]:
    """A SEG's segment labels, made unique (several segments may share a label, e.g. 'Neoplasm, Secondary')."""
    labels = [s.name for s in segments]
    return [name if labels.count(name) == 1 else f"{name} #{s.label}" for name, s in zip(labels, segments)]


def _structure_labels(paths: list[Path], ct_series, rules: RoiRules
                      ) -> tuple[dict[str, sitk.Image], list[str], dict[str, str]]:
    """Every ROI / segment name of the structure objects (in file order), the masks on the CT of those that may
    have a role (an export's dozens of organs at risk are never rasterised), and the roles SEG codes give."""
    from ...io.mask_source import dicom_modality
    from ...io.rtstruct_read import read_rtstruct, read_rtstruct_dataset, roi_names
    from ...io.seg_read import read_seg

    masks: dict[str, sitk.Image] = {}
    order: list[str] = []
    coded: dict[str, str] = {}
    for path in paths:
        if dicom_modality(path) == "RTSTRUCT":
            every = list(roi_names(read_rtstruct_dataset(path)).values())
            names = list(dict.fromkeys(every))
            twice = sorted(n for n in names if every.count(n) > 1 and rules.roles(n) & {"gtv_ln", "lymph_nodes"})
            if twice:  # the reader combines an ROI name's contours (right for a tumour, not for nodes: one id each)
                raise DatasetError(f"ROI name(s) {', '.join(twice)} appear more than once in the RTSTRUCT: give each "
                                   "ROI its own name (GTVn_1, GTVn_2) and export again.")
            wanted = [n for n in names if len(rules.roles(n)) == 1 and "ignore" not in rules.roles(n)]
            found = read_rtstruct(path, ct_series, rois=wanted) if wanted else {}
        else:
            seg = read_seg(path, ct_series)
            names = segment_names(seg.segments)
            found = {name: sitk.Cast(seg.label_map == s.label, sitk.sitkUInt8) for name, s in zip(names, seg.segments)}
            coded.update({name: role for name, s in zip(names, seg.segments)
                          if (role := segment_code_role(s)) is not None})
        for name in names:
            if name in order:
                raise DatasetError(f"{len(paths)} structure sets on this CT both hold ROI '{name}': export one "
                                   "structure set per CT.")
            order.append(name)
        masks.update(found)
    return masks, order, coded


def _instances(names: list[str], masks: dict[str, sitk.Image], shape, start: int = 1) -> np.ndarray:
    labels = np.zeros(shape, np.uint16)
    for value, name in enumerate(names, start=start):
        labels[sitk.GetArrayViewFromImage(masks[name]) > 0] = value
    return labels


def _image(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image


def node_candidates(nodes: sitk.Image, positive_ids: set[int]) -> list[dict]:
    """candidates.csv rows: every node instance at its centroid (LPS mm), label 1 for the GTVn nodes."""
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(nodes)
    return [{"id": int(v), "x": c[0], "y": c[1], "z": c[2], "label": int(v in positive_ids), "node_id": int(v),
             "kind": "node"} for v in stats.GetLabels() for c in [stats.GetCentroid(v)]]


def _organs(options: CaseOptions, ct: sitk.Image) -> sitk.Image | None:
    if options.organs_dir is None:
        return None
    from ...anatomy.structures import read_organs

    organs = read_organs(options.organs_dir, reference=ct, resample=True)
    array = np.zeros(sitk.GetArrayViewFromImage(organs.image).shape, np.uint16)
    source = sitk.GetArrayViewFromImage(organs.image)
    for value, name in organs.names.items():
        array[source == value] = options.organ_ids[organ_name(name)]
    return _image(array, ct)


def organ_name(file_name: str) -> str:
    """A mask file's organ name (TotalSegmentator: spleen.nii.gz -> spleen)."""
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"):
        if file_name.endswith(suffix):
            return file_name[: -len(suffix)]
    return file_name


def build_case(plan: CasePlan, options: CaseOptions, case_dir: Path) -> list[str]:
    """Write the case files into ``case_dir`` (an empty folder); return notes for the summary."""
    from ...io.ct_values import ct_value_problem
    from ...io.dicom_series import read_series
    from ...io.resample import require_overlap
    from ...io.suv import pet_to_suv

    notes: list[str] = []
    ct_series = read_series(plan.ct, what="CT")
    pet_series = read_series(plan.pet, what="PET")
    suv, factor = pet_to_suv(pet_series)  # timing problems stop the case with the messages of `lnstaging suv`
    ct = ct_series.image
    problem = ct_value_problem(ct, "CT")
    if problem:
        raise DicomError(problem)
    require_overlap(suv, ct)
    notes.append(factor.describe() if factor.units != "GML" else
                 "PET is already SUVbw (Units GML): kept as it is, not converted again")

    masks, names, coded = _structure_labels(plan.structures, ct_series, options.rules)
    roles = assign_roles(names, options.rules, coded)
    if roles.conflicts:
        listed = "; ".join(f"'{n}' ({' and '.join(r)})" for n, r in roles.conflicts.items())
        raise DatasetError(f"ROI name(s) matching two roles: {listed}; say which with --roi-map.")
    if roles.unmatched:
        notes.append(f"ROIs matched by no rule (not imported): {', '.join(roles.unmatched)}")
    empty = [n for n in names if n not in roles.unmatched and n not in roles.conflicts and n not in roles.by_role["ignore"]
             and (n not in masks or not np.any(sitk.GetArrayViewFromImage(masks[n])))]
    if empty:
        notes.append(f"ROIs without voxels on the CT (skipped): {', '.join(empty)}")
    tumor_names = [n for n in roles.by_role["tumor"] if n not in empty]
    if not tumor_names:
        raise DatasetError(f"no ROI matches the primary tumour (GTVp) patterns (ROIs: {', '.join(names) or 'none'}): "
                           "the format needs the primary; map its ROI with --roi-map '{\"NAME\": \"tumor\"}'.")
    shape = sitk.GetArrayViewFromImage(ct).shape
    tumor = np.zeros(shape, np.uint8)
    for name in tumor_names:
        tumor |= sitk.GetArrayViewFromImage(masks[name]) > 0
    gtv_names = [n for n in roles.by_role["gtv_ln"] if n not in empty]
    gtv = _instances(gtv_names, masks, shape)
    positive = set(range(1, len(gtv_names) + 1))
    lost = positive - set(np.unique(gtv).tolist())
    if lost:
        raise DatasetError(f"GTVn ROI(s) {', '.join(gtv_names[i - 1] for i in sorted(lost))} lie entirely inside "
                           "other GTVn ROIs: export each node once.")

    node_names = []
    for name in (n for n in roles.by_role["lymph_nodes"] if n not in empty):
        inside = sitk.GetArrayViewFromImage(masks[name]) > 0
        if np.mean(gtv[inside] > 0) < SAME_NODE_FRACTION:
            node_names.append(name)
    nodes = None
    if node_names:
        nodes = _instances(node_names, masks, shape, start=len(gtv_names) + 1)
        nodes[gtv > 0] = gtv[gtv > 0]

    metastasis = int(bool(gtv_names))
    if options.metastasis is not None and options.metastasis != metastasis:
        raise DatasetError(f"--labels says metastasis {options.metastasis} but the structure set has "
                           f"{len(gtv_names)} GTVn ROI(s): contour the positive nodes or correct the label.")

    ct_out = sitk.Cast(sitk.Clamp(sitk.Round(ct) if ct.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64) else ct,
                                  lowerBound=-32768, upperBound=32767), sitk.sitkInt16)
    write = lambda image, key: sitk.WriteImage(image, str(case_dir / f"{key}.nii.gz"), True)  # noqa: E731
    write(ct_out, "ct")
    write(sitk.Cast(suv, sitk.sitkFloat32), "pet")
    write(_image(tumor.astype(np.uint8), ct), "tumor")
    write(_image(gtv, ct), "gtv_ln")
    if nodes is not None:
        write(_image(nodes, ct), "lymph_nodes")
        write_candidates(case_dir / CANDIDATES_CSV, node_candidates(_image(nodes, ct), positive))
    organs = _organs(options, ct)
    if organs is not None:
        write(organs, "organs")
    info = {"metastasis": metastasis, "n_positive": len(gtv_names),
            "n_nodes": int(len(np.unique(nodes)) - 1) if nodes is not None else None,
            "source": "lnstaging dataset import",
            "structures": ["SEG" if _is_seg(p) else "RTSTRUCT" for p in plan.structures],
            "pet_units": factor.units, "suv_factor": factor.factor,
            "n_tumor_rois": len(tumor_names),  # counts, not the ROI names (they may hold dates or initials)
            "organs": organs is not None}
    if options.metastasis is not None:
        info["metastasis_from"] = "--labels"
    (case_dir / PATIENT_JSON).write_text(json.dumps(info, indent=1) + "\n")
    return notes


def _is_seg(path: Path) -> bool:
    from ...io.mask_source import dicom_modality

    return dicom_modality(path) == "SEG"


def import_case_task(case_id: str, plan: CasePlan, out: Path, options: CaseOptions, overwrite: bool = False):
    """The Dask task: one case to OUT/cases/<case_id>/ atomically. Returns (case_id, error line or None, seconds,
    notes): an error is returned as one line, not raised."""
    from ...io.atomic import atomic_directory

    t = time.perf_counter()
    try:
        with atomic_directory(Path(out) / "cases" / case_id, replace_marker=PATIENT_JSON if overwrite else None) as tmp:
            notes = build_case(plan, options, tmp)
        return case_id, None, time.perf_counter() - t, notes
    except LNStagingError as error:
        return case_id, str(error), time.perf_counter() - t, []
    except Exception as error:  # one case's bug must not stop the import of the others; recorded, not hidden
        return case_id, f"internal error {type(error).__name__}: {error}", time.perf_counter() - t, []
