"""``lnstaging priors``: fit the attention profile on a cohort; per-candidate spatial priors of a case."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from ._common import add_overwrite_argument
from .run import add_tumor_arguments


def register(sub) -> None:
    parser = sub.add_parser("priors", help="attention profile fitting and per-candidate spatial priors",
                            description="Spatial priors (docs/PRIORS.md).")
    tasks = parser.add_subparsers(dest="priors_task", metavar="TASK", required=True)

    fit = tasks.add_parser("fit", help="estimate d_min/d_max per structure from a labelled cohort (paper 2, Table II)")
    fit.add_argument("--data", required=True, type=Path, help="cohort folder (docs/DATASET.md)")
    fit.add_argument("--out", type=Path, default=Path("profile.json"), help="profile JSON to write")
    fit.add_argument("--percentile", type=float, default=0.0,
                     help="robust range: p-th and (100-p)-th percentiles instead of min/max (e.g. 1)")
    fit.add_argument("--gtv-only", action="store_true",
                     help="use gtv_ln.nii.gz even where lymph_nodes.nii.gz (all nodes) exists")
    fit.add_argument("--quiet", action="store_true")
    add_overwrite_argument(fit, "file")
    fit.set_defaults(func=main_fit)

    cand = tasks.add_parser("candidates", help="spatial priors s of each candidate (paper 1, sec. 2.2)")
    cand.add_argument("--ct", required=True, type=Path)
    cand.add_argument("--candidates", required=True, type=Path, help="CSV with columns id,x,y,z (LPS mm)")
    add_tumor_arguments(cand, " (tumour priors omitted without)")
    cand.add_argument("--lung", type=Path, help="lung mask on the CT grid (computed from the CT without)")
    cand.add_argument("--organs", type=Path,
                      help="organ masks (label map or a folder of masks, any grid): liver, aorta and vertebrae "
                           "give z_norm when the scan shows only one end of the lungs")
    cand.add_argument("--organ-mapping", default="totalsegmentator",
                      help="label convention of --organs: totalsegmentator (default), pdac20, slicer or a JSON file")
    cand.add_argument("--centreline", action="store_true", help="angles from the tumour centreline, not its centre")
    cand.add_argument("--out", required=True, type=Path, help="CSV to write (id + one column per prior)")
    add_overwrite_argument(cand, "file")
    cand.set_defaults(func=main_candidates)


def main_fit(args: argparse.Namespace) -> int:
    from ..priors.fit import fit_profile
    from ..priors.profile import save_profile
    from ..io.outputs import check_output
    from ..progress import Progress, tqdm_progress

    from ..errors import LNStagingError

    if not 0.0 <= args.percentile < 50.0:  # also refuses NaN
        raise LNStagingError(f"--percentile {args.percentile} is not in [0, 50): give e.g. 1 for the 1st and 99th "
                             "percentiles, or 0 for min and max.")
    check_output(args.out, kind="file", inputs={"--data": args.data}, overwrite=args.overwrite, extensions=(".json",))
    progress = Progress() if args.quiet else tqdm_progress("priors fit")
    profile = fit_profile(args.data, percentile=args.percentile, use_all_nodes=not args.gtv_only, progress=progress)
    save_profile(profile, args.out)
    for key, params in profile.structures.items():
        source = profile.fit["per_structure"][key]
        print(f"{key:10s} d_min {params.d_min:6.1f} mm  d_max {params.d_max:6.1f} mm  "
              f"({source['voxels']} voxels, {source['source']})")
    print(f"profile written: {args.out}")
    return 0


def _read(path: Path, what: str):
    from ..io.images import read_image

    return read_image(path, what=what)


def main_candidates(args: argparse.Namespace) -> int:
    from ..errors import InputFileError
    from ..io.atomic import atomic_file
    from ..io.mask_source import read_mask
    from ..io.outputs import check_output
    from ..priors.candidate_priors import candidate_priors

    check_output(args.out, kind="file", overwrite=args.overwrite, extensions=(".csv",),
                 inputs={"--ct": args.ct, "--candidates": args.candidates, "--tumor": args.tumor, "--lung": args.lung,
                         "--organs": args.organs})
    try:
        with open(args.candidates, newline="") as handle:
            rows = list(csv.DictReader(handle))
        ids = [row.get("id", str(i + 1)) for i, row in enumerate(rows)]
        centres = [[float(row["x"]), float(row["y"]), float(row["z"])] for row in rows]
    except (OSError, KeyError, ValueError) as error:
        raise InputFileError(f"Cannot read candidates from {args.candidates} ({error}): need columns id,x,y,z "
                             "(LPS mm).") from None
    landmarks = {}
    if args.organs:
        from ..anatomy.landmarks import landmark_values
        from ..anatomy.structures import read_organs

        organs = read_organs(args.organs)
        landmarks = dict(organs=organs.image, organ_values=landmark_values(organs, args.organ_mapping))
    ct = _read(args.ct, "CT")
    tumor = None
    if args.tumor:
        tumor = read_mask(args.tumor, ct, roi=args.tumor_roi, segment=args.tumor_segment, resample=False)
    table = candidate_priors(ct, centres, tumor=tumor,
                             lung=_read(args.lung, "lung mask") if args.lung else None,
                             tumor_reference="centreline" if args.centreline else "centre", **landmarks)
    with atomic_file(args.out) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["id", *table.names])
        for candidate_id, row in zip(ids, table.values):
            writer.writerow([candidate_id, *("" if v != v else f"{v:.6g}" for v in row)])
    for name, reason in table.missing.items():
        print(f"{name}: not computed ({reason})")
    if table.z_source:
        print(f"z_norm from: {table.z_source}")
    print(json.dumps({"written": str(args.out), "candidates": len(ids)}))
    return 0
