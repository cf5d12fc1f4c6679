"""Shared by the scaling tests and benchmark: tiny untrained checkpoints for every stage (fast, deterministic)."""

import subprocess
from pathlib import Path

import torch

from LNStagingLib.models.checkpoint import save_checkpoint
from LNStagingLib.models.identification import InstanceIdentifier
from LNStagingLib.models.patient import PatientMetastasisNet, preset
from LNStagingLib.models.stage2 import Stage2Model, stage2_config
from LNStagingLib.models.unet import AttentionUNet, unet_config
from LNStagingLib.pipeline import ModelSelection
from LNStagingLib.priors.candidate_priors import PRIOR_NAMES


def write_tiny_models(folder: Path, seed: int = 0) -> ModelSelection:
    """One tiny checkpoint per stage in ``folder``; the stage-1 model runs at 3 x 3 x 5 mm (the phantom is finer)."""
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    seg = AttentionUNet(unet_config("tiny", use_pet=True))
    networks = {"seg": seg, "identification": InstanceIdentifier.from_segmentation(seg),
                "cls": Stage2Model(stage2_config("tiny", head="gnnp", prior_names=PRIOR_NAMES)),
                "patient": PatientMetastasisNet(preset("tiny"))}
    selection = ModelSelection()
    for stage, net in networks.items():
        path = folder / f"{stage}.pt"
        trained_at = {"spacing_mm": [3.0, 3.0, 5.0]} if stage == "seg" else {}
        selection.sha256[stage] = save_checkpoint(path, net, net.config, training_data=trained_at)
        setattr(selection, stage, path)
    return selection


def models_option(selection: ModelSelection) -> str:
    """The --models value naming these checkpoint files."""
    return ",".join(f"{stage}={getattr(selection, stage)}" for stage in ("seg", "identification", "cls", "patient"))


def train_seg_sgd(cohort, out, fold: int, distributed: bool = False) -> None:
    """The tiny stage-1 training of `lnstaging train seg --config tiny --epochs 2` (segmentation, then
    identification) with plain SGD instead of the preset's Adam. SGD's step is proportional to the gradient, so it
    shows the arithmetic of the ranks; Adam divides each gradient by its own size, which turns the float rounding of
    gradients that are zero in exact arithmetic (a convolution bias before InstanceNorm) into steps of up to the
    learning rate, different for any other order of the same sums (docs/SCALING.md)."""
    from LNStagingLib.models.unet import unet_config
    from LNStagingLib.scaling import ddp
    from LNStagingLib.training.seg import (SEG_FINAL, TRAIN_PRESETS, SegTrainConfig, load_cohort, train_identification,
                                           train_segmentation)

    ranks = ddp.start(distributed)
    config = unet_config("tiny")
    sgd = dict(optimizer="sgd", learning_rate=0.05, momentum=0.9, id_optimizer="sgd", id_learning_rate=0.05,
               id_momentum=0.9)
    train_config = SegTrainConfig(**(TRAIN_PRESETS["tiny"] | sgd), seed=1)
    data = load_cohort(cohort, fold, config)
    train_segmentation(data, config, train_config, Path(out), ranks=ranks)
    train_identification(data, Path(out) / SEG_FINAL, train_config, Path(out), ranks=ranks)
    ranks.close()


def train_patient_sgd(cohort, out, fold: int, distributed: bool = False) -> None:
    """`lnstaging train patient --config tiny --epochs 2` with plain SGD instead of the preset's Adam (why: see
    train_seg_sgd; the patient network's BatchNorm makes a few gradients nearly cancel)."""
    from LNStagingLib.models.patient import preset
    from LNStagingLib.scaling import ddp
    from LNStagingLib.training.patient import TRAIN_PRESETS, PatientTrainConfig, load_cohort, train

    ranks = ddp.start(distributed)
    config = preset("tiny")
    train_config = PatientTrainConfig(**(TRAIN_PRESETS["tiny"] | dict(epochs=2, optimizer="sgd", learning_rate=0.01,
                                                                      momentum=0.9)), seed=1)
    train(load_cohort(cohort, fold, config), config, train_config, Path(out), ranks=ranks)
    ranks.close()


def stop_processes(processes: list[subprocess.Popen], timeout: float = 30) -> None:
    """Terminate started Dask processes one at a time, the last started first (workers before their scheduler: a
    worker whose scheduler is already gone spends Dask's 30 s connect timeout trying to say goodbye); kill what does
    not end within ``timeout``."""
    for process in reversed(processes):
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
