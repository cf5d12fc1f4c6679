"""Find the patients of a DICOM export (any folder layout, a DICOMDIR's folder too) and pair their objects.

A case is one PET/CT acquisition: a PET series with the CT on its Frame of Reference (whatever study they are filed
in) and the RTSTRUCT or SEG drawn on that frame. Headers only (pydicom, stop_before_pixels). What cannot be paired
becomes one sentence per case, naming it by pseudonym only: the export's PatientIDs never reach a message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from ...io.dicom_series import SeriesInfo, series_key, sop_instance_uid
from ...io.images import is_dicom_file
from .roi_roles import RoiRules

IMAGE_MODALITIES = ("CT", "PT")
STRUCTURE_MODALITIES = ("RTSTRUCT", "SEG")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
MEDIA_DIRECTORY_STORAGE = "1.2.840.10008.1.3.10"  # a DICOMDIR: an index, not an object to import


@dataclass
class StructureObject:
    """One RTSTRUCT or SEG file, with the frames and series it says it was drawn on."""

    path: Path
    modality: str
    study_uid: str
    frames: set[str]
    series: set[str]
    names: tuple[str, ...] = ()  # ROI names / segment labels
    approved: bool = False  # RTSTRUCT ApprovalStatus APPROVED
    stamp: str = ""  # StructureSetDate+Time (SEG: ContentDate+Time): which version is newer


@dataclass
class PatientExport:
    """Everything the export holds for one PatientID: image series and structure objects."""

    key: str  # PatientID (or the study UID when the export has none); never printed
    series: list[SeriesInfo] = field(default_factory=list)
    structures: list[StructureObject] = field(default_factory=list)


@dataclass
class ExportScan:
    patients: dict[str, PatientExport]
    unreadable: list[Path]  # files that look like DICOM but cannot be parsed
    ignored: int  # other files (not DICOM, DICOMDIR, modalities not imported)


@dataclass
class CasePlan:
    """What one case (one PET/CT acquisition) is imported from (picklable: sent to a Dask worker)."""

    ct: SeriesInfo
    pet: SeriesInfo
    structures: list[Path]
    study_uid: str
    notes: list[str] = field(default_factory=list)  # choices made that the user should know of


def _looks_like_dicom(path: Path) -> bool:
    return path.suffix.lower() in DICOM_SUFFIXES or is_dicom_file(path)


def _structure(path: Path, ds: Dataset) -> StructureObject:
    modality = str(ds.get("Modality", "")).upper()
    frames, series = set(), set()
    if modality == "RTSTRUCT":
        from ...io.rtstruct_read import referenced_uids, roi_names

        frames, series = referenced_uids(ds)
        names = tuple(roi_names(ds).values())
        stamp = f"{ds.get('StructureSetDate', '')}{ds.get('StructureSetTime', '')}"
    else:
        if ds.get("FrameOfReferenceUID"):
            frames.add(str(ds.FrameOfReferenceUID))
        series = {str(item.SeriesInstanceUID) for item in ds.get("ReferencedSeriesSequence", [])
                  if item.get("SeriesInstanceUID")}
        names = tuple(str(item.get("SegmentLabel", "")) for item in ds.get("SegmentSequence", []))
        stamp = f"{ds.get('ContentDate', '')}{ds.get('ContentTime', '')}"
    approved = str(ds.get("ApprovalStatus", "")).upper() == "APPROVED"
    return StructureObject(path, modality, str(ds.get("StudyInstanceUID", "")), frames, series, names, approved, stamp)


def _versions(chosen: list[StructureObject], rules: RoiRules, notes: list[str]) -> list[StructureObject]:
    """Structure sets sharing an ROI name a rule gives a role are versions of one another: the approved, then the
    newest one is kept. Sets with different ROIs (a GTVp set, a nodes set; both with an External) are all kept."""
    def named(item: StructureObject) -> set[str]:
        return {n for n in item.names if rules.roles(n)}

    kept: list[StructureObject] = []
    for item in sorted(chosen, key=lambda o: (o.approved, o.stamp), reverse=True):
        if any(named(item) & named(other) for other in kept):
            notes.append(f"{item.modality} with the same ROI names as a newer or approved one not imported "
                         f"(an earlier version)")
            continue
        kept.append(item)
    return kept


def scan_export(root: os.PathLike | str) -> ExportScan:
    """Headers of every file below ``root`` grouped by patient; unreadable DICOM-looking files are listed."""
    root = Path(root)
    if root.is_file():  # a DICOMDIR given: its folder holds the files it indexes
        root = root.parent
    groups: dict[str, dict[str, list[tuple[Path, Dataset]]]] = {}
    structures: dict[str, list[StructureObject]] = {}
    unreadable, ignored, seen = [], 0, set()
    for folder, _dirs, names in os.walk(root):
        for name in sorted(names):
            path = Path(folder) / name
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
                modality = str(ds.get("Modality", "")).upper()
            except (pydicom.errors.InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError,
                    AttributeError):
                if _looks_like_dicom(path):
                    unreadable.append(path)
                else:
                    ignored += 1
                continue
            if not modality and "SOPClassUID" not in ds and _looks_like_dicom(path) and str(
                    getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID", "")) != MEDIA_DIRECTORY_STORAGE:
                unreadable.append(path)  # a DICOM file cut short: its main data set is missing
                continue
            if modality not in IMAGE_MODALITIES + STRUCTURE_MODALITIES:
                ignored += 1  # DICOMDIR, RTPLAN, RTDOSE, MR, SR, ...
                continue
            instance = sop_instance_uid(ds)
            if instance and instance in seen:
                ignored += 1  # the same object exported twice (two folders of one export): read once
                continue
            seen.add(instance)
            patient = str(ds.get("PatientID", "") or "") or f"study:{ds.get('StudyInstanceUID', '')}"
            if modality in STRUCTURE_MODALITIES:
                structures.setdefault(patient, []).append(_structure(path, ds))
            else:
                groups.setdefault(patient, {}).setdefault(series_key(ds, path), []).append((path, ds))
    patients = {}
    for key in sorted(set(groups) | set(structures)):
        export = PatientExport(key, structures=structures.get(key, []))
        for uid, items in groups.get(key, {}).items():
            first = items[0][1]
            if "ImagePositionPatient" not in first and "NumberOfFrames" not in first:
                continue  # localiser-like objects without geometry
            export.series.append(SeriesInfo(
                key=uid, series_instance_uid=str(first.get("SeriesInstanceUID", "") or "") or None,
                modality=str(first.get("Modality", "")).upper(), description=str(first.get("SeriesDescription", "")),
                frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "")) or None,
                files=tuple(p for p, _ in items), headers=tuple(d for _, d in items)))
        patients[key] = export
    return ExportScan(patients, unreadable, ignored)


def _study_of(info: SeriesInfo) -> str:
    return str(info.headers[0].get("StudyInstanceUID", "")) if info.headers else ""


def _listing(series: list[SeriesInfo]) -> str:
    return "; ".join(f"'{s.description}' ({len(s.files)} files)" for s in series)


def _is_localiser(info: SeriesInfo) -> bool:
    kinds = [str(v).upper() for v in info.headers[0].get("ImageType", [])] if info.headers else []
    return "LOCALIZER" in kinds or len(info.files) < 3 and "NumberOfFrames" not in info.headers[0]


def _attenuation_corrected(info: SeriesInfo) -> bool:
    return "ATTN" in [str(v).upper() for v in info.headers[0].get("CorrectedImage", [])]


def pet_frames(export: PatientExport) -> list[str]:
    """The Frames of Reference the patient's PET series lie on: one PET/CT acquisition, one case, each."""
    return sorted({s.frame_of_reference_uid or "" for s in export.series if s.modality == "PT"})


def patient_problem(export: PatientExport) -> str:
    """Why a patient without any PET series gives no case."""
    cts = [s for s in export.series if s.modality == "CT" and not _is_localiser(s)]
    if cts:
        return f"no PET series for this patient (it holds CT {_listing(cts)}): export the PET with the CT."
    return "no CT or PET series for this patient (only structure sets or other objects): export the images."


def plan_acquisition(export: PatientExport, frame: str, rules: RoiRules) -> CasePlan | str:
    """The case of the PET/CT on one Frame of Reference, or a sentence saying why it cannot be imported."""
    pets = [s for s in export.series if s.modality == "PT" and (s.frame_of_reference_uid or "") == frame]
    if len(pets) > 1 and any(_attenuation_corrected(p) for p in pets):
        pets = [p for p in pets if _attenuation_corrected(p)]  # drop non-attenuation-corrected reconstructions
    if len(pets) > 1:
        return (f"{len(pets)} PET series on one Frame of Reference ({_listing(pets)}): export one PET "
                "reconstruction per acquisition.")
    pet = pets[0]
    cts = [s for s in export.series if s.modality == "CT" and not _is_localiser(s)
           and frame and s.frame_of_reference_uid == frame]
    if not cts:
        elsewhere = [s for s in export.series if s.modality == "CT" and not _is_localiser(s)]
        if elsewhere:
            return ("the CT and the PET have different Frames of Reference (not one PET/CT acquisition; a planning "
                    "CT?): export the CT acquired with the PET.")
        return f"no CT series with the PET '{pet.description}': export the CT acquired with the PET."
    study = _study_of(pet)
    # a structure set naming no frame at all (some planning systems): taken when filed in the PET/CT's study; the
    # reader then checks its contours against the CT's geometry
    structures = [o for o in export.structures if frame in o.frames or (not o.frames and o.study_uid == study)]
    notes = []
    if len(cts) > 1:  # the structure set decides which CT it was drawn on
        drawn = [c for c in cts if any(c.series_instance_uid in o.series for o in structures)]
        if len(drawn) != 1:
            return (f"{len(cts)} CT series on the PET's Frame of Reference ({_listing(cts)}) and no structure set "
                    "naming one of them: export only the CT the contours were drawn on.")
        notes.append(f"{len(cts)} CT series with this PET: imported '{drawn[0].description}', the one the contours "
                     "were drawn on")
        cts = drawn
    ct = cts[0]
    if not structures:
        if export.structures:
            return (f"the {export.structures[0].modality} is drawn on another Frame of Reference than the PET/CT (a "
                    "planning CT?): export contours drawn on this PET/CT's CT, or register and re-contour.")
        return "no RTSTRUCT or SEG on the PET/CT's Frame of Reference: export the contours with the images."
    structures = _versions(structures, rules, notes)
    drawn_on_ct = [o for o in structures if ct.series_instance_uid in o.series]  # not those drawn on the PET
    chosen = drawn_on_ct or structures
    return CasePlan(ct=ct, pet=pet, structures=[o.path for o in chosen], study_uid=study, notes=notes)
