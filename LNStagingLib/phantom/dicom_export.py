"""Phantom patients as a clinical DICOM export: what a planning system hands over, with known ground truth.

Per patient one study: a CT series (int16 HU), a PET series in Bq/ml (BQML, decay corrected to the scan start, with
weight, dose, half-life and an injection one hour before the scan, so SUVbw = the phantom's SUV) on the CT's Frame of
Reference, and the contours: an RTSTRUCT (or, for every third patient, a DICOM SEG) with the primary under a varied
TG-263-style name (GTVp, GTV_T, ...), one GTVn ROI per positive node (GTVn_1, GTV_LN_2, ...), one ROI per negative
node (LN_3, Node 4, ...) and distractors a planning export carries (External, PTV_60, z_ring). Folder layouts differ
per patient (nested by series, flat with opaque names). The RTSTRUCT and SEG come from the project's exporters.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.uid import generate_uid

from ..export.dicom_common import part10_meta, save_file
from ..progress import Progress
from .case import PhantomCase, generate_case
from .cohort import DIRECTION_CYCLE, case_seed

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
PET_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.128"
F18_HALF_LIFE_S = 6586.2
WEIGHT_KG = 70.0
DOSE_BQ = 3.5e8
UPTAKE_S = 3600.0
SCAN = dt.datetime(2020, 1, 1, 10, 0, 0)  # a fixed, fake date: phantoms carry no real dates

TUMOR_NAMES = ("GTVp", "GTV_T", "GTV-Primary", "GTVp1", "GTV_Tumor", "GTVt")
POSITIVE_NAMES = ("GTVn_{i}", "GTV_LN_{i}", "GTVn{i}", "GTV_N{i}", "GTVn_L_{i}", "GTV_Node_{i}")
NEGATIVE_NAMES = ("LN_{i}", "Node {i}", "LymphNode_{i}", "LN{i}")
DISTRACTORS = ("External", "PTV_60", "z_ring")
# pdac20 label -> TotalSegmentator mask name (the organ masks written beside the export, for --organs-from); the
# PDAC (19) goes into the pancreas mask as pdac20 merges them; the SMV (15) has no TotalSegmentator class.
TOTALSEG_NAMES = {1: "spleen", 2: "kidney_right", 3: "kidney_left", 4: "gallbladder", 5: "esophagus", 6: "liver",
                  7: "stomach", 8: "aorta", 9: "inferior_vena_cava", 10: "portal_vein_and_splenic_vein",
                  11: "pancreas", 12: "adrenal_gland_right", 13: "adrenal_gland_left", 14: "duodenum",
                  16: "superior_mesenteric_artery", 17: "celiac_trunk", 18: "left_gastric_artery", 19: "pancreas",
                  20: "common_hepatic_artery"}
MANIFEST = "phantom_export.json"


@dataclass
class ExportedPatient:
    patient_id: str
    case: PhantomCase
    roi_names: dict[int, str]  # lymph_nodes id -> ROI name (positive and negative nodes); tumour under "tumor"
    tumor_name: str
    structure: str  # "RTSTRUCT" or "SEG"


def _save(ds: pydicom.Dataset, path: Path) -> None:
    """Write a DICOM Part-10 file (pydicom 2.4 and 3 alike: export.dicom_common.save_file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(ds, path)


def _uid(*parts) -> str:
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def _slice_datasets(image: sitk.Image, modality: str, common: dict, series: dict) -> list[tuple[pydicom.Dataset, np.ndarray]]:
    """Headers (geometry from the image: LPS origin, direction columns, spacing) and the [y, x] pixels per slice."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    if np.linalg.det(direction) < 0:
        raise ValueError("a left-handed direction cannot be written as DICOM slices ordered along their normal")
    array = sitk.GetArrayFromImage(image)
    sx, sy, sz = image.GetSpacing()
    out = []
    for k in range(array.shape[0]):
        ds = pydicom.Dataset()
        for key, value in {**common, **series}.items():
            setattr(ds, key, value)
        ds.Modality = modality
        ds.SOPClassUID = CT_IMAGE_STORAGE if modality == "CT" else PET_IMAGE_STORAGE
        ds.SOPInstanceUID = _uid(series["SeriesInstanceUID"], k)
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [f"{v:.6f}" for v in image.TransformIndexToPhysicalPoint((0, 0, k))]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*direction[:, 0], *direction[:, 1])]
        ds.PixelSpacing = [f"{sy:.6f}", f"{sx:.6f}"]  # row spacing (between rows), column spacing
        ds.SliceThickness = f"{sz:.6f}"
        ds.Rows, ds.Columns = array.shape[1], array.shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        out.append((ds, array[k]))
    return out


def _finish(ds: pydicom.Dataset, pixels: np.ndarray) -> pydicom.Dataset:
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<i2").tobytes()
    ds.file_meta = part10_meta(ds)
    ds.preamble = b"\0" * 128
    return ds


def suv_to_bqml_factor() -> float:
    """Bq/ml per SUV unit for the fixed weight, dose and one-hour uptake (decay corrected to the scan start)."""
    decayed = DOSE_BQ * 2.0 ** (-UPTAKE_S / F18_HALF_LIFE_S)
    return decayed / (WEIGHT_KG * 1000.0)


def write_ct(image: sitk.Image, folder: Path, common: dict, series_uid: str, naming) -> list[Path]:
    series = {"SeriesInstanceUID": series_uid, "SeriesNumber": 2, "SeriesDescription": "CT 2.5mm abdomen",
              "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"], "RescaleIntercept": "0", "RescaleSlope": "1",
              "RescaleType": "HU", "KVP": "120"}
    paths = []
    for k, (ds, pixels) in enumerate(_slice_datasets(sitk.Cast(image, sitk.sitkInt16), "CT", common, series)):
        path = folder / naming("CT", k)
        _save(_finish(ds, pixels), path)
        paths.append(path)
    return paths


def write_pet(suv: sitk.Image, folder: Path, common: dict, series_uid: str, naming) -> list[Path]:
    """The PET in Bq/ml as int16 with a rescale slope per slice (as scanners store it)."""
    start = SCAN - dt.timedelta(seconds=UPTAKE_S)
    isotope = pydicom.Dataset()
    isotope.Radiopharmaceutical = "Fluorodeoxyglucose"
    isotope.RadionuclideTotalDose = f"{DOSE_BQ:.6g}"
    isotope.RadionuclideHalfLife = f"{F18_HALF_LIFE_S}"
    isotope.RadiopharmaceuticalStartTime = start.strftime("%H%M%S")
    isotope.RadiopharmaceuticalStartDateTime = start.strftime("%Y%m%d%H%M%S")
    series = {"SeriesInstanceUID": series_uid, "SeriesNumber": 3, "SeriesDescription": "PET AC",
              "ImageType": ["ORIGINAL", "PRIMARY"], "Units": "BQML", "DecayCorrection": "START",
              "CorrectedImage": ["ATTN", "DECY", "SCAT"], "SeriesType": ["STATIC", "IMAGE"],
              "RadiopharmaceuticalInformationSequence": pydicom.Sequence([isotope]),
              "AcquisitionDate": SCAN.strftime("%Y%m%d"), "AcquisitionTime": SCAN.strftime("%H%M%S"),
              "RescaleIntercept": "0"}
    activity = sitk.Cast(suv, sitk.sitkFloat32) * suv_to_bqml_factor()
    paths = []
    for k, (ds, values) in enumerate(_slice_datasets(activity, "PT", common, series)):
        peak = float(np.max(np.abs(values))) or 1.0
        slope = peak / 32000.0
        ds.RescaleSlope = f"{slope:.10g}"
        pixels = np.round(values / float(ds.RescaleSlope)).astype(np.int16)
        path = folder / naming("PT", k)
        _save(_finish(ds, pixels), path)
        paths.append(path)
    return paths


def _layout(index: int):
    """File naming per patient: nested by series with numbered slices, or flat with opaque names."""
    if index % 2 == 0:
        return lambda modality, k: Path("CT" if modality == "CT" else "PET") / f"{k + 1:04d}.dcm"
    return lambda modality, k: Path(f"IM{(0 if modality == 'CT' else 5000) + k:06d}")


def _structure_rois(case: PhantomCase, index: int):
    """(label array [z, y, x], RoiSpecs, node id -> ROI name, tumour ROI name) for the export's contours."""
    from ..export.rois import PALETTE, RoiSpec

    nodes = sitk.GetArrayFromImage(case.lymph_nodes).astype(np.int32)
    positive = set(np.unique(sitk.GetArrayViewFromImage(case.gtv_ln)).tolist()) - {0}
    tumor_value = int(nodes.max()) + 1
    labels = nodes.copy()
    labels[sitk.GetArrayViewFromImage(case.tumor) > 0] = tumor_value
    tumor_name = TUMOR_NAMES[index % len(TUMOR_NAMES)]
    rois = [RoiSpec(1, tumor_name, (tumor_value,), (255, 0, 0), algorithm="MANUAL")]
    names = {}
    for node in sorted(set(np.unique(labels).tolist()) - {0, tumor_value}):
        pattern = (POSITIVE_NAMES if node in positive else NEGATIVE_NAMES)[(index + node) % 4]
        names[node] = pattern.format(i=node)
        rois.append(RoiSpec(len(rois) + 1, names[node], (node,), PALETTE[node % len(PALETTE)], algorithm="MANUAL"))
    return labels, rois, names, tumor_name


def _distractor_rois(labels: np.ndarray, rois: list, case: PhantomCase) -> tuple[np.ndarray, list]:
    """An External (body) ROI and two planning helpers on the free voxels, as a planning export carries them."""
    from ..export.rois import RoiSpec

    body = (sitk.GetArrayViewFromImage(case.ct) > -300) & (labels == 0)
    value = int(labels.max()) + 1
    out = labels.copy()
    zs = np.nonzero(body.any(axis=(1, 2)))[0]
    for n, name in enumerate(DISTRACTORS):  # three slabs of the body so the ROIs do not overlap
        part = np.zeros_like(body)
        lo, hi = zs[0] + n * len(zs) // 3, zs[0] + (n + 1) * len(zs) // 3
        part[lo:hi] = body[lo:hi]
        out[part] = value + n
        rois.append(RoiSpec(len(rois) + 1, name, (value + n,), (0, 128, 0)))
    return out, rois


def write_patient(case: PhantomCase, index: int, out_dir: Path, seed: int, use_seg: bool) -> ExportedPatient:
    """One patient's study into out_dir/<patient folder>/."""
    from ..export.rtstruct import build_rtstruct
    from ..export.seg import build_seg
    from ..io.dicom_series import read_dicom_series

    patient_id = f"PHANTOM{seed:03d}{index:03d}"
    folder = out_dir / f"patient_{index + 1:02d}"
    naming = _layout(index)
    study_uid = _uid("study", seed, index)
    common = {"PatientName": f"Phantom^{index + 1}", "PatientID": patient_id, "PatientBirthDate": "19500101",
              "PatientSex": "O", "PatientWeight": f"{WEIGHT_KG:g}", "StudyInstanceUID": study_uid,
              "StudyDate": SCAN.strftime("%Y%m%d"), "StudyTime": SCAN.strftime("%H%M%S"), "StudyID": "1",
              "AccessionNumber": "", "ReferringPhysicianName": "", "StudyDescription": "PET/CT phantom",
              "SeriesDate": SCAN.strftime("%Y%m%d"), "SeriesTime": SCAN.strftime("%H%M%S"),
              "FrameOfReferenceUID": _uid("frame", seed, index), "PositionReferenceIndicator": "",
              "Manufacturer": "LNStaging phantom", "PatientPosition": "HFS"}
    ct_paths = write_ct(case.ct, folder, common, _uid("ct", seed, index), naming)
    write_pet(case.pet, folder, common, _uid("pet", seed, index), naming)
    ct_series = read_dicom_series(ct_paths[0], what="CT")
    labels, rois, names, tumor_name = _structure_rois(case, index)
    labels, rois = _distractor_rois(labels, rois, case)
    if use_seg:
        ds = build_seg(ct_series, labels, rois[: len(rois) - len(DISTRACTORS)])
        path = folder / ("SEG" if index % 2 == 0 else "") / "seg.dcm"
    else:
        ds = build_rtstruct(ct_series, labels, rois, label="Plan contours")
        path = folder / ("RTSTRUCT" if index % 2 == 0 else "") / "RS.dcm"
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(ds, path)
    return ExportedPatient(patient_id, case, names, tumor_name, "SEG" if use_seg else "RTSTRUCT")


def write_organ_masks(case: PhantomCase, folder: Path) -> None:
    """The phantom's organs as one binary mask per organ, named as TotalSegmentator names its output files."""
    organs = sitk.GetArrayViewFromImage(case.organs)
    folder.mkdir(parents=True, exist_ok=True)
    for name in sorted(set(TOTALSEG_NAMES.values())):
        values = [v for v, n in TOTALSEG_NAMES.items() if n == name]
        mask = sitk.GetImageFromArray(np.isin(organs, values).astype(np.uint8))
        mask.CopyInformation(case.organs)
        sitk.WriteImage(mask, str(folder / f"{name}.nii.gz"), True)


def write_dicom_export(out_dir, seed: int, cases: int = 6, size="small", direction: str = "identity",
                       spacing=None, relations: str = "default", progress: Progress | None = None,
                       overwrite: bool = False) -> list[ExportedPatient]:
    """Write ``cases`` phantom patients (those of ``lnstaging phantom`` with the same seed) as OUT/dicom/ (the export;
    every third patient's contours are a DICOM SEG instead of an RTSTRUCT), OUT/organs/<PatientID>/ (TotalSegmentator
    style masks for ``dataset import --organs-from``) and OUT/phantom_export.json (the ROI names and node status).
    Atomic: the folder is complete or absent."""
    import json

    from ..io.atomic import atomic_directory

    progress = progress or Progress()
    exported = []
    with atomic_directory(out_dir, replace_marker=MANIFEST if overwrite else None) as tmp:
        for k in range(cases):
            progress.step(k / cases, f"patient {k + 1}/{cases}")
            case_direction = DIRECTION_CYCLE[k % 3] if direction == "mixed" else direction
            case = generate_case(case_seed(seed, k), size=size, spacing=spacing, direction=case_direction,
                                 relations=relations)
            patient = write_patient(case, k, tmp / "dicom", seed, use_seg=(k % 3 == 2))
            write_organ_masks(case, tmp / "organs" / patient.patient_id)
            exported.append(patient)
        positive = lambda p: set(np.unique(sitk.GetArrayViewFromImage(p.case.gtv_ln)).tolist())  # noqa: E731
        manifest = [{"patient_id": p.patient_id, "seed": p.case.seed, "contours": p.structure, "tumor_roi": p.tumor_name,
                     "node_rois": {name: int(node in positive(p)) for node, name in p.roi_names.items()},
                     "metastasis": p.case.metastasis} for p in exported]
        (tmp / MANIFEST).write_text(json.dumps({"seed": seed, "patients": manifest}, indent=1) + "\n")
    progress.step(1.0, "done")
    return exported
