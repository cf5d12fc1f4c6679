"""``lnstaging suv``: PET (DICOM, Bq/ml) to SUVbw, optionally on the CT grid and with SUV statistics per mask."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from ._common import add_overwrite_argument


def register(sub) -> None:
    parser = sub.add_parser(
        "suv", help="convert a PET DICOM series to SUVbw (body weight) from its tags",
        description="Convert a PET series to SUVbw from its DICOM tags (Units BQML, decay correction START/ADMIN) and "
                    "write it as NIfTI/NRRD. PET already in SUV (Units GML) passes through. Missing tags can be given "
                    "as options. See docs/IO.md.")
    parser.add_argument("pet", type=Path, help="PET DICOM folder (or a PET NIfTI/NRRD already in SUV)")
    parser.add_argument("--out", required=True, type=Path, help="SUV image to write (.nii.gz/.nrrd/.mha)")
    parser.add_argument("--series-uid", help="SeriesInstanceUID of the PET when the folder holds several PET series")
    parser.add_argument("--weight-kg", type=float, help="patient weight in kg (overrides PatientWeight)")
    parser.add_argument("--dose-bq", type=float, help="injected dose in Bq (overrides RadionuclideTotalDose)")
    parser.add_argument("--injection-time", help="injection time HHMMSS (overrides RadiopharmaceuticalStartTime)")
    parser.add_argument("--half-life-s", type=float, help="half-life in s (overrides RadionuclideHalfLife; F-18: 6586.2)")
    parser.add_argument("--accept-timing", action="store_true",
                        help="accept an injection-to-scan time outside 10 min to 5 h (an unusual protocol you checked)")
    parser.add_argument("--ct", type=Path, help="CT (DICOM folder or file): write the SUV resampled onto the CT grid")
    parser.add_argument("--ct-series-uid", help="SeriesInstanceUID of the CT when its folder holds several CT series")
    parser.add_argument("--registration", type=Path, help="ITK transform mapping CT to PET points, when PET and CT "
                                                          "have different frames of reference")
    parser.add_argument("--masks", type=Path, help="RTSTRUCT, DICOM SEG or label map: print SUVmax/SUVmean/volume "
                                                   "per structure (on the output grid)")
    parser.add_argument("--resample-masks", action="store_true",
                        help="resample a label map on another grid onto the output grid (nearest) instead of refusing")
    parser.add_argument("--stats-out", type=Path, help="also write the per-structure statistics as CSV")
    add_overwrite_argument(parser, "file")
    parser.set_defaults(func=main)


def suv_statistics(suv, masks: dict) -> list[dict]:
    """SUVmax, SUVmean and volume (ml) of each non-empty mask."""
    import numpy as np
    import SimpleITK as sitk

    values = sitk.GetArrayViewFromImage(suv)
    voxel_ml = float(np.prod(suv.GetSpacing())) / 1000.0
    rows = []
    for name, mask in masks.items():
        inside = sitk.GetArrayViewFromImage(mask) > 0
        if inside.any():
            rows.append({"structure": name, "suv_max": float(values[inside].max()),
                         "suv_mean": float(values[inside].mean()), "volume_ml": float(inside.sum() * voxel_ml)})
    return rows


def main(args: argparse.Namespace) -> int:
    import SimpleITK as sitk

    from ..io.atomic import atomic_file
    from ..io.labels import read_masks
    from ..io.outputs import IMAGE_EXTENSIONS, MB, check_output, input_bytes
    from ..io.petct import load_pet_ct, load_pet_suv

    inputs = {"PET": args.pet, "--ct": args.ct, "--registration": args.registration, "--masks": args.masks}
    needed = input_bytes([args.pet, args.ct]) + MB
    check_output(args.out, kind="file", inputs=inputs, overwrite=args.overwrite, extensions=IMAGE_EXTENSIONS,
                 needed_bytes=needed)
    if args.stats_out is not None:
        check_output(args.stats_out, kind="file", inputs=inputs, overwrite=args.overwrite, extensions=(".csv",),
                     option="--stats-out")

    overrides = dict(weight_kg=args.weight_kg, dose_bq=args.dose_bq, injection_time=args.injection_time,
                     half_life_s=args.half_life_s, accept_timing=args.accept_timing)
    if args.ct is not None:
        pair = load_pet_ct(args.ct, args.pet, pet_series_uid=args.series_uid, ct_series_uid=args.ct_series_uid,
                           registration=args.registration, pet_series_option="--series-uid",
                           registration_option="--registration", **overrides)
        suv, factor, grid_source = pair.pet_suv, pair.suv, pair.ct_series or pair.ct
    else:
        suv, factor, series = load_pet_suv(args.pet, args.series_uid, "--series-uid", **overrides)
        grid_source = series or suv
    rows = []
    if args.masks is not None:
        masks = read_masks(args.masks, grid_source, resample=args.resample_masks,
                           reference_what="CT" if args.ct is not None else "PET")
        rows = suv_statistics(suv, masks)
    with atomic_file(args.out) as tmp:
        sitk.WriteImage(suv, str(tmp), useCompression=True)
    if args.stats_out is not None:
        with atomic_file(args.stats_out) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, ["structure", "suv_max", "suv_mean", "volume_ml"])
            writer.writeheader()
            writer.writerows(rows)
    print(factor.describe() if factor else "PET file without DICOM tags: taken as SUVbw already (factor 1)")
    for row in rows:
        print(f"{row['structure']}: SUVmax {row['suv_max']:.4f}, SUVmean {row['suv_mean']:.4f}, "
              f"volume {row['volume_ml']:.2f} ml")
    print(f"SUV image written: {args.out}")
    return 0
