"""``lnstaging report RESULTS``: report.html regenerated from the saved review (docs/REVIEW.md, "The report")."""

from __future__ import annotations

from pathlib import Path

from ._common import add_overwrite_argument


def register(sub) -> None:
    parser = sub.add_parser("report", help="write report.html from a results folder and its saved review",
                            description="Write the one-page report (print it to A4) of a results folder of "
                                        "'lnstaging run', with the decisions, edits and export of its saved review "
                                        "(RESULTS/review/, written by 'lnstaging review' or the Slicer module). "
                                        "Written to RESULTS/review/report.html (RESULTS/report.html before any "
                                        "review) unless --out is given.")
    parser.add_argument("results", type=Path, metavar="RESULTS", help="results folder of 'lnstaging run'")
    parser.add_argument("--ct", type=Path, help="the CT of the case: a file or DICOM folder (default: the one the run "
                                                "read, from provenance.json)")
    parser.add_argument("--pet", type=Path, help="the PET of the case: an SUV file or DICOM folder (default: the run's)")
    parser.add_argument("--data", type=Path, help="cohort folder (docs/DATASET.md) holding the case's ct/pet")
    parser.add_argument("--ct-dicom", type=Path, help="CT DICOM folder: its study date goes into the report")
    parser.add_argument("--allow-other-images", action="store_true",
                        help="accept a CT/PET whose checksum differs from the run's inputs (provenance.json), e.g. "
                             "the same scan converted to another format; by default such images are refused")
    parser.add_argument("--out", type=Path, help="output file (default RESULTS/review/report.html, regenerated)")
    add_overwrite_argument(parser, "the --out file")
    parser.set_defaults(func=main)


def main(args) -> int:
    import sys

    from ..errors import InputFileError
    from ..report import write_reviewed_report
    from ..web.cases import check_images_match_run, find_cases, is_results_folder

    if not is_results_folder(args.results):
        raise InputFileError(f"{args.results} holds no candidates.json: give the --out folder of 'lnstaging run'.")
    case = find_cases(args.results, ct=args.ct, pet=args.pet, data=args.data, ct_dicom=args.ct_dicom)[0]
    if args.out is not None:  # the default file is the review's own report, regenerated; any other is checked
        from ..io.outputs import check_output

        check_output(args.out, kind="file", overwrite=args.overwrite, extensions=(".html", ".htm"),
                     inputs=[("RESULTS", args.results), ("--ct", case.ct), ("--pet", case.pet),
                             ("--ct-dicom", case.ct_dicom)])
    if not args.allow_other_images:  # the same check as 'lnstaging review'
        text = check_images_match_run(case)
        if text:
            print(f"lnstaging report: {text}", file=sys.stderr)
    ct, pet = case.load_images()
    path = write_reviewed_report(args.results, ct, pet, out=args.out, case_id=case.case_id,
                                 study_date=case.study_date())
    print(f"Report: {path}")
    return 0
