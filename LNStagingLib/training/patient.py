"""``lnstaging train patient``: train the patient-level metastasis network (paper 2, sec. III-B) on a cohort.

Each training patient gives its nine tumour patches (CT + tumour mask), its label from patient.json, and the volume
of its largest positive lymph node, taken here from gtv_ln.nii.gz (at inference it comes from the pipeline's
GTV_LN). Every patch carries the patient's label; a step takes ``patients_per_step`` patients (9 patches each).
Paper optimiser: SGD with Nesterov momentum 0.95, learning rate 5e-4, weight decay 1e-4.

Outputs in --out: patient_model.pt (final checkpoint; sha256 printed and in patient_model.pt.sha256),
patient_last.pt (resume point with optimiser state) and train_patient_log.json. Deterministic for a given --seed on
the CPU: the patient order of epoch e comes from (seed, e), so a resumed run continues as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError, ModelError
from ..inference.case_inputs import PatientExample, load_examples, predict_examples  # noqa: F401
from ..scaling import ddp
from .options import add_common_arguments
from .outputs import read_checksum, strict_json, write_checksum

FINAL, LAST, LOG = "patient_model.pt", "patient_last.pt", "train_patient_log.json"


@dataclass
class PatientTrainConfig:
    epochs: int = 100
    patients_per_step: int = 4
    optimizer: str = "sgd"
    learning_rate: float = 5e-4
    momentum: float = 0.95
    weight_decay: float = 1e-4
    seed: int = 0
    flip_augment: bool = True  # random left-right flips of the patches (tumour texture has no handedness)


TRAIN_PRESETS = {
    "paper": {},
    "small": dict(epochs=30, optimizer="adam", learning_rate=1e-3),
    "tiny": dict(epochs=1, patients_per_step=2, optimizer="adam", learning_rate=1e-3),
}


def add_arguments(parser) -> None:
    add_common_arguments(parser, resume_file=LAST)
    parser.add_argument("--epochs", type=int, help="epochs (default: by --config)")
    parser.add_argument("--init-weights", metavar="FILE",
                        help="state dict to start from (e.g. an ImageNet ResNet-18); loaded with weights_only=True, "
                             "tensors that do not fit are reported and left at their initial values")
    parser.add_argument("--ln-volumes", metavar="FILE",
                        help="largest positive LN volume per case as the pipeline predicts it (lnstaging "
                             "predict-volumes; CSV case,volume_mm3 or JSON), as paper 2 trains eq. 7; default: from "
                             "gtv_ln.nii.gz (ground truth)")
    parser.add_argument("--no-ln-volume", action="store_true", help="ablation: tumour slices only")
    parser.add_argument("--no-texture-encoding", action="store_true", help="ablation: global average pooling only")
    parser.add_argument("--no-mask-branch", action="store_true", help="ablation: no tumour-mask side branch")
    parser.add_argument("--patient-head", choices=("linear", "authors"),
                        help="one linear layer (default), or the authors' ReLU after the volume FC and two-layer "
                             "head (Linear - ReLU - Linear, 64 hidden)")
    parser.add_argument("--tel-size", metavar="DIMxCODEWORDS",
                        help="texture encoding size, e.g. 64x8 (the authors'); default: by --config")
    parser.add_argument("--tel-masked", action="store_true",
                        help="texture encoding over the tumour mask's positions only, as the authors' code")
    ddp.add_distributed_argument(parser)


def main(args) -> int:
    from ..models.patient import preset
    from ..progress import tqdm_progress
    from ..inference.device import resolve_device

    train_config = PatientTrainConfig(**TRAIN_PRESETS[args.config], seed=args.seed)
    if args.epochs is not None:
        train_config.epochs = args.epochs
    model_config = preset(args.config, use_ln_volume=not args.no_ln_volume,
                          use_texture_encoding=not args.no_texture_encoding, use_mask_branch=not args.no_mask_branch,
                          **authors_options(args))
    from .options import check_training_out

    check_training_out(args, [FINAL], init_weights=args.init_weights)
    ranks = ddp.start(getattr(args, "distributed", False), args.device)
    device = ranks.device(resolve_device(args.device))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    volumes = None
    if args.ln_volumes:
        from ..dataset.ln_volumes import read_ln_volumes

        volumes = read_ln_volumes(args.ln_volumes)
    loading = tqdm_progress("loading cases") if ranks.is_main else None
    cohort = load_cohort(args.data, args.fold, model_config, progress=loading,
                         ln_volumes=volumes, ln_volume_source=Path(args.ln_volumes).name if args.ln_volumes else None)
    if loading is not None:
        loading.step(1.0, f"{len(cohort.train) + len(cohort.val)} cases")
    sha = train(cohort, model_config, train_config, out, device=device, resume=args.resume,
                init_weights=args.init_weights, progress=tqdm_progress("train patient") if ranks.is_main else None,
                ranks=ranks)
    if ranks.is_main:
        print(f"patient model: {out / FINAL} (sha256 {sha})")
    return 0


def authors_options(args) -> dict:
    """Network fields of the options that reproduce the authors' code (models/patient.py)."""
    options = {}
    if getattr(args, "patient_head", None):
        options["head"] = args.patient_head
    if getattr(args, "tel_masked", False):
        options["tel_masked"] = True
    if getattr(args, "tel_size", None):
        dim, _, codewords = args.tel_size.lower().partition("x")
        if not (dim.isdigit() and codewords.isdigit() and int(dim) > 0 and int(codewords) > 0):
            raise ModelError(f"--tel-size {args.tel_size!r} is not DIMxCODEWORDS, e.g. 64x8.")
        options |= {"tel_dim": int(dim), "tel_codewords": int(codewords)}
    return options


# ---- data --------------------------------------------------------------------------------------------------------
@dataclass
class PatientCohort:
    name: str
    fold: int | None
    train: list[PatientExample]
    val: list[PatientExample]
    ln_volume_source: str = "gtv_ln.nii.gz (ground truth)"

    def description(self) -> dict:
        """What the model was trained on, without case identifiers (a digest of the sorted ids instead)."""
        ids = sorted(e.case_id for e in self.train)
        return {"dataset": self.name, "fold": self.fold, "n_train": len(self.train), "n_val": len(self.val),
                "n_train_positive": sum(e.label for e in self.train),
                "train_ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
                "ln_volume_source": self.ln_volume_source}


def load_cohort(root, fold: int, config, progress=None, ln_volumes: dict | None = None,
                ln_volume_source: str | None = None) -> PatientCohort:
    """The fold's examples; LN volumes from ``ln_volumes`` (case -> mm3, e.g. predicted) when given, else gtv_ln."""
    from ..dataset.format import read_dataset

    dataset = read_dataset(root)
    train_ids, val_ids = dataset.split(fold)
    if len(train_ids) < 2:
        raise DatasetError(f"Fold {fold} leaves {len(train_ids)} training case(s); the patient model needs more.")
    examples = load_examples(dataset, train_ids + val_ids, config, progress, ln_volumes)
    train_examples = examples[:len(train_ids)]
    if len({e.label for e in train_examples}) < 2:
        raise DatasetError("The training cases are all metastasis-positive or all negative; the patient model needs "
                           "both (check patient.json of the cases, or the folds).")
    source = "gtv_ln.nii.gz (ground truth)" if ln_volumes is None else f"{ln_volume_source or 'given'} (predicted)"
    return PatientCohort(dataset.name, fold, train_examples, examples[len(train_ids):], source)


# ---- training ----------------------------------------------------------------------------------------------------
def _batch(examples: list[PatientExample], device, rng: np.random.Generator | None = None, rows=None):
    """The step's patches (image, mask, LN volume, label); ``rows``: only these patches (a rank's share), after the
    flips were drawn for all of them (so every rank draws as one process does)."""
    import torch

    image = torch.cat([e.inputs["image"] for e in examples])
    mask = torch.cat([e.inputs["mask"] for e in examples])
    if rng is not None:  # left-right flip of whole patches, drawn per patch
        flip = torch.from_numpy(rng.random(len(image)) < 0.5)
        image = torch.where(flip[:, None, None, None], image.flip(-1), image)
        mask = torch.where(flip[:, None, None, None], mask.flip(-1), mask)
    volume = torch.cat([e.inputs["ln_volume_mm3"] for e in examples])
    label = torch.cat([torch.full((len(e.inputs["image"]),), float(e.label)) for e in examples])
    if rows is not None:
        image, mask, volume, label = image[rows], mask[rows], volume[rows], label[rows]
    return image.to(device), mask.to(device), volume.to(device), label.to(device)


def _patch_rows(n_patches: int, ranks: ddp.Ranks) -> np.ndarray:
    """This rank's rows of a step's n_patches patches: consecutive and of (nearly) equal size, so that no rank is
    empty (a step may hold fewer patients than there are ranks)."""
    if n_patches < ranks.world:
        raise ModelError(f"A step of {n_patches} patches cannot be split over {ranks.world} training processes; "
                         "start fewer processes.")
    return np.array_split(np.arange(n_patches), ranks.world)[ranks.rank]


def _validate(model, examples, device) -> dict:
    from ..evaluation.metrics import binary_metrics

    if not examples:
        return {}
    probs = predict_examples(model, examples, device)
    m = binary_metrics([e.label for e in examples], probs)
    return {f"val_{k}": m[k] for k in ("balanced_accuracy", "auc", "sensitivity", "specificity")}


def train(cohort: PatientCohort, model_config, train_config: PatientTrainConfig, out: Path, *, device: str = "cpu",
          resume: bool = False, init_weights: str | None = None, progress=None, ranks: ddp.Ranks | None = None) -> str:
    """Train; write patient_last.pt every epoch and patient_model.pt at the end. Returns the final sha256.

    With several ranks (scaling/ddp.py) each computes its share of a step's patches (the patients' patches split in
    consecutive runs); BatchNorm normalises over all ranks' patches and DDP averages the gradients, so the step
    equals one process's over the whole step."""
    import torch

    from ..models.checkpoint import load_checkpoint, save_checkpoint
    from ..models.patient import PatientMetastasisNet, load_init_weights

    out = Path(out)
    torch.manual_seed(train_config.seed)
    model = PatientMetastasisNet(model_config)
    init_note = None
    if init_weights and not (resume and (out / LAST).is_file()):
        report = load_init_weights(model, init_weights)
        init_note = {"file": Path(init_weights).name, "summary": report.summary()}
        if ranks is None or ranks.is_main:
            print(f"initial weights {Path(init_weights).name}: {report.summary()}")
    ranks = ranks or ddp.Ranks()
    model = ranks.sync_batch_norm(model.to(device))
    params = model.parameters()
    if train_config.optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=train_config.learning_rate, momentum=train_config.momentum,
                                    nesterov=True, weight_decay=train_config.weight_decay)
    else:
        optimizer = torch.optim.Adam(params, lr=train_config.learning_rate, weight_decay=train_config.weight_decay)
    history: list[dict] = []
    start = 0
    if resume and (out / LAST).is_file():
        payload = load_checkpoint(out / LAST)
        if payload["config"] != dataclasses.asdict(model_config):
            raise ModelError(f"{out / LAST} was trained with other network settings; resume with the same --config "
                             "and ablation flags, or use another --out.")
        model.load_state_dict(payload["state_dict"])
        optimizer.load_state_dict(payload["extra"]["optimizer"])
        start, history = int(payload["extra"]["epoch"]) + 1, list(payload["extra"]["history"])
        init_note = payload["extra"].get("init_weights")
    network = ranks.wrap(model, sync_buffers=False)  # synchronised BatchNorm: equal statistics on every rank
    labels = np.array([e.label for e in cohort.train])
    pos_weight = torch.tensor(max((labels == 0).sum(), 1) / max((labels == 1).sum(), 1), device=device)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)  # class balance at the patch level
    step = max(1, train_config.patients_per_step)
    steps_per_epoch = -(-len(cohort.train) // step)
    for epoch in range(start, train_config.epochs):
        torch.manual_seed(train_config.seed * 100_003 + epoch)
        rng = np.random.default_rng([train_config.seed, epoch])
        order = rng.permutation(len(cohort.train))
        model.train()
        losses, t0 = [], time.perf_counter()
        for k in range(steps_per_epoch):
            chosen = [cohort.train[i] for i in order[k * step:(k + 1) * step]]
            patches = sum(len(e.inputs["image"]) for e in chosen)
            rows = torch.from_numpy(_patch_rows(patches, ranks))
            image, mask, volume, label = _batch(chosen, device, rng if train_config.flip_augment else None, rows)
            optimizer.zero_grad(set_to_none=True)
            # this rank's mean x its share of the step x ranks (DDP averages over them) = the step's mean (x 1.0 alone)
            loss = loss_fn(network(image, mask, volume), label) * (len(rows) * ranks.world / patches)
            loss.backward()
            optimizer.step()
            losses.append(ranks.sum_scalar(loss.item()) / ranks.world)
            if progress is not None:
                done = (epoch * steps_per_epoch + k + 1) / (train_config.epochs * steps_per_epoch)
                progress.step(done, f"epoch {epoch + 1}/{train_config.epochs} loss {np.mean(losses):.3f}")
        record = {"epoch": epoch, "train_loss": float(np.mean(losses)), "seconds": time.perf_counter() - t0}
        if not ranks.is_main:  # rank 0 validates and writes
            history.append(record)
            continue
        record.update(_validate(model, cohort.val, device))
        history.append(record)
        save_checkpoint(out / LAST, model, model_config, training_data=cohort.description(), metrics=record,
                        extra={"optimizer": optimizer.state_dict(), "epoch": epoch, "history": history,
                               "train_config": dataclasses.asdict(train_config), "init_weights": init_note})
        (out / LOG).write_text(strict_json({"patient": history}))
    model.eval()
    if not ranks.is_main:
        ranks.close()  # waits for rank 0's files
        return read_checksum(out / FINAL)
    sha = save_checkpoint(out / FINAL, model, model_config, training_data=cohort.description(),
                          metrics=history[-1] if history else {},
                          extra={"train_config": dataclasses.asdict(train_config), "history": history,
                                 "init_weights": init_note})
    write_checksum(out / FINAL, sha)
    ranks.close()
    return sha
