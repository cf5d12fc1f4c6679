"""Which cases a review serves, and where each case's images, review state and exports live.

``lnstaging review DIR`` accepts the results folder of ``lnstaging run`` (one case) or the output folder of
``lnstaging run-batch`` (one results folder per case: a case chooser). A results folder holds no CT or PET
(see LNStagingLib/results.py), so the images come from, in this order: ``--ct``/``--pet`` (one case only),
files named ct.*/pet.* in the case folder, the cohort folder given with ``--data`` (docs/DATASET.md:
DATA/cases/<case_id>/ct.nii.gz), or the inputs the run recorded in provenance.json (io/case_inputs.py). Images are
files (NIfTI/NRRD/MHA) or DICOM folders, as ``lnstaging run`` takes them. The CT DICOM folder for the RTSTRUCT
export is ``--ct-dicom`` (one case) or ``--ct-dicom ROOT`` with ROOT/<case_id>/ (a batch), else the run's CT when
it was a DICOM folder. A PET-only run (``lnstaging run`` without --ct) has no CT: its case shows the PET alone and
has no RTSTRUCT export (that needs the planning CT).

The review state is written to CASE/review/ by the scene adapter's ``save_review`` (a review folder: the edited
results, GTV_LN.seg.nrrd, candidates.tsv, centroids.mrk.json, review.json); exports go to CASE/export/.
Pure Python: no trame, no MRML.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import InputFileError
from ..io import case_inputs

REVIEW_SUBDIR = "review"
EXPORT_SUBDIR = "export"
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


@dataclass
class ReviewCase:
    case_id: str
    results_dir: Path
    ct: Optional[Path]  # None: a PET-only run, shown on its PET
    pet: Optional[Path] = None
    ct_dicom: Optional[Path] = None

    @property
    def pet_only(self) -> bool:
        return self.ct is None

    @property
    def review_dir(self) -> Path:
        return self.results_dir / REVIEW_SUBDIR

    @property
    def export_dir(self) -> Path:
        return self.results_dir / EXPORT_SUBDIR

    def study_date(self) -> str:
        """The CT's (a PET-only run: the PET's) Study Date (YYYY-MM-DD) from its DICOM folder, or '' (NIfTI images
        carry none)."""
        folder = self.pet if self.pet_only else self.ct_dicom
        if folder is None or not folder.is_dir():
            return ""
        import pydicom

        for path in sorted(folder.iterdir())[:50]:
            try:
                value = str(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["StudyDate"]).get("StudyDate", ""))
            except Exception:  # not a DICOM file: try the next one
                continue
            if len(value) == 8:
                return f"{value[:4]}-{value[4:6]}-{value[6:]}"
        return ""

    def load_images(self):
        """(CT or None for a PET-only run, PET SUV or None) as SimpleITK images, each on its own grid; DICOM folders
        are read (and the PET converted to SUV) the way the run read them (provenance.json "image_reading")."""
        from ..io.petct import load_ct, load_pet_suv

        reading = case_inputs.recorded_image_reading(self.results_dir)
        ct = None if self.pet_only else load_ct(self.ct, reading.get("ct_series_uid"))[0]
        pet = None
        if self.pet is not None:
            suv = {k: reading.get(k) for k in ("weight_kg", "dose_bq", "injection_time")}
            pet, _, _ = load_pet_suv(self.pet, reading.get("pet_series_uid"), accept_timing=bool(
                reading.get("accept_timing")), **suv)
        return ct, pet

    def has_saved_review(self) -> bool:
        return (self.review_dir / "review.json").is_file()

    @property
    def export_kind(self) -> str:
        """What the page's Export writes: an RTSTRUCT on the planning CT, or for a PET-only run a DICOM SEG on the
        run's PET DICOM series (export/pet_only.py, as 'lnstaging export seg --results')."""
        return "seg" if self.pet_only else "rtstruct"

    def export_reference(self) -> tuple[Optional[Path], Optional[str]]:
        """(DICOM folder, SeriesInstanceUID or None) the export references: the planning CT's, or a PET-only run's
        own PET series (checked against the run's sha256; ExportError in one line otherwise)."""
        if not self.pet_only:
            return self.ct_dicom, None
        from ..export.pet_only import pet_only_reference, pet_series_uid

        return pet_only_reference(self.results_dir, "seg"), pet_series_uid(self.results_dir)

    def export_disabled_reason(self) -> str:
        """Empty when the export can run; otherwise why not, in the user's words."""
        if self.pet_only:  # a PET DICOM series: Export writes the SEG on it (export_kind); an image file: nothing
            return "" if self.pet is not None and self.pet.is_dir() else PET_ONLY_EXPORT
        if self.ct_dicom is None:
            return ("RTSTRUCT export needs the planning CT as DICOM: restart with "
                    "'lnstaging review DIR --ct-dicom CT_DICOM_FOLDER'.")
        if not self.ct_dicom.is_dir():
            return f"The CT DICOM folder {self.ct_dicom} does not exist: check --ct-dicom."
        return ""


PET_ONLY_EXPORT = ("This run had no CT (PET-only): an RTSTRUCT needs the planning CT; run 'lnstaging run' again with "
                   "the planning CT given, and review and export that run.")


def is_results_folder(folder: Path) -> bool:
    return (Path(folder) / "candidates.json").is_file()


def _image_in(folder: Path, stem: str) -> Optional[Path]:
    for suffix in IMAGE_SUFFIXES:
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


def _cohort_case_dir(data: Optional[Path], case_id: str) -> Optional[Path]:
    if data is None:
        return None
    for folder in (Path(data) / "cases" / case_id, Path(data) / case_id):
        if folder.is_dir():
            return folder
    return None


def find_cases(folder: Path | str, ct: Optional[Path] = None, pet: Optional[Path] = None,
               data: Optional[Path] = None, ct_dicom: Optional[Path] = None) -> list[ReviewCase]:
    """The cases under ``folder`` (a results folder, or a folder of results folders), with their images.

    Raises InputFileError with what to do when the folder holds no results or a case has no CT, or when a given path
    goes through a symbolic link loop (said as such, not as a missing file).
    """
    from ..io.outputs import resolved

    for path, option in ((folder, "RESULTS"), (ct, "--ct"), (pet, "--pet"), (data, "--data"), (ct_dicom, "--ct-dicom")):
        if path is not None:
            resolved(path, option)  # a loop is one line naming the option
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"{folder} is not a folder: give the --out folder of 'lnstaging run' or 'run-batch'.")
    if is_results_folder(folder):
        case_dirs = [folder]
    else:
        case_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and is_results_folder(p))
    if not case_dirs:
        raise InputFileError(f"{folder} holds no results of 'lnstaging run' (no candidates.json in it or its "
                             "sub-folders): run the pipeline first.")
    single = len(case_dirs) == 1 and case_dirs[0] == folder
    if not single and (ct is not None or pet is not None):
        raise InputFileError("--ct/--pet name the images of one case; for a batch give the cohort folder with --data.")
    cases = []
    for case_dir in case_dirs:
        case_id = case_dir.name
        cohort_dir = _cohort_case_dir(data, case_id)
        pet_only = case_inputs.is_pet_only_run(case_dir)
        if pet_only and single and (ct is not None or ct_dicom is not None):
            option = "--ct" if ct is not None else "--ct-dicom"
            raise InputFileError(f"Case '{case_id}' was run without a CT (PET-only): its nodes are on the PET grid, "
                                 f"not on a CT; leave {option} out, or run 'lnstaging run' again with --ct.")
        ct_path = None if pet_only else ct if single and ct is not None else (
            _image_in(case_dir, "ct") or (cohort_dir and _image_in(cohort_dir, "ct"))
            or case_inputs.recorded_input_path(case_dir, "ct"))
        pet_path = pet if single and pet is not None else (
            _image_in(case_dir, "pet") or (cohort_dir and _image_in(cohort_dir, "pet"))
            or case_inputs.recorded_input_path(case_dir, "pet"))
        if pet_only and not pet_path:
            raise case_inputs.missing_recorded_image(case_dir, "pet")
        if not ct_path and not pet_only:
            if case_inputs.read_recorded_inputs(case_dir).get("ct"):
                raise case_inputs.missing_recorded_image(case_dir, "ct")
            raise InputFileError(f"No CT for case '{case_id}': give it with --ct FILE (one case) or the cohort folder "
                                 "with --data DIR (a batch), or put ct.nii.gz into the results folder.")
        for path, what in ((ct_path, "CT"), (pet_path, "PET")):
            if path and not Path(path).exists():
                raise InputFileError(f"The {what} {path} does not exist: check --{what.lower()}.")
        dicom = None
        if pet_only:
            pass  # no CT to export onto (ReviewCase.export_disabled_reason says so)
        elif ct_dicom is not None:
            dicom = Path(ct_dicom) if single else Path(ct_dicom) / case_id
        elif ct_path is not None and Path(ct_path).is_dir():
            dicom = Path(ct_path)  # the run's CT was a DICOM series: the RTSTRUCT goes onto it
        cases.append(ReviewCase(case_id, case_dir, Path(ct_path) if ct_path else None,
                                Path(pet_path) if pet_path else None, dicom))
    return cases


def check_images_match_run(case: ReviewCase) -> Optional[str]:
    """io.case_inputs.check_images_match_run for a case's CT and PET (the one check of review and report)."""
    return case_inputs.check_images_match_run(case.results_dir, {"ct": case.ct, "pet": case.pet}, case.case_id)
