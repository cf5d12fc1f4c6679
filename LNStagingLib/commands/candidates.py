"""``lnstaging candidates``: PET-avid node candidates without trained weights (LNStagingLib/candidates/from_pet.py)."""

from __future__ import annotations

from pathlib import Path

from .. import NOT_FOR_CLINICAL_USE
from ..errors import InputFileError, OutputError
from ._common import add_overwrite_argument, add_pet_timing_arguments
from .run import add_tumor_arguments


def register(sub) -> None:
    parser = sub.add_parser(
        "candidates", help="PET-avid lymph node candidates from SUV rules (no trained weights)",
        description="Find PET-avid lesions (local maxima of SUVpeak above a threshold, 41%% of SUVmax extent split "
                    "between neighbouring peaks), set aside physiological uptake and the primary tumour, and write "
                    "the candidate file 'lnstaging run --candidates' reads, with SUVmax, SUVpeak, SUVmean, MTV, TLG "
                    "(and short/long axis and HU on the CT). See docs/CANDIDATES.md.")
    parser.add_argument("--pet", required=True, type=Path, help="PET: DICOM folder (converted to SUVbw) or an SUV image")
    parser.add_argument("--ct", type=Path, help="CT (DICOM folder or file): lesions also measured on the CT grid")
    parser.add_argument("--organs", type=Path, help="organ label map, .seg.nrrd or folder of masks (TotalSegmentator "
                                                    "names): uptake in brain, heart, kidneys, bladder, liver, spleen "
                                                    "is set aside")
    parser.add_argument("--organ-mapping", help="label values convention of --organs: totalsegmentator (default) or pdac20")
    add_tumor_arguments(parser, help_suffix=" (read onto the PET grid): its lesion is reported apart, never a "
                                            "candidate")
    parser.add_argument("--threshold", default="2.5", help="SUVpeak threshold: an SUV (default 2.5) or 'liver' "
                                                           "(PERCIST 1.5 x liver mean + 2 SD; needs --organs)")
    parser.add_argument("--site", help="the case's site: head-neck, thorax, abdomen or pelvis. Candidates outside its "
                                       "nodal region (placed from landmarks on the PET, and the lungs with --ct) go "
                                       "to other_findings.csv; default: the site of the --tumor's position, else none")
    parser.add_argument("--out", required=True, type=Path, help="candidate file to write (the node list): .csv or "
                                                                ".json; other_findings.csv is written beside it")
    add_pet_timing_arguments(parser)
    parser.add_argument("--pet-series-uid", help="SeriesInstanceUID of the PET when its folder holds several series")
    parser.add_argument("--ct-series-uid", help="SeriesInstanceUID of the CT when its folder holds several series")
    add_overwrite_argument(parser, "file")
    parser.set_defaults(func=main)


def main(args) -> int:
    from ..candidates.from_pet import (other_findings_path, parse_threshold, pet_candidates, summary_lines,
                                       write_candidate_file)
    from ..candidates.site_region import SITES, nodal_site
    from ..io.outputs import MB, check_output
    from ..io.petct import check_pet_ct_pair, load_ct, load_pet_suv

    inputs = {"--pet": args.pet, "--ct": args.ct, "--organs": args.organs, "--tumor": args.tumor}
    check_output(args.out, kind="file", inputs=inputs, overwrite=args.overwrite, extensions=(".csv", ".json"),
                 needed_bytes=MB)
    others = other_findings_path(args.out)
    if Path(args.out).name.lower() == others.name.lower():
        raise OutputError(f"--out {args.out}: {others.name} is the name of the other findings written beside the "
                          "candidate file; give the candidate file another name.")
    if (others.exists() or others.is_symlink()) and not args.overwrite:
        raise OutputError(f"{others} already exists beside --out (another candidate file's other findings?): write "
                          "the candidate file into another folder, or pass --overwrite to replace both.")
    check_output(others, kind="file", inputs=inputs, overwrite=args.overwrite, option="--out's other_findings.csv")
    if args.site is not None and nodal_site(args.site) is None:
        raise InputFileError(f"--site {args.site!r}: give one of {', '.join(SITES)}.")
    threshold = parse_threshold(args.threshold)
    suv, factor, pet_series = load_pet_suv(args.pet, args.pet_series_uid, weight_kg=args.weight_kg, dose_bq=args.dose_bq,
                                           injection_time=args.injection_time, half_life_s=args.half_life_s,
                                           **({"accept_timing": True} if args.accept_timing else {}))
    ct = None
    if args.ct is not None:
        ct, ct_series = load_ct(args.ct, args.ct_series_uid)
        check_pet_ct_pair(ct, ct_series, suv, pet_series)  # the check run does: same frame of reference, overlap
    tumor = None
    if args.tumor is not None:
        from ..io.mask_source import read_mask

        # onto the PET (its DICOM series, so an RTSTRUCT's or SEG's frame of reference is checked): detection runs there
        tumor = read_mask(args.tumor, pet_series or suv, what="tumour mask", roi=args.tumor_roi,
                          segment=args.tumor_segment)
    detection = pet_candidates(suv, ct=ct, organs=args.organs, organ_mapping=args.organ_mapping, tumor=tumor,
                               threshold=threshold, site=args.site)
    write_candidate_file(detection, args.out)
    if factor is not None:
        print(factor.describe())
    for line in summary_lines(detection):
        print(line)
    print(f"Candidate file written: {args.out}; other findings: {other_findings_path(args.out)}")
    print(NOT_FOR_CLINICAL_USE)
    return 0
