"""``lnstaging export {rtstruct,seg}``: reviewed lymph nodes to DICOM for RT planning (docs/EXPORT.md)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputFileError
from ..io.outputs import check_output
from ._common import add_overwrite_argument


def _candidates(path: Path | None):
    from ..results import Candidate

    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text())
        rows = data["candidates"] if isinstance(data, dict) else data
        return [Candidate(**row) for row in rows]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputFileError(f"Cannot read candidates from {path} ({error}): give the candidates.json of 'lnstaging run'.") from None


def _labels(path: Path):
    from ..io.images import read_label_map

    if not Path(path).is_file():
        raise InputFileError(f"Label map {path} does not exist: give the gtv_ln.nii.gz of a results folder.")
    return read_label_map(path, what="label map")


def _run_with_bar(kind: str, quiet: bool, work):
    """Run ``work(progress)`` under a tqdm bar that is closed (and cleared) even when the export fails."""
    from ..progress import tqdm_bar

    if quiet:
        return work(None)
    with tqdm_bar(f"export {kind}", leave=False) as progress:
        return work(progress)


def _reviewed(results_dir: Path):
    """Label map, candidates (with their review states) and operating point of a results folder: its saved review
    (RESULTS/review/, written by the browser review or the Slicer module) when there is one."""
    from ..export.review_rule import read_reviewed_results

    if not (results_dir / "candidates.json").is_file():
        raise InputFileError(f"{results_dir} holds no candidates.json: give the --out folder of 'lnstaging run'.")
    try:
        results, decisions = read_reviewed_results(results_dir)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputFileError(f"Cannot read the results in {results_dir} ({error}).") from None
    threshold = (decisions or {}).get("threshold", (results.patient.operating_point or {}).get("threshold"))
    where = results_dir / "review" if decisions is not None else results_dir
    return results, threshold, where


def main(args) -> int:
    from ..export.exporter import export_label_map
    from ..export.pet_only import pet_only_reference, pet_series_uid

    # a PET-only run: no RTSTRUCT; its SEG references the run's own PET DICOM series (export/pet_only.py)
    pet_reference = pet_only_reference(args.results, args.kind, args.ct_dicom) if args.results is not None else None
    reference = pet_reference or args.ct_dicom
    if reference is None:
        raise InputFileError("Give the planning CT's DICOM folder with --ct-dicom CT_DICOM_FOLDER.")
    series_uid = args.series_uid or (pet_series_uid(args.results) if pet_reference else None)
    labels_path, candidates_path = args.labels, args.candidates
    candidates, threshold, labels, source = None, None, None, None
    if args.results is not None and labels_path is None and candidates_path is None:
        results, threshold, source = _reviewed(args.results)
        if results.gtv_ln is None:
            raise InputFileError(f"{source} holds no gtv_ln.nii.gz: run the pipeline first.")
        labels, candidates = results.gtv_ln, list(results.candidates)
    elif args.results is not None:
        labels_path = labels_path or args.results / "gtv_ln.nii.gz"
        if candidates_path is None and (args.results / "candidates.json").is_file():
            candidates_path = args.results / "candidates.json"
    if labels is None:
        if labels_path is None:
            raise InputFileError("Give the label map with --labels gtv_ln.nii.gz (or a results folder with --results).")
        labels, candidates = _labels(labels_path), _candidates(candidates_path)
    out = args.out or Path(f"{'RS' if args.kind == 'rtstruct' else 'SEG'}_LNStaging.dcm")
    inputs = [("--ct-dicom", reference), ("--labels", labels_path), ("--candidates", candidates_path)]
    if source is not None:  # the saved review's files are inputs too: never overwritten by the export
        inputs += [("--results", source / "gtv_ln.nii.gz"), ("--results", source / "candidates.json")]
    check_output(out, kind="file", overwrite=args.overwrite, extensions=(".dcm",), inputs=inputs)
    if source is not None:
        print(f"review state read from {source}")
    summary = _run_with_bar(args.kind, args.quiet, lambda progress: export_label_map(
        labels, reference, out, kind=args.kind, candidates=candidates, include_pending=args.include_pending,
        only_accepted=args.only_accepted,
        combined=args.combined, resample=args.resample, series_uid=series_uid, progress=progress,
        threshold=threshold))
    for line in summary.lines():
        print(line)
    return 0


def register(sub) -> None:
    parser = sub.add_parser("export", help="write reviewed nodes as DICOM RTSTRUCT or SEG on the planning CT",
                            description="Write the GTV_LN nodes as DICOM RTSTRUCT (RT planning) or SEG (PACS, viewers), "
                                        "referencing the CT series. See docs/EXPORT.md.")
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, text in (("rtstruct", "DICOM RT Structure Set, one ROI per node"), ("seg", "DICOM Segmentation, one segment per node")):
        p = kinds.add_parser(kind, help=text, description=text)
        p.add_argument("--ct-dicom", type=Path, help="folder holding the one CT series to reference (required, except "
                                                     "for the SEG of a PET-only run given with --results: it "
                                                     "references the run's PET DICOM series)")
        p.add_argument("--series-uid", help="SeriesInstanceUID of the CT when the folder holds several series")
        p.add_argument("--labels", type=Path, help="instance label map (gtv_ln.nii.gz: value = candidate id)")
        p.add_argument("--candidates", type=Path, help="candidates.json (names, probabilities, review states)")
        p.add_argument("--results", type=Path, help="a results folder: its saved review (RESULTS/review/) when there is "
                                                     "one, else its gtv_ln.nii.gz and candidates.json")
        p.add_argument("--include-pending", action="store_true",
                       help="also export nodes nobody reviewed (pending); default: accepted nodes only, rejected never")
        p.add_argument("--only-accepted", action="store_true",
                       help="accepted nodes only (the default now; kept so existing scripts keep working)")
        p.add_argument("--combined", action="store_true", help="one structure 'GTVn' holding all exported nodes")
        p.add_argument("--resample", action="store_true", help="resample a label map on another grid onto the CT (nearest neighbour)")
        p.add_argument("--out", type=Path, help="output file (default RS_LNStaging.dcm / SEG_LNStaging.dcm)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        add_overwrite_argument(p, "file")
        p.set_defaults(func=main)
