"""``lnstaging attention``: the distance-guided attention map (paper 2, eq. 1-2) from organ/vessel masks."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_overwrite_argument


def register(sub) -> None:
    parser = sub.add_parser(
        "attention", help="attention map from organ/vessel masks (paper 2, eq. 1-2)",
        description="Map organ/vessel masks onto the 10 structures of the attention model and write the attention "
                    "map on the masks' grid (header preserved). See docs/PRIORS.md.")
    parser.add_argument("--organs", required=True, type=Path,
                        help="label map (NIfTI/NRRD), Slicer .seg.nrrd, a folder of binary masks (TotalSegmentator), "
                             "or a DICOM RTSTRUCT / SEG (needs --reference; structures matched by name)")
    parser.add_argument("--organs-roi", nargs="+", metavar="NAME",
                        help="only these RTSTRUCT ROIs / SEG segment labels of --organs (default: all)")
    parser.add_argument("--mapping", default="totalsegmentator",
                        help="totalsegmentator (default), pdac20, slicer, or a JSON mapping file")
    parser.add_argument("--profile", type=Path, help="JSON profile of d_min/d_max per structure (default: Table II)")
    parser.add_argument("--reference", type=Path, help="image whose grid the masks must share (e.g. the CT)")
    parser.add_argument("--resample-masks", action="store_true",
                        help="resample masks on another grid onto the reference (nearest neighbour) instead of refusing")
    parser.add_argument("--structures-out", type=Path, help="also write the 10-structure label map here")
    parser.add_argument("--out", required=True, type=Path, help="output attention map (.nii.gz/.nrrd)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_overwrite_argument(parser, "file")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import SimpleITK as sitk

    from ..anatomy.structures import map_structures, read_organs
    from ..errors import OutputError
    from ..io.atomic import atomic_file
    from ..io.images import read_image
    from ..io.outputs import IMAGE_EXTENSIONS, MB, check_output, input_bytes, resolved
    from ..priors.attention import attention_map
    from ..priors.profile import load_profile
    from ..progress import Progress, tqdm_progress

    inputs = {"--organs": args.organs, "--profile": args.profile, "--reference": args.reference}
    outputs = {"--out": args.out, "--structures-out": args.structures_out}
    needed = 4 * input_bytes([args.organs]) + MB  # a float map compresses less than a label map
    for option, path in outputs.items():
        if path is not None:
            check_output(path, kind="file", inputs=inputs, overwrite=args.overwrite, extensions=IMAGE_EXTENSIONS,
                         needed_bytes=needed, option=option)
    if args.structures_out is not None and resolved(args.out) == resolved(args.structures_out):
        raise OutputError("--out and --structures-out are the same file: give two file names.")

    reference = None
    if args.reference is not None:
        reference = read_image(args.reference, what="reference image")
    profile = load_profile(args.profile)
    organs = read_organs(args.organs, reference=reference, resample=args.resample_masks, rois=args.organs_roi,
                         roi_option="--organs-roi", reference_option="--reference")
    structures = map_structures(organs, args.mapping, option="--mapping")
    print(f"structures present: {', '.join(structures.present)}")
    if structures.absent:
        print(f"structures absent (map computed without them): {', '.join(structures.absent)}")
    progress = Progress() if args.quiet else tqdm_progress("attention")
    image = attention_map(structures.image, profile, progress)
    with atomic_file(args.out) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)
    if args.structures_out:
        with atomic_file(args.structures_out) as tmp:
            sitk.WriteImage(structures.image, str(tmp), useCompression=True)
    print(f"attention map written: {args.out}")
    return 0
