"""``lnstaging dataset import``: a clinical DICOM export to a trainable cohort folder, pseudonymised, resumable.

Patients get pseudonymous case ids (pt0001, pt0001s2 for a second PET/CT); the PatientID mapping goes to a CSV beside
the cohort (COHORT_patient_ids.csv), never into it, and so does the summary (COHORT_import_summary.json). A case folder that exists is complete (atomic per case) and is
skipped on a re-run; cases run as Dask tasks on an embedded LocalCluster (127.0.0.1), as run-batch's do.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from ...errors import Cancelled, DatasetError, InputFileError
from ...io.atomic import atomic_file
from ..format import CASES_DIR, PATIENT_JSON, assign_splits, write_description
from .case_import import CaseOptions, import_case_task, organ_name
from .discover import CasePlan, patient_problem, pet_frames, plan_acquisition, scan_export
from .roi_roles import load_roi_map

MAPPING_SUFFIX = "_patient_ids.csv"
MAPPING_COLUMNS = ("case_id", "patient_id", "study_uid", "frame_of_reference_uid")
IMPORT_MARKER = ".lnstaging-import"  # in the cohort: a folder this command may complete on a re-run
SUMMARY_SUFFIX = "_import_summary.json"  # beside the cohort too: its notes quote the export's ROI names


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already complete from an earlier run
    failed: dict[str, str] = field(default_factory=dict)  # case or patient pseudonym -> one line
    notes: dict[str, list[str]] = field(default_factory=dict)
    unreadable: int = 0
    mapping_file: Path | None = None

    def lines(self) -> list[str]:
        return [f"{key}: {why}" for key, why in sorted(self.failed.items())]


def mapping_path(out: Path) -> Path:
    """Where the PatientID mapping goes: beside the cohort folder, not inside it."""
    return out.parent / f"{out.name}{MAPPING_SUFFIX}"


def summary_path(out: Path) -> Path:
    """The import summary (refusals, notes quoting ROI names) goes beside the cohort, like the mapping."""
    return out.parent / f"{out.name}{SUMMARY_SUFFIX}"


def _read_mapping(path: Path) -> list[dict]:
    if not path.exists():
        return []
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputFileError(f"{path} cannot be read ({error}): restore it (it maps case ids to PatientIDs).") from None
    if rows and not set(MAPPING_COLUMNS) <= set(rows[0]):
        raise InputFileError(f"{path} is not an lnstaging PatientID mapping (columns {', '.join(MAPPING_COLUMNS)}).")
    return rows


def assign_case_ids(scan, rows: list[dict]) -> dict[tuple[str, str], str]:
    """(patient key, PET Frame of Reference) -> case id, keeping the ids of an earlier run; a patient without PET
    gets its pseudonym under the frame "" (for its one line). New patients are numbered in an order that does not
    follow their PatientIDs (sha256), so case ids leak nothing."""
    ids = {(r["patient_id"], r["frame_of_reference_uid"]): r["case_id"] for r in rows}
    stems = {r["patient_id"]: r["case_id"].split("s")[0] for r in rows}
    used = {int(stem[2:]) for stem in stems.values() if stem[2:].isdigit()}
    for key in sorted(scan.patients, key=lambda k: hashlib.sha256(k.encode()).hexdigest()):
        if key not in stems:
            number = max(used, default=0) + 1
            used.add(number)
            stems[key] = f"pt{number:04d}"
        frames = pet_frames(scan.patients[key]) or [""]
        taken = {case_id for (patient, frame), case_id in ids.items() if patient == key and frame}
        for frame in frames:
            if (key, frame) in ids and (frame or not taken):
                continue
            case_id = stems[key] if stems[key] not in taken else f"{stems[key]}s{len(taken) + 1}"
            taken.add(case_id)
            ids[(key, frame)] = case_id
    return ids


def _write_mapping(path: Path, ids: dict[tuple[str, str], str], studies: dict[tuple[str, str], str]) -> None:
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(MAPPING_COLUMNS)
        for (patient, frame), case_id in sorted(ids.items(), key=lambda item: (item[1], item[0][1])):
            writer.writerow([case_id, patient, studies.get((patient, frame), ""), frame])


def read_labels(path: Path | None) -> dict[str, int]:
    """--labels CSV: columns patient_id (the export's PatientID) and metastasis (0/1)."""
    if path is None:
        return {}
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputFileError(f"--labels {path} cannot be read ({error}).") from None
    if not rows or not {"patient_id", "metastasis"} <= set(rows[0]):
        raise InputFileError(f"--labels {path} needs the columns patient_id and metastasis (0 or 1).")
    labels = {}
    for line, row in enumerate(rows, start=2):
        if row["metastasis"].strip() not in ("0", "1"):
            raise InputFileError(f"--labels {path} line {line}: metastasis must be 0 or 1.")
        labels[row["patient_id"].strip()] = int(row["metastasis"])
    return labels


def _organ_folder(organs_from: Path | None, patient: str, case_id: str) -> Path | None:
    if organs_from is None:
        return None
    for name in (case_id, patient):
        if (organs_from / name).is_dir():
            return organs_from / name
    return None


def _organ_table(folders: list[Path], out: Path) -> dict[str, int]:
    """One label id per organ name over the whole cohort, so organ_labels is shared by every case: the ids of an
    earlier run (its dataset.json) are kept, new names follow in sorted order."""
    from ...anatomy.structures import MASK_SUFFIXES

    table: dict[str, int] = {}
    try:
        earlier = json.loads((out / "dataset.json").read_text()).get("organ_labels", {})
        table = {str(name): int(value) for value, name in earlier.items()}
    except (OSError, ValueError, AttributeError):
        pass  # no earlier run (or an unreadable description, rewritten at the end)
    names = sorted({organ_name(p.name) for folder in folders for p in folder.iterdir()
                    if p.name.endswith(MASK_SUFFIXES) and not p.name.startswith(".")})
    for name in names:
        if name not in table:
            table[name] = max(table.values(), default=0) + 1
    return table


def plan_cases(scan, ids, rules, report: ImportReport) -> list[tuple[str, str, CasePlan]]:
    """(case id, patient key, plan) of every importable PET/CT; what cannot be imported is one line per case id."""
    plans = []
    for key, export in scan.patients.items():
        frames = pet_frames(export)
        if not frames:
            report.failed[ids[(key, "")]] = patient_problem(export)
        for frame in frames:
            case_id = ids[(key, frame)]
            plan = plan_acquisition(export, frame, rules)
            if isinstance(plan, str):
                report.failed[case_id] = plan
            else:
                # headers stay here: workers re-read the files (what Dask pickles is never a user's file)
                plans.append((case_id, key, replace(plan, ct=replace(plan.ct, headers=None),
                                                    pet=replace(plan.pet, headers=None))))
    return plans


def import_export(dicom: Path, out: Path, *, roi_map: Path | None = None, organs_from: Path | None = None,
                  labels: Path | None = None, overwrite: bool = False, workers: int | None = None,
                  on_line=print) -> ImportReport:
    """Import every pairable patient of ``dicom`` into the cohort ``out``; see the module docstring."""
    rules = load_roi_map(roi_map)
    label_of = read_labels(labels)
    if organs_from is not None and not Path(organs_from).is_dir():
        raise InputFileError(f"--organs-from {organs_from} is not a folder: give the folder holding one organ-mask "
                             "folder per patient.")
    report = ImportReport(mapping_file=mapping_path(out))
    scan = scan_export(dicom)
    report.unreadable = len(scan.unreadable)
    for path in scan.unreadable:
        on_line(f"unreadable file (not imported): {path.relative_to(dicom if Path(dicom).is_dir() else Path(dicom).parent)}")
    if not scan.patients:
        raise InputFileError(f"--dicom {dicom} holds no CT, PET, RTSTRUCT or SEG files: give the export folder.")
    rows = _read_mapping(report.mapping_file)
    ids = assign_case_ids(scan, rows)
    plans = plan_cases(scan, ids, rules, report)
    for case_id, why in sorted(report.failed.items()):
        on_line(f"{case_id}: {why}")
    if not plans and not (out / CASES_DIR).is_dir():  # refused before anything is written
        raise DatasetError(f"no patient of {dicom} has a CT, a PET and contours on one Frame of Reference "
                           f"({len(report.failed)} refused, reasons above): fix the export and run again.")
    studies = {(r["patient_id"], r["frame_of_reference_uid"]): r["study_uid"] for r in rows}
    for key, export in scan.patients.items():
        for series in export.series:
            if series.modality == "PT":
                studies[(key, series.frame_of_reference_uid or "")] = str(series.headers[0].get("StudyInstanceUID", ""))
    _write_mapping(report.mapping_file, ids, studies)

    cases_dir = out / CASES_DIR
    done = [c for c, _, _ in plans if (cases_dir / c / PATIENT_JSON).is_file()]
    todo = plans if overwrite else [p for p in plans if p[0] not in done]
    report.skipped = [] if overwrite else done
    folders = {c: _organ_folder(organs_from, key, c) for c, key, _ in plans}
    for case_id, _, plan in plans:
        if organs_from is not None and folders[case_id] is None:
            plan.notes.append("no folder for this patient in --organs-from (named by case id or PatientID): "
                              "imported without organ masks")
    organ_ids = _organ_table([f for f in folders.values() if f is not None], out)
    for case_id, _, plan in todo:
        for note in plan.notes:
            on_line(f"{case_id}: note: {note}")
    jobs = []
    for case_id, key, plan in todo:
        options = CaseOptions(rules=rules, organs_dir=folders[case_id], organ_ids=organ_ids,
                              metastasis=label_of.get(key))
        jobs.append((case_id, plan, out, options, overwrite))
    print(f"{len(plans)} importable PET/CT acquisition(s): {len(report.skipped)} already imported (skipped), "
          f"{len(jobs)} to import.")
    out.mkdir(parents=True, exist_ok=True)
    (out / IMPORT_MARKER).write_text("written by lnstaging dataset import; resumable\n")
    outcomes, cancelled = _run(jobs, out, workers)
    for case_id, error, _seconds, notes in outcomes:
        if error is None:
            report.imported.append(case_id)
            report.notes[case_id] = [*next(p.notes for c, _, p in todo if c == case_id), *notes]
            for note in notes:
                on_line(f"{case_id}: {note}")
        else:
            report.failed[case_id] = error
            on_line(f"{case_id}: {error}")
    finished = [c for c in cancelled if (out / CASES_DIR / c / PATIENT_JSON).is_file()]  # done as Ctrl-C came
    report.imported += finished
    cancelled = [c for c in cancelled if c not in finished]
    if not cancelled or report.imported or report.skipped:
        _write_cohort(out, report, organ_ids, bool(organ_ids))
    if cancelled:
        raise Cancelled(f"interrupted: {len(cancelled)} case(s) not imported, no partial case folder left; the "
                        f"{len(report.imported)} finished are in the cohort; run the same command again to continue.")
    return report


def _run(jobs: list[tuple], out: Path, workers: int | None) -> tuple[list[tuple], list[str]]:
    """(outcomes, case ids cancelled by Ctrl-C): the jobs on an embedded Dask LocalCluster (as run-batch), with a
    progress bar."""
    if not jobs:
        return [], []
    from distributed import Client

    from ...commands.run_batch import _progress_bar
    from ...scaling import batch, clusters

    clusters.quiet_dask_logs()
    sizing = clusters.local_sizing(workers or min(len(jobs), clusters.local_sizing().workers))
    cluster = clusters.start_local_cluster(sizing)
    client = Client(cluster)
    cancelled: list[str] = []
    try:
        with _progress_bar(len(jobs)) as bar:
            try:
                outcomes = batch.run_cases(client, jobs, out / CASES_DIR, lambda outcome: bar.update(1),
                                           task=import_case_task)
            except KeyboardInterrupt as interrupt:
                outcomes, cancelled = interrupt.outcomes, interrupt.unfinished
    finally:
        client.close()
        cluster.close()
    if cancelled:  # our workers are stopped: their temporaries can go
        batch.remove_partial_folders(out / CASES_DIR, cancelled)
    return [o if len(o) == 4 else (*o, []) for o in outcomes], cancelled


def _write_cohort(out: Path, report: ImportReport, organ_ids: dict[str, int], organs_given: bool) -> None:
    """dataset.json over every complete case folder (this run's and earlier ones) and the import summary."""
    cases_dir = out / CASES_DIR
    case_ids = sorted(p.name for p in cases_dir.iterdir() if (p / PATIENT_JSON).is_file()) if cases_dir.is_dir() else []
    summary = {"imported": sorted(report.imported), "skipped_already_imported": sorted(report.skipped),
               "failed": dict(sorted(report.failed.items())), "notes": report.notes,
               "unreadable_files": report.unreadable}
    if not case_ids:
        raise DatasetError(f"no patient of the export could be imported ({len(report.failed)} refused, reasons "
                           "above): fix the export and run again.")
    patients = sorted({c.split("s")[0] for c in case_ids})
    fold_of, test = assign_splits(patients, folds=5, test_fraction=0.2, seed=0)
    folds = {c: fold_of[c.split("s")[0]] for c in case_ids if c.split("s")[0] in fold_of}
    test_cases = [c for c in case_ids if c.split("s")[0] in test]
    organ_labels = {value: name for name, value in organ_ids.items()}
    write_description(out, name=out.name, case_ids=case_ids, organ_labels=organ_labels,
                      organ_mapping="totalsegmentator", folds=folds, test=test_cases,
                      description="Imported from a DICOM export by lnstaging dataset import "
                                  f"({'organ masks from --organs-from' if organs_given else 'no organ masks'}).")
    with atomic_file(summary_path(out)) as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"Imported {len(report.imported)}, already there {len(report.skipped)}, refused {len(report.failed)}; "
          f"cohort {out} has {len(case_ids)} case(s). PatientID mapping (keep it, outside the cohort): "
          f"{report.mapping_file}", file=sys.stdout)
