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
