"""``lnstaging phantom``: write synthetic PET/CT patients with ground truth as a cohort folder."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DatasetError


def register(sub):
    parser = sub.add_parser("phantom", help="write synthetic PET/CT patients (docs/DATASET.md format)",
                            description="Deterministic synthetic PET/CT patients with lymph-node ground truth, in the "
                                        "cohort folder format of docs/DATASET.md. Same seed, same files.")
    parser.add_argument("--seed", type=int, required=True, help="cohort seed")
    parser.add_argument("--out", required=True, help="output cohort folder (written atomically)")
    parser.add_argument("--cases", type=int, default=1, help="number of patients (default 1)")
    parser.add_argument("--size", default="small",
                        help="small (96x96x64), medium (160x160x96), benchmark (512x512x300) or NXxNYxNZ")
    parser.add_argument("--spacing", type=float, nargs=3, metavar=("SX", "SY", "SZ"), help="CT voxel size in mm")
    parser.add_argument("--direction", default="identity", choices=("identity", "oblique", "ras", "mixed"),
                        help="orientation of the voxel grid; mixed cycles identity/oblique/ras over the cases")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds in dataset.json (default 5)")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="held-out test share (default 0.2)")
    parser.add_argument("--relations", default="default", choices=("default", "strong"),
                        help="how much a node's status follows its neighbours: strong = chains of positive nodes "
                             "sharing one phenotype (tests what the graph head adds)")
    parser.add_argument("--look-alikes", default="near", choices=("near", "spread"),
                        help="where the false candidates lie: near the attention structures (default), or half of "
                             "them beyond the structures' attention bands (tests what the attention gate adds)")
    parser.add_argument("--dicom", action="store_true",
                        help="write a clinical DICOM export instead of a cohort folder: OUT/dicom/ (CT, PET in Bq/ml, "
                             "RTSTRUCT or SEG with GTVp/GTVn ROIs under varied names), OUT/organs/ (organ masks per "
                             "patient) and OUT/phantom_export.json; input for `lnstaging dataset import`")
    parser.add_argument("--overwrite", action="store_true", help="replace a cohort folder lnstaging phantom wrote (never an input, the working folder or a "
                             "review)")
    parser.set_defaults(func=main)


def main(args) -> int:
    from ..phantom import write_cohort
    from ..phantom.case import resolve_size
    from ..progress import tqdm_progress

    from ..io.outputs import check_output

    out = Path(args.out)
    if args.cases < 1:
        raise DatasetError("--cases must be at least 1.")
    if args.folds < 1 or not 0 <= args.test_fraction < 1:
        raise DatasetError("--folds must be >= 1 and --test-fraction in [0, 1).")
    try:
        resolve_size(args.size, args.spacing)
    except ValueError as error:
        raise DatasetError(f"--size: {error}.") from None
    if args.spacing and not all(0 < value < 100 for value in args.spacing):  # also refuses NaN
        raise DatasetError("--spacing values must be positive millimetres (below 100).")
    if args.dicom:
        from ..phantom.dicom_export import MANIFEST, write_dicom_export

        if args.look_alikes != "near":
            raise DatasetError("--look-alikes places false candidates, which a DICOM export does not carry: drop it.")
        if args.folds != 5 or args.test_fraction != 0.2:
            raise DatasetError("--folds and --test-fraction split a cohort folder; a DICOM export has no splits "
                               "(`dataset import` makes them): drop them.")
        check_output(out, kind="folder", overwrite=args.overwrite, marker=MANIFEST)
        write_dicom_export(out, args.seed, cases=args.cases, size=args.size, direction=args.direction,
                           spacing=args.spacing, relations=args.relations, progress=tqdm_progress("phantom"),
                           overwrite=args.overwrite)
        print(f"wrote {args.cases} phantom patient(s) as a DICOM export to {out / 'dicom'} (organ masks in "
              f"{out / 'organs'})")
        return 0
    check_output(out, kind="folder", overwrite=args.overwrite, marker="dataset.json")
    write_cohort(out, args.seed, cases=args.cases, size=args.size, folds=args.folds, test_fraction=args.test_fraction,
                 direction=args.direction, spacing=args.spacing, relations=args.relations,
                 look_alikes=args.look_alikes, progress=tqdm_progress("phantom"),
                 overwrite=args.overwrite)
    test = json.loads((out / "dataset.json").read_text())["test"]
    print(f"wrote {args.cases} phantom case(s) to {out}: {args.cases - len(test)} in {args.folds} fold(s), "
          f"{len(test)} test")
    if args.test_fraction > 0 and not test:
        print(f"No test case: {args.cases} case(s) fill the {args.folds} fold(s) first; for a held-out test share give "
              f"more --cases or fewer --folds.")
    return 0
