"""``lnstaging dataset check DIR`` and ``lnstaging dataset import``: inspect a cohort folder, or build one from a
clinical DICOM export (docs/DATASET.md)."""

from __future__ import annotations

import sys
from pathlib import Path

from ._common import add_overwrite_argument


def register(sub):
    parser = sub.add_parser("dataset", help="inspect a cohort folder or import one from DICOM (docs/DATASET.md)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="report every problem, one per line; exit non-zero if any",
                               description="Check a cohort folder against docs/DATASET.md: files, image types, grids, "
                                           "labels, splits, candidate lists and patient labels; say per training "
                                           "stage which cases it can train on.")
    check.add_argument("dir", help="cohort folder holding dataset.json and cases/")
    check.set_defaults(func=main_check)

    imp = actions.add_parser(
        "import", help="a clinical DICOM export (CT, PET, RTSTRUCT/SEG) to a pseudonymised cohort folder",
        description="Find every patient and study in a DICOM export (any folder layout, a DICOMDIR too), pair CT, PET "
                    "and RTSTRUCT/SEG by study and Frame of Reference, rasterise the GTVp / GTVn / node ROIs onto the "
                    "CT, convert PET to SUVbw and write a cohort folder (docs/DATASET.md). Pseudonymous case ids; the "
                    "PatientID mapping goes to COHORT_patient_ids.csv beside the cohort (and the summary to "
                    "COHORT_import_summary.json). Resumable: finished cases are "
                    "skipped. One line per patient that cannot be imported; the others are.")
    imp.add_argument("--dicom", required=True, type=Path, help="export folder (or its DICOMDIR)")
    imp.add_argument("--out", required=True, type=Path, help="cohort folder to write (or to complete)")
    imp.add_argument("--roi-map", type=Path, help="JSON {\"regular expression\": role} with role tumor, gtv_ln, "
                                                  "lymph_nodes or ignore; tried before the default TG-263 patterns")
    imp.add_argument("--organs-from", type=Path, help="folder with one folder of organ masks (TotalSegmentator "
                                                      "output) per patient, named by PatientID or case id")
    imp.add_argument("--labels", type=Path, help="CSV with columns patient_id, metastasis (0/1): the patient label "
                                                 "(must agree with the GTVn ROIs)")
    add_overwrite_argument(imp, "cases imported before are imported again")
    imp.set_defaults(func=main_import)


def main_check(args) -> int:
    from ..dataset.check import check_dataset

    report = check_dataset(args.dir)
    for problem in report.problems:
        print(problem)
    if report.problems:
        print(f"lnstaging dataset check: {len(report.problems)} problem(s) in {args.dir}", file=sys.stderr)
        return 1
    print(f"OK: {report.summary()}")
    for line in report.stage_lines():
        print(line)
    return 0


def main_import(args) -> int:
    from ..dataset.dicom_import.cohort import IMPORT_MARKER, import_export, mapping_path, summary_path
    from ..io.images import require_exists
    from ..errors import OutputError
    from ..io.outputs import check_output, resolved

    dicom = require_exists(args.dicom, "--dicom")
    inputs = {"--dicom": dicom, "--roi-map": args.roi_map, "--organs-from": args.organs_from, "--labels": args.labels}
    out = check_output(args.out, kind="folder", write_into=True, inputs=inputs)
    export = resolved(dicom if dicom.is_dir() else dicom.parent)
    if export in out.parents:
        raise OutputError(f"--out {args.out} is inside the export --dicom {args.dicom}: write the cohort outside the "
                          "export (it is read again on every resume).")
    if out.is_dir() and any(out.iterdir()) and not (out / IMPORT_MARKER).is_file():
        raise OutputError(f"--out {args.out} exists and is not a cohort `lnstaging dataset import` wrote: give a new "
                          "folder (an import completes only its own cohorts).")
    check_output(mapping_path(out), kind="file", inputs=inputs, overwrite=True, option="PatientID mapping")
    check_output(summary_path(out), kind="file", inputs=inputs, overwrite=True, option="import summary")
    report = import_export(dicom.absolute(), out, roi_map=args.roi_map, organs_from=args.organs_from,
                           labels=args.labels, overwrite=args.overwrite)
    if report.failed:
        print(f"lnstaging dataset import: {len(report.failed)} case(s) not imported (one line each above); the rest "
              "is in the cohort.", file=sys.stderr)
        return 1
    return 0
