"""``lnstaging run``: one case from PET/CT (or a PET alone) to a results folder (see LNStagingLib/pipeline.py)."""

from pathlib import Path

from .. import NOT_FOR_CLINICAL_USE
from ._common import (add_model_arguments, add_overwrite_argument, add_pet_timing_arguments, add_progress_arguments,
                      make_progress, select_models)


def add_case_arguments(parser) -> None:
    parser.add_argument("--ct", type=Path, help="CT: NIfTI/NRRD/MHA file or DICOM folder; without it the run is "
                                                "PET-only: the PET's grid is the reference, candidates come from "
                                                "its SUV rules (or --candidates FILE), ranked by SUVpeak, and no "
                                                "model runs")
    parser.add_argument("--pet", required=True, type=Path, help="PET: DICOM folder (converted to SUVbw) or an SUV image file")
    parser.add_argument("--organs", type=Path, help="organ/vessel label map, Slicer .seg.nrrd, a folder of masks, or a "
                                                    "DICOM RTSTRUCT / SEG (structures matched by name)")
    parser.add_argument("--organs-roi", nargs="+", metavar="NAME",
                        help="only these RTSTRUCT ROIs (names, or ROI numbers) / SEG segment labels of --organs "
                             "(default: all)")
    parser.add_argument("--organ-mapping", help="label mapping: totalsegmentator, pdac20, slicer, or a JSON file")
    add_tumor_arguments(parser)
    parser.add_argument("--candidates", help="extra candidates: CSV/JSON with x,y,z (LPS mm)[,radius_mm], or 'pet' for "
                                              "PET-avid candidates from SUV rules (also used when no stage-1 model fits)")
    parser.add_argument("--pet-threshold", default="2.5", help="SUVpeak threshold of PET candidates: an SUV (default "
                                                               "2.5) or 'liver' (PERCIST; needs --organs with the liver)")
    parser.add_argument("--site", help="the case's body site (e.g. abdomen/pancreas, head-and-neck, thorax): models "
                                        "trained for another site are not applied, and PET candidates outside its "
                                        "nodal region go to other_findings.csv; default: from the organ the tumour "
                                        "mask overlaps, else unknown")
    add_pet_timing_arguments(parser)
    parser.add_argument("--ct-series-uid", help="SeriesInstanceUID of the CT when its folder holds several series")
    parser.add_argument("--pet-series-uid", help="SeriesInstanceUID of the PET when its folder holds several series")


def add_tumor_arguments(parser, help_suffix: str = "") -> None:
    """--tumor and the choice inside an RTSTRUCT or SEG (io.mask_source.read_mask resolves them)."""
    parser.add_argument("--tumor", type=Path, help="primary tumour: label map (non-zero = tumour), DICOM RTSTRUCT or "
                                                   "DICOM SEG" + help_suffix)
    parser.add_argument("--tumor-roi", metavar="NAME_OR_NUMBER",
                        help="the RTSTRUCT ROI of the tumour by name or ROI number, e.g. GTVp or 3 (default: the only "
                             "ROI, or the only GTV ROI; two ROIs sharing a name must be chosen by number)")
    parser.add_argument("--tumor-segment", metavar="NUMBER_OR_LABEL",
                        help="the SEG segment of the tumour (default: the only segment, or the only 'Neoplasm, "
                             "Primary' one)")


def case_inputs(args):
    from ..candidates.from_pet import parse_threshold
    from ..pipeline import CaseInputs

    return CaseInputs(ct=args.ct, pet=args.pet, organs=args.organs, organ_mapping=args.organ_mapping, tumor=args.tumor,
                      tumor_roi=args.tumor_roi, tumor_segment=args.tumor_segment, organ_rois=args.organs_roi,
                      candidates=None if args.candidates is None else (
                          "pet" if str(args.candidates).lower() == "pet" else Path(args.candidates)),
                      site=getattr(args, "site", None),
                      pet_threshold=parse_threshold(getattr(args, "pet_threshold", "2.5")),
                      weight_kg=args.weight_kg, dose_bq=args.dose_bq,
                      injection_time=args.injection_time, half_life_s=args.half_life_s,
                      accept_timing=args.accept_timing,
                      ct_series_uid=args.ct_series_uid,
                      pet_series_uid=args.pet_series_uid)


def print_summary(results, out: Path) -> None:
    """What ran and what it found, from Results only: models applied / not applied, the ranking basis, notes, skips."""
    threshold = results.patient.operating_point.get("threshold")
    shown = [c for c in results.candidates if threshold is not None and results.ranking_value(c) is not None
             and results.ranking_value(c) >= threshold]
    print(f"{len(results.candidates)} candidates, {len(shown)} at or above the operating point "
          f"({results.operating_point_text()}); {results.ranking_text}.")
    if results.patient.metastasis_probability is not None:
        phantom = " (model trained on synthetic phantoms only)" if results.probability_domain else ""
        print(f"Patient metastasis probability{phantom}: {results.patient.metastasis_probability:.3f}")
    for line in results.what_ran():
        print(line)
    print(f"Report: {Path(out).absolute() / 'report.html'}")
    print(NOT_FOR_CLINICAL_USE)


def register(sub):
    parser = sub.add_parser("run", help="run the pipeline on one PET/CT case (or a PET alone) and "
                                                "write a results folder")
    add_case_arguments(parser)
    add_model_arguments(parser)
    add_progress_arguments(parser)
    parser.add_argument("--threshold", type=float, default=0.5, help="operating point: probability threshold (default 0.5)")
    parser.add_argument("--out", required=True, type=Path, help="results folder (written atomically; a new folder, or "
                                                                 "one lnstaging wrote with --overwrite)")
    add_overwrite_argument(parser)
    parser.set_defaults(func=main)


def main(args) -> int:
    from ..pipeline import RunOptions, check_results_folder, run_to_folder

    if args.ct is None and args.ct_series_uid:
        from ..errors import InputFileError

        raise InputFileError("--ct-series-uid chooses a series of --ct: give --ct too, or leave it out for a PET-only "
                             "run.")
    inputs = case_inputs(args)
    RunOptions(threshold=args.threshold, threads=args.threads)  # options and output checked before any work
    check_results_folder(inputs, args.out, overwrite=args.overwrite)
    from ..io.memory import check_memory

    check_memory(args.ct if args.ct is not None else args.pet, "lnstaging run")
    options = RunOptions(models=select_models(args.models), device=args.device, threshold=args.threshold,
                         threads=args.threads)
    results = run_to_folder(inputs, args.out, options, make_progress(args, "lnstaging run"), overwrite=args.overwrite)
    print_summary(results, args.out)
    return 0
