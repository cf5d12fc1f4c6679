"""``lnstaging train seg``: train the stage-1 attention U-Net (and then the instance identifier) on a cohort.

Phase 1 (segmentation): class-agnostic LN segmentation; the target is lymph_nodes.nii.gz (all nodes) when the cases
have it, else gtv_ln.nii.gz. Patches by training/sampling.py (a third foreground, informative negatives), loss
CE + Tversky with deep supervision (models/seg_loss.py), poly learning-rate decay as in nnU-Net.
Phase 2 (identification): the encoder initialised from phase 1, trained with cross entropy on patches centred on
the ground-truth nodes (positive = in gtv_ln); needs lymph_nodes.nii.gz for the negatives.

Outputs in --out: seg_model.pt / identifier.pt (final checkpoints: state dict, config, training-data description,
metrics; sha256 printed and written to <name>.sha256), *_last.pt (resume points with optimiser state),
train_seg_log.json. Deterministic for a given --seed on the CPU: the patches of epoch e come from the
seed (seed, e), so a resumed run draws the same patches as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError, ModelError
from ..inference.case_inputs import case_attention
from ..inference.device import resolve_device
from ..scaling import ddp
from .options import add_common_arguments
from .outputs import read_checksum, strict_json, write_checksum

SEG_FINAL, SEG_LAST = "seg_model.pt", "seg_last.pt"
ID_FINAL, ID_LAST = "identifier.pt", "identifier_last.pt"
LOG = "train_seg_log.json"


@dataclass
class SegTrainConfig:
    """Optimisation settings (travel in the checkpoint's ``extra``)."""

    epochs: int = 1000
    iterations_per_epoch: int = 250
    batch_size: int = 2
    optimizer: str = "sgd"  # nnU-Net: SGD, Nesterov momentum 0.99, lr 1e-2, poly decay
    learning_rate: float = 1e-2
    momentum: float = 0.99
    weight_decay: float = 3e-5
    informative_negatives: bool = True
    augment: bool = False  # nnU-Net's augmentation (training/augment.py); on in the paper preset
    seed: int = 0
    val_patches: int = 8
    # identification phase (paper: SGD Nesterov 0.95, lr 5e-4, wd 1e-4)
    id_epochs: int = 100
    id_iterations_per_epoch: int = 50
    id_batch_size: int = 8
    id_optimizer: str = "sgd"
    id_learning_rate: float = 5e-4
    id_momentum: float = 0.95
    id_weight_decay: float = 1e-4


TRAIN_PRESETS = {
    "paper": dict(augment=True),
    "small": dict(epochs=40, iterations_per_epoch=25, batch_size=2, optimizer="adam", learning_rate=3e-3,
                  id_epochs=15, id_iterations_per_epoch=20, id_optimizer="adam", id_learning_rate=1e-3),
    "tiny": dict(epochs=2, iterations_per_epoch=2, batch_size=2, optimizer="adam", learning_rate=3e-3, val_patches=2,
                 id_epochs=1, id_iterations_per_epoch=2, id_batch_size=4, id_optimizer="adam", id_learning_rate=1e-3),
}


# ---- command line ------------------------------------------------------------------------------------------------
def add_arguments(parser) -> None:
    add_common_arguments(parser)
    variant = parser.add_mutually_exclusive_group()
    variant.add_argument("--no-attention", action="store_true",
                         help="paper 2's nnU-Net baseline: no attention gate and negatives drawn anywhere "
                              "(the attention map is not used at all)")
    variant.add_argument("--attention-negatives-only", action="store_true",
                         help="ablation: no attention gate, but negatives drawn where attention > 0")
    variant.add_argument("--no-informative-negatives", action="store_true",
                         help="ablation: attention gate, but negatives drawn anywhere")
    parser.add_argument("--pet", action="store_true", help="use the PET as a second input channel")
    parser.add_argument("--ct-normalisation", choices=("window", "nnunet"),
                        help="CT intensities: a fixed HU window, or nnU-Net's (clip to the training foreground's "
                             "0.5/99.5 percentiles, z-score; stored in the checkpoint). Default: nnunet for "
                             "--config paper, window for small and tiny")
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                        help="nnU-Net's augmentation (rotation, scaling, elastic, gamma, mirroring; default: on for "
                             "--config paper, off for small and tiny)")
    parser.add_argument("--epochs", type=int, help="segmentation epochs (default: by --config)")
    parser.add_argument("--id-epochs", type=int, help="identification epochs (default: by --config)")
    parser.add_argument("--seg-head", choices=("conv", "authors"),
                        help="head after the attention gate: one 1x1 conv (default) or the authors' 1x1 conv - "
                             "InstanceNorm - LeakyReLU - 1x1 conv")
    parser.add_argument("--attention-resize", choices=("average", "cubic"),
                        help="attention map at the coarser deep-supervision heads: average pooling (default) or "
                             "the authors' cubic interpolation")
    parser.add_argument("--phase", default="all", choices=("seg", "identification", "all"),
                        help="train the segmentation, the identifier (from seg_model.pt in --out), or both")
    ddp.add_distributed_argument(parser)


def seg_variant(args) -> tuple[bool, bool]:
    """(attention gate, informative negatives) of the stage-1 variant asked for: the paper's method (both), its
    nnU-Net baseline (--no-attention: neither), or one of the two ablations (docs/TRAINING.md)."""
    if args.no_attention:
        return False, False
    if args.attention_negatives_only:
        return False, True
    return True, not args.no_informative_negatives


def main(args) -> int:
    from ..models.unet import unet_config
    from ..progress import tqdm_progress

    from .options import check_training_out

    check_training_out(args, {"seg": [SEG_FINAL], "identification": [ID_FINAL]}.get(args.phase, [SEG_FINAL, ID_FINAL]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    use_attention, informative_negatives = seg_variant(args)
    train_config = SegTrainConfig(**TRAIN_PRESETS[args.config], seed=args.seed,
                                  informative_negatives=informative_negatives)
    if args.epochs is not None:
        train_config.epochs = args.epochs
    if args.id_epochs is not None:
        train_config.id_epochs = args.id_epochs
    if args.augment is not None:
        train_config.augment = args.augment
    model_config = unet_config(args.config, use_attention=use_attention, use_pet=args.pet)
    if args.ct_normalisation is not None:
        model_config = model_config.replace(ct_normalisation=args.ct_normalisation)
    for option in ("seg_head", "attention_resize"):  # the authors' code variants (models/unet.py)
        if getattr(args, option, None) is not None:
            model_config = model_config.replace(**{option: getattr(args, option)})
    if model_config.ct_normalisation == "nnunet":
        model_config = model_config.replace(ct_statistics=training_ct_statistics(args.data, args.fold))
    ranks = ddp.start(getattr(args, "distributed", False), args.device)
    device = ranks.device(resolve_device(args.device))
    say = print if ranks.is_main else (lambda *_: None)
    data = load_cohort(args.data, args.fold, model_config, need_attention=model_config.use_attention
                       or train_config.informative_negatives)
    if args.phase in ("seg", "all"):
        sha = train_segmentation(data, model_config, train_config, out, device=device, resume=args.resume,
                                 progress=tqdm_progress("train seg") if ranks.is_main else None, ranks=ranks)
        say(f"segmentation model: {out / SEG_FINAL} (sha256 {sha})")
    if args.phase in ("identification", "all"):
        if not data.has_negatives:
            say("identification skipped: the cases have no lymph_nodes.nii.gz, so there are no negative nodes "
                "to learn from (add lymph_nodes.nii.gz with all nodes, positive and negative).")
        else:
            sha = train_identification(data, out / SEG_FINAL, train_config, out, device=device, resume=args.resume,
                                       progress=tqdm_progress("train identification") if ranks.is_main else None,
                                       ranks=ranks)
            say(f"identification model: {out / ID_FINAL} (sha256 {sha})")
    ranks.close()
    return 0


# ---- data --------------------------------------------------------------------------------------------------------
def training_ct_statistics(root, fold: int) -> tuple[float, float, float, float]:
    """nnU-Net's CT fingerprint of the training cases of a fold: (p0.5, p99.5, mean, sd) of the HU inside the
    lymph nodes (lymph_nodes.nii.gz, else gtv_ln.nii.gz), the foreground the network learns to segment."""
    import SimpleITK as sitk

    from ..dataset.format import read_dataset
    from ..models.seg_inputs import ct_foreground_statistics

    dataset = read_dataset(root)
    values = []
    for case_id in dataset.split(fold)[0]:
        files = dataset.case(case_id)
        nodes = files.load("lymph_nodes") if files.has("lymph_nodes") else files.load("gtv_ln")
        ct = files.load("ct")  # named: an array view of a temporary image would read freed memory
        hu = sitk.GetArrayViewFromImage(ct)
        if hu.shape != sitk.GetArrayViewFromImage(nodes).shape:
            raise DatasetError(f"Case {case_id}: the node label map is not on the CT grid; resample it onto the CT.")
        values.append(np.asarray(hu[sitk.GetArrayViewFromImage(nodes) != 0], np.float32))
    return ct_foreground_statistics(np.concatenate(values) if values else np.zeros(0))


@dataclass
class CaseVolumes:
    """A case on its CT grid as network arrays: channels [C,z,y,x], attention [1,z,y,x] or None, node labels."""

    case_id: str
    channels: np.ndarray
    attention: np.ndarray | None
    nodes: np.ndarray  # instance labels of all nodes (target of segmentation)
    positive_ids: set[int]  # node ids that are GTV_LN (metastatic)
    has_all_nodes: bool  # lymph_nodes.nii.gz given (negatives known)
    spacing_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)  # CT voxel size (x, y, z)


@dataclass
class Cohort:
    name: str
    fold: int
    train: list[CaseVolumes]
    val: list[CaseVolumes]

    @property
    def has_negatives(self) -> bool:
        return any(c.has_all_nodes for c in self.train)

    def description(self) -> dict:
        """What the model was trained on, without case identifiers (a digest of the sorted ids instead)."""
        ids = sorted(c.case_id for c in self.train)
        return {"dataset": self.name, "fold": self.fold, "n_train": len(self.train), "n_val": len(self.val),
                "train_ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
                "target": "lymph_nodes" if all(c.has_all_nodes for c in self.train) else "gtv_ln (some or all cases)",
                # the pipeline runs stage 1 at this voxel size (median over the training cases)
                "spacing_mm": [round(float(v), 4) for v in np.median([c.spacing_mm for c in self.train], axis=0)]}


def load_case(dataset, case_id: str, config, need_attention: bool = True) -> CaseVolumes:
    import SimpleITK as sitk

    from ..models.seg_inputs import attention_array, network_channels

    files = dataset.case(case_id)
    ct = files.load("ct")
    pet = files.load("pet") if config.use_pet else None
    channels = network_channels(config, ct, pet)
    attention = attention_array(case_attention(dataset, files, ct), ct) if need_attention else None
    gtv = sitk.GetArrayFromImage(files.load("gtv_ln"))
    if files.has("lymph_nodes"):
        nodes = sitk.GetArrayFromImage(files.load("lymph_nodes"))
        has_all = True
    else:
        nodes, has_all = gtv, False
    if nodes.shape != channels.shape[1:]:
        raise DatasetError(f"Case {case_id}: the node label map is not on the CT grid; resample it onto the CT.")
    positive = {int(v) for v in np.unique(gtv) if v != 0}
    return CaseVolumes(case_id, channels, attention, nodes.astype(np.int32), positive, has_all,
                       tuple(float(v) for v in ct.GetSpacing()))


def load_cohort(root, fold: int, config, need_attention: bool = True, progress=None) -> Cohort:
    from ..dataset.format import read_dataset

    dataset = read_dataset(root)
    train_ids, val_ids = dataset.split(fold)
    if not train_ids:
        raise DatasetError(f"Fold {fold} leaves no training cases; give more cases or another --fold.")
    loaded = []
    for i, case_id in enumerate(train_ids + val_ids):
        if progress is not None:
            progress.step(i / (len(train_ids) + len(val_ids)), f"loading case {i + 1}")
        loaded.append(load_case(dataset, case_id, config, need_attention))
    if progress is not None:
        progress.step(1.0, f"{len(loaded)} cases loaded")
    return Cohort(dataset.name, fold, loaded[:len(train_ids)], loaded[len(train_ids):])


def training_cases(volumes: list[CaseVolumes], config, seed: int):
    from ..models.seg_inputs import channel_pad_values
    from .sampling import TrainingCase

    out = []
    for k, v in enumerate(volumes):
        attention = v.attention if v.attention is not None else np.ones((1, *v.nodes.shape), np.float32)
        out.append(TrainingCase.build(v.case_id, v.channels, attention, v.nodes > 0, config.patch_size,
                                      channel_pad_values(config), seed=seed + k))
    return out


# ---- phase 1: segmentation ---------------------------------------------------------------------------------------
def _optimizer(name: str, params, lr: float, momentum: float, weight_decay: float):
    import torch

    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def resume_state(path: Path, model, optimizer) -> tuple[int, list[dict]]:
    """Load a *_last.pt resume point into model and optimiser; (first epoch to run, history). (0, []) if absent."""
    from ..models.checkpoint import load_checkpoint

    if not path.is_file():
        return 0, []
    payload = load_checkpoint(path)
    if payload["config"] != dataclasses.asdict(model.config):
        raise ModelError(f"{path} was trained with other network settings; resume with the same "
                         "--config/--no-attention/--pet, or use another --out.")
    model.load_state_dict(payload["state_dict"])
    optimizer.load_state_dict(payload["extra"]["optimizer"])
    return int(payload["extra"]["epoch"]) + 1, list(payload["extra"]["history"])


def _poly(optimizer, base_lr: float, epoch: int, epochs: int) -> None:
    for group in optimizer.param_groups:
        group["lr"] = base_lr * (1 - epoch / max(epochs, 1)) ** 0.9


def _seed_everything(seed: int, epoch: int) -> np.random.Generator:
    import torch

    torch.manual_seed(seed * 100_003 + epoch)
    return np.random.default_rng([seed, epoch])


def rank_rows(batch_size: int, ranks: ddp.Ranks) -> slice:
    """This rank's patches of every batch: an equal share, so that the ranks' mean cross entropies average to the
    batch's (the batch the options give is the effective batch, split over the ranks)."""
    if batch_size % ranks.world:
        raise ModelError(f"A batch of {batch_size} patches does not split evenly over {ranks.world} training "
                         f"processes; start a number of processes that divides {batch_size}.")
    share = batch_size // ranks.world
    return slice(ranks.rank * share, (ranks.rank + 1) * share)


def train_segmentation(data: Cohort, model_config, train_config: SegTrainConfig, out: Path, *, device: str = "cpu",
                       resume: bool = False, progress=None, ranks: ddp.Ranks | None = None) -> str:
    """Train phase 1; write seg_last.pt every epoch and seg_model.pt at the end. Returns the final sha256.
    With several ranks every rank draws (and augments) the whole batch as one process does and computes its share
    (InstanceNorm is per patch, the Tversky index is summed over the ranks, DDP averages the gradients)."""
    import torch

    from ..models.checkpoint import save_checkpoint
    from ..models.seg_loss import SegmentationLoss
    from ..models.unet import AttentionUNet
    from .augment import augment_batch, nnunet_augmentation
    from .sampling import PatchSampler

    torch.manual_seed(train_config.seed)
    model = AttentionUNet(model_config).to(device)
    optimizer = _optimizer(train_config.optimizer, model.parameters(), train_config.learning_rate,
                           train_config.momentum, train_config.weight_decay)
    start, history = resume_state(out / SEG_LAST, model, optimizer) if resume else (0, [])
    ranks = ranks or ddp.Ranks()
    rows = rank_rows(train_config.batch_size, ranks)
    network = ranks.wrap(model)
    loss_fn = SegmentationLoss(sum_over_ranks=ranks.sum_over_ranks if ranks.active else None)
    sampler = PatchSampler(training_cases(data.train, model_config, train_config.seed), model_config.patch_size,
                           train_config.batch_size, train_config.informative_negatives)
    val_batches = _validation_batches(data, model_config, train_config)
    augmentation = nnunet_augmentation() if train_config.augment else None
    total = train_config.epochs * train_config.iterations_per_epoch
    for epoch in range(start, train_config.epochs):
        rng = _seed_everything(train_config.seed, epoch)
        _poly(optimizer, train_config.learning_rate, epoch, train_config.epochs)
        model.train()
        losses, t0 = [], time.perf_counter()
        for it in range(train_config.iterations_per_epoch):
            batch = sampler.batch(rng)
            if augmentation is not None:
                batch = augment_batch(augmentation, *batch, rng)
            x, a, y = (torch.from_numpy(v[rows]).to(device) for v in batch)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(network(x, a if model_config.use_attention else None), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 12.0)
            optimizer.step()
            losses.append(ranks.sum_scalar(loss.item()) / ranks.world)
            if progress is not None:
                done = epoch * train_config.iterations_per_epoch + it + 1
                progress.step(done / total, f"epoch {epoch + 1}/{train_config.epochs} loss {np.mean(losses):.3f}")
        record = {"epoch": epoch, "train_loss": float(np.mean(losses)), "seconds": time.perf_counter() - t0}
        if not ranks.is_main:  # rank 0 validates and writes
            history.append(record)
            continue
        record.update(_validate(model, SegmentationLoss(), val_batches, model_config, device))
        history.append(record)
        save_checkpoint(out / SEG_LAST, model, model_config, training_data=data.description(),
                        metrics=record, extra={"optimizer": optimizer.state_dict(), "epoch": epoch,
                                               "history": history, "train_config": dataclasses.asdict(train_config)})
        _write_log(out, "segmentation", history)
    metrics = history[-1] if history else {}
    if not ranks.is_main:
        ranks.barrier()  # rank 0 writes seg_model.pt (the identification phase starts from it)
        return read_checksum(out / SEG_FINAL)
    sha = save_checkpoint(out / SEG_FINAL, model, model_config, training_data=data.description(), metrics=metrics,
                          extra={"train_config": dataclasses.asdict(train_config), "history": history})
    write_checksum(out / SEG_FINAL, sha)
    ranks.barrier()
    return sha


def _validation_batches(data: Cohort, model_config, train_config: SegTrainConfig) -> list:
    """A fixed set of validation patches (same sampling rules), drawn once with a fixed seed."""
    from .sampling import PatchSampler

    if not data.val or train_config.val_patches <= 0:
        return []
    sampler = PatchSampler(training_cases(data.val, model_config, train_config.seed), model_config.patch_size,
                           train_config.batch_size, train_config.informative_negatives)
    rng = np.random.default_rng([train_config.seed, 10 ** 6])
    return [sampler.batch(rng) for _ in range(math.ceil(train_config.val_patches / train_config.batch_size))]


def _validate(model, loss_fn, batches, model_config, device) -> dict:
    import torch

    if not batches:
        return {}
    model.eval()
    losses, inter, total = [], 0.0, 0.0
    with torch.inference_mode():
        for x, a, y in batches:
            x, a, y = (torch.from_numpy(v).to(device) for v in (x, a, y))
            logits = model(x, a if model_config.use_attention else None)
            losses.append(float(loss_fn(logits, y)))
            pred = logits.argmax(dim=1, keepdim=True)
            inter += float(((pred == 1) & (y == 1)).sum())
            total += float((pred == 1).sum() + (y == 1).sum())
    return {"val_loss": float(np.mean(losses)), "val_patch_dice": 2 * inter / total if total else float("nan")}


def _write_log(out: Path, phase: str, history: list[dict]) -> None:
    path = out / LOG
    log = json.loads(path.read_text()) if path.is_file() else {}
    log[phase] = history
    path.write_text(strict_json(log))


# ---- phase 2: identification -------------------------------------------------------------------------------------
def instance_examples(volumes: list[CaseVolumes], config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patches (x, mask) and labels (1 = GTV_LN) of every ground-truth node of cases that list all nodes."""
    from ..models.identification import instance_patch
    from ..models.seg_inputs import channel_pad_values

    xs, masks, labels = [], [], []
    pad = channel_pad_values(config)
    for v in volumes:
        if not v.has_all_nodes:
            continue
        for node in (int(i) for i in np.unique(v.nodes) if i != 0):
            x, m = instance_patch(v.channels, v.nodes, node, config.id_patch_size, pad)
            xs.append(x)
            masks.append(m)
            labels.append(int(node in v.positive_ids))
    if not xs:
        return np.zeros((0,)), np.zeros((0,)), np.zeros((0,), np.int64)
    return np.stack(xs), np.stack(masks), np.array(labels, np.int64)


def train_identification(data: Cohort, seg_checkpoint: Path, train_config: SegTrainConfig, out: Path, *,
                         device: str = "cpu", resume: bool = False, progress=None,
                         ranks: ddp.Ranks | None = None) -> str:
    """Phase 2: fine-tune the encoder + a new head to classify GT nodes; writes identifier.pt. Returns its sha256."""
    import torch

    from ..models.checkpoint import load_model, save_checkpoint
    from ..models.identification import InstanceIdentifier

    if not Path(seg_checkpoint).is_file():
        raise ModelError(f"{seg_checkpoint} does not exist: train the segmentation first (--phase seg).")
    segmentation, _, _ = load_model(seg_checkpoint)
    torch.manual_seed(train_config.seed)
    model = InstanceIdentifier.from_segmentation(segmentation).to(device)
    config = model.config
    optimizer = _optimizer(train_config.id_optimizer, model.parameters(), train_config.id_learning_rate,
                           train_config.id_momentum, train_config.id_weight_decay)
    start, history = resume_state(out / ID_LAST, model, optimizer) if resume else (0, [])
    ranks = ranks or ddp.Ranks()
    rows = rank_rows(train_config.id_batch_size, ranks)
    network = ranks.wrap(model)
    x_all, m_all, y_all = instance_examples(data.train, config)
    if len(set(y_all.tolist())) < 2:
        raise DatasetError("Identification needs both positive and negative nodes in the training cases "
                           "(lymph_nodes.nii.gz with nodes that are not in gtv_ln.nii.gz).")
    by_class = [np.flatnonzero(y_all == k) for k in (0, 1)]
    val = instance_examples(data.val, config)
    loss_fn = torch.nn.CrossEntropyLoss()
    total = train_config.id_epochs * train_config.id_iterations_per_epoch
    for epoch in range(start, train_config.id_epochs):
        rng = _seed_everything(train_config.seed + 1, epoch)
        _poly(optimizer, train_config.id_learning_rate, epoch, train_config.id_epochs)
        model.train()
        losses = []
        for it in range(train_config.id_iterations_per_epoch):
            half = train_config.id_batch_size // 2
            pick = np.concatenate([rng.choice(by_class[0], half), rng.choice(by_class[1], train_config.id_batch_size - half)])
            x, m, y = (torch.from_numpy(a[pick[rows]]).to(device) for a in (x_all, m_all, y_all))
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(network(x, m), y)
            loss.backward()
            optimizer.step()
            losses.append(ranks.sum_scalar(loss.item()) / ranks.world)
            if progress is not None:
                done = epoch * train_config.id_iterations_per_epoch + it + 1
                progress.step(done / total, f"epoch {epoch + 1}/{train_config.id_epochs} loss {np.mean(losses):.3f}")
        record = {"epoch": epoch, "train_loss": float(np.mean(losses))}
        if not ranks.is_main:  # rank 0 validates and writes
            history.append(record)
            continue
        record.update(_validate_identifier(model, val, device))
        history.append(record)
        save_checkpoint(out / ID_LAST, model, config, training_data=data.description(), metrics=record,
                        extra={"optimizer": optimizer.state_dict(), "epoch": epoch, "history": history,
                               "train_config": dataclasses.asdict(train_config)})
        _write_log(out, "identification", history)
    if not ranks.is_main:
        ranks.barrier()
        return read_checksum(out / ID_FINAL)
    sha = save_checkpoint(out / ID_FINAL, model, config, training_data=data.description(),
                          metrics=history[-1] if history else {},
                          extra={"train_config": dataclasses.asdict(train_config), "history": history,
                                 "initialised_from": Path(seg_checkpoint).name})
    write_checksum(out / ID_FINAL, sha)
    ranks.barrier()
    return sha


def _validate_identifier(model, examples, device) -> dict:
    import torch

    x, m, y = examples
    if len(y) == 0:
        return {}
    model.eval()
    with torch.inference_mode():
        probs = torch.cat([torch.softmax(model(torch.from_numpy(x[i:i + 8]).to(device),
                                               torch.from_numpy(m[i:i + 8]).to(device)), 1)[:, 1].cpu()
                           for i in range(0, len(y), 8)]).numpy()
    pred = probs >= 0.5
    return {"val_accuracy": float((pred == (y == 1)).mean()), "val_n": int(len(y))}
