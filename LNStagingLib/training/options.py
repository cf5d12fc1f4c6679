"""Options every ``lnstaging train TASK`` shares (data, output, fold, device, resume, size, seed)."""


def add_common_arguments(parser, *, data_help: str = "cohort folder (docs/DATASET.md)",
                         out_help: str = "output folder for checkpoints and logs",
                         resume_file: str = "the *_last.pt checkpoints") -> None:
    parser.add_argument("--data", required=True, help=data_help)
    parser.add_argument("--out", required=True, help=out_help)
    parser.add_argument("--fold", type=int, default=0, help="validation fold K (train on the other folds)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--resume", action="store_true", help=f"continue from {resume_file} in --out")
    parser.add_argument("--config", default="small", choices=("tiny", "small", "paper"), help="network size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the final checkpoint a previous training left in --out (never an input)")


def check_training_out(args, final_files, **inputs) -> None:
    """The output rule (LNStagingLib/io/outputs.py) for a training folder, before any work: --out is written into,
    may be neither an input nor the working folder, and a finished model in it is replaced only with --resume or
    --overwrite. ``inputs``: option name -> path of other files read (e.g. init_cnn=...)."""
    from pathlib import Path

    from ..errors import OutputError
    from ..io.outputs import MB, check_output

    named = {"--data": args.data, **{f"--{k.replace('_', '-')}": v for k, v in inputs.items()}}
    out = check_output(args.out, kind="folder", write_into=True, inputs=named, needed_bytes=50 * MB)
    finished = [name for name in final_files if (out / name).is_file()]
    if finished and not (args.resume or getattr(args, "overwrite", False)):
        raise OutputError(f"--out {args.out} already holds a trained model ({finished[0]}): give a new folder, "
                          "--resume to continue it, or --overwrite to train it again.")
    if Path(out).exists() and not Path(out).is_dir():
        raise OutputError(f"--out {args.out} is a file, not a folder.")
