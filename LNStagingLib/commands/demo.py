"""``lnstaging demo``: the pipeline on the bundled phantom case with the bundled demo weights, on the CPU."""

from pathlib import Path

from ..errors import InputFileError
from ..resource_files import resource_path
from ._common import add_overwrite_argument, add_progress_arguments, make_progress, select_models
from .run import print_summary
from .run_batch import case_inputs_from_dataset

DEMO_DATA = resource_path("DemoCase")


def register(sub):
    parser = sub.add_parser("demo", help="run the pipeline on the bundled phantom PET/CT case with the demo weights")
    parser.add_argument("--out", type=Path, default=Path("demo_output"), help="results folder (default demo_output)")
    parser.add_argument("--data", type=Path, default=DEMO_DATA, help=f"cohort folder of the demo case (default {DEMO_DATA})")
    parser.add_argument("--threads", type=int, help="CPU threads for the networks (default: all cores)")
    add_overwrite_argument(parser, "a previous demo's results; `make demo` passes it")
    add_progress_arguments(parser)
    parser.set_defaults(func=main)


def main(args) -> int:
    from ..dataset.format import read_dataset
    from ..pipeline import RunOptions, check_results_folder, run_to_folder

    if not (args.data / "dataset.json").is_file():
        raise InputFileError(f"the demo case is missing from {args.data}: reinstall LNStaging or give --data.")
    dataset = read_dataset(args.data)
    case_id = dataset.case_ids[0]
    print(f"Demo: synthetic phantom patient '{case_id}' (not patient data), demo weights trained on phantoms, CPU.")
    inputs = case_inputs_from_dataset(dataset, case_id)
    RunOptions(threads=args.threads)
    check_results_folder(inputs, args.out, overwrite=args.overwrite)
    options = RunOptions(models=select_models("default"), device="cpu", threads=args.threads)
    results = run_to_folder(inputs, args.out, options, make_progress(args, "demo"), overwrite=args.overwrite)
    print_summary(results, args.out)
    return 0
