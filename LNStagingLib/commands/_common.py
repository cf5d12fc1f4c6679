"""Options shared by several sub-commands: model choice, PET timing (SUV) and progress output.

Imports nothing heavy at module level: every ``--help`` builds all parsers (see cli.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import ModelError

STAGES = ("seg", "cls", "identification", "patient")


def add_model_arguments(parser) -> None:
    parser.add_argument("--models", default="default", metavar="SPEC",
                        help="'default' (the catalogue's default model per stage, e.g. the bundled demo weights), "
                             "'none', or stage=ID_OR_FILE[,stage=...] with stage in seg, cls, identification, patient; "
                             "a FILE is a checkpoint path (its sha256 is recorded but not checked against a catalogue)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the networks run (default cpu)")
    parser.add_argument("--threads", type=int, help="CPU threads for the networks (default: all cores; 1 is faster "
                                                    "when other programs keep the cores busy)")


def add_overwrite_argument(parser, what: str = "results lnstaging wrote there") -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help=f"replace an existing output ({what}); never an input, the working folder or a review "
                             "(docs/RELIABILITY.md)")


def add_pet_timing_arguments(parser) -> None:
    """The SUV options of every command that converts a PET DICOM series (run, candidates; suv has its own)."""
    parser.add_argument("--weight-kg", type=float, help="patient weight, if the PET DICOM lacks PatientWeight")
    parser.add_argument("--dose-bq", type=float, help="injected dose in Bq, if the PET DICOM lacks RadionuclideTotalDose")
    parser.add_argument("--injection-time", help="injection time HHMMSS, if the PET DICOM lacks it")
    parser.add_argument("--half-life-s", type=float,
                        help="half-life in s, if the PET DICOM lacks RadionuclideHalfLife (F-18: 6586.2)")
    parser.add_argument("--accept-timing", action="store_true",
                        help="accept an injection-to-scan time outside 10 min to 5 h (an unusual protocol you checked)")


def add_progress_arguments(parser) -> None:
    parser.add_argument("--progress-lines", action="store_true",
                        help="print 'PROGRESS <fraction> <message>' lines on stdout (for the Slicer module) instead of a bar")


def make_progress(args, description: str):
    from ..progress import Progress, tqdm_progress

    if getattr(args, "progress_lines", False):
        def emit(fraction: float, message: str) -> None:
            print(f"PROGRESS {fraction:.4f} {message}", flush=True)
        return Progress(emit)
    if sys.stderr.isatty():
        return tqdm_progress(description)
    return Progress()


def select_models(spec: str):
    """Parse --models into verified model files (a pipeline.ModelSelection)."""
    from ..models.catalogue import Catalogue
    from ..pipeline import ModelSelection

    spec = (spec or "default").strip()
    if spec == "none":
        return ModelSelection()
    catalogue = Catalogue.read()
    if spec == "default":
        ids = {stage: catalogue.default_id(stage) for stage in STAGES}
        return ModelSelection.from_catalogue(ids, catalogue)
    selection = ModelSelection()
    for item in spec.split(","):
        stage, _, value = item.partition("=")
        stage = stage.strip()
        if stage not in STAGES or not value:
            raise ModelError(f"--models item {item!r} is not stage=ID_OR_FILE with stage in {', '.join(STAGES)}.")
        if Path(value).expanduser().is_file():
            setattr(selection, stage, Path(value).expanduser())
        else:
            one = ModelSelection.from_catalogue({stage: value}, catalogue)
            setattr(selection, stage, getattr(one, stage))
            selection.sha256.update(one.sha256)
            selection.ids.update(one.ids)
            selection.sites.update(one.sites)
    return selection
