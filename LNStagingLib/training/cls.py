"""``lnstaging train cls``: train the stage-2 candidate classifier (CNN, CNN+GNNb, CNN+GNNp) on a cohort.

Paper 1, sec. 3: Adam, learning rate 1e-4; one patient (graph) per step with gradient accumulation over 8 patients;
the CNN initialised from a trained CNN baseline (``--init-cnn``; ``--init-scope first`` loads only the first layer as
in the paper, ``backbone`` (default) the whole CNN, which trains faster on small cohorts).

Data: each case's candidates.csv (ground-truthed candidates: label 1 = GTV_LN), ct/pet, tumor (for the spatial
priors, LNStagingLib.priors.candidate_priors), and lymph_nodes/gtv_ln for the node sizes that decide patch resizing.
ROI-GAP pools over each candidate's own mask where one exists (``--roi label``, the default, as in paper 1: the
node's instance in lymph_nodes/gtv_ln) and over a sphere of roi_radius_mm only for point candidates. When masks exist
for one class far more often than for the other (e.g. look-alikes given as points while real nodes have masks), the
network could learn "has a mask" instead of anatomy: training then prints a warning, and ``--roi sphere`` gives every
candidate a sphere.
Class imbalance: BCE with pos_weight = negatives / positives of the training set (capped at 50).
Patches are cached per case in <out>/cache (keyed by the patch settings and the case files' sizes and times), so
only the first epoch reads images. Deterministic on the CPU for a given --seed: epoch e shuffles and augments with
the seed (seed, e), so a resumed run continues exactly as an uninterrupted one. The saved epoch is the one with the
best validation mFROC; for a --reveal-labels model, the best mean of that mFROC and the pending candidates' mFROC
after 1-3 decisions (evaluation/cls.py pending_mfroc).

``--reveal-labels`` (gnnp only, issue 19) trains the review-state variant: at every step a random subset of the
patient's candidates (0 to half of them) has its label revealed through the node's review-state input (accepted =
label 1, rejected = label 0) and the loss is computed on the hidden candidates only, so the model learns to
re-score the pending candidates from any set of a reviewer's decisions (inference/rescore.py). Its decided nodes
also send the explicit-feature message of models/gnn.py (the decision channel). ``--freeze-cnn`` trains the graph
head alone on the CNN given by ``--init-cnn`` (weights and BatchNorm statistics fixed): minutes instead of the CNN's
epochs, and the CNN + priors' features stay the ones the re-scoring is compared against.

Outputs in --out: cls_model.pt (the epoch with the best validation mFROC, or the last without validation cases),
cls_last.pt (resume point: weights + optimiser state), train_cls_log.json; sha256 printed and in cls_model.pt.sha256.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..errors import DatasetError, ModelError
from ..evaluation.cls import evaluate_cases, pending_mfroc  # noqa: F401  (the validation metrics)
from ..inference.case_inputs import CaseCandidates, case_lesions, load_case_candidates  # noqa: F401
from ..scaling import ddp
from .options import add_common_arguments
from .outputs import read_checksum, strict_json, write_checksum

FINAL, LAST, LOG = "cls_model.pt", "cls_last.pt", "train_cls_log.json"
DEFAULT_EPOCHS = {"tiny": 1, "small": 30, "paper": 30}


def add_arguments(parser) -> None:
    add_common_arguments(parser, data_help="cohort folder (docs/DATASET.md) with candidates.csv per case",
                         out_help="output folder for checkpoints, log and patch cache", resume_file=LAST)
    parser.add_argument("--head", choices=("cnn", "gnnb", "gnnp"), default="gnnp")
    parser.add_argument("--no-pet", action="store_true", help="CT only (Table 1 ablation)")
    parser.add_argument("--no-priors", action="store_true", help="without spatial priors s (Table 1 ablation)")
    parser.add_argument("--init-cnn", metavar="CKPT", help="stage-2 checkpoint of a trained CNN baseline")
    parser.add_argument("--init-scope", choices=("first", "backbone"), default="backbone",
                        help="what --init-cnn loads: the first conv layer (paper) or the whole CNN (default)")
    parser.add_argument("--roi", choices=("label", "sphere"), default="label",
                        help="ROI-GAP region: the candidate's own mask where it has one, else a sphere (label, "
                             "default), or a sphere for every candidate (sphere)")
    parser.add_argument("--angles", choices=("degrees", "sincos"), default="degrees",
                        help="tumour elevation and azimuth into the graph head: z-scored degrees (default) or their "
                             "sine and cosine (no jump at +-180 degrees)")
    parser.add_argument("--epochs", type=int, help="default: 1 (tiny), 30 (small, paper)")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--accumulate", type=int, default=8, help="patients per optimiser step (default 8; with "
                                                                  "--distributed split over the ranks)")
    ddp.add_distributed_argument(parser)
    parser.add_argument("--reveal-labels", action="store_true",
                        help="gnnp with the review state as node input, trained with random subsets of each "
                             "patient's labels revealed (loss on the hidden ones): re-scores from review decisions")
    parser.add_argument("--freeze-cnn", action="store_true",
                        help="train the head only; the CNN from --init-cnn stays fixed (weights and BatchNorm)")


# ---- data --------------------------------------------------------------------------------------------------------
def as_tensors(case: CaseCandidates, device: str, flip_axes: tuple[int, ...] = ()):
    import torch

    images = torch.from_numpy(case.images.astype(np.float32))
    masks = torch.from_numpy(case.masks.astype(np.float32))
    if flip_axes:
        images, masks = images.flip(flip_axes), masks.flip(flip_axes)
    return (images.to(device), masks.to(device), torch.from_numpy(case.priors).float().to(device),
            torch.from_numpy(case.labels).float().to(device))


# ---- training ----------------------------------------------------------------------------------------------------
def reveal_labels(rng: np.random.Generator, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(review states [N]: label where revealed, -1 elsewhere; hidden mask [N]). Between none and half of the
    candidates are revealed (uniform count, uniform subset), so at least one stays hidden for the loss."""
    n = len(labels)
    k = int(rng.integers(0, n // 2 + 1))
    revealed = np.zeros(n, dtype=bool)
    revealed[rng.choice(n, size=k, replace=False)] = True
    states = np.where(revealed, np.asarray(labels, dtype=np.int64), -1)
    return states, ~revealed


def _seed(seed: int, epoch: int) -> np.random.Generator:
    import torch

    torch.manual_seed(seed * 100_003 + epoch)
    return np.random.default_rng([seed, epoch])


def prior_normalisation(cases: list[CaseCandidates]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    import warnings

    values = np.concatenate([c.priors for c in cases])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing prior column: mean 0, std 1
        mean = np.nan_to_num(np.nanmean(values, axis=0), nan=0.0)
        std = np.nan_to_num(np.nanstd(values, axis=0), nan=1.0)
    std[std < 1e-6] = 1.0
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def mask_class_imbalance(cases: list[CaseCandidates], tolerance: float = 0.1) -> str:
    """A sentence when positives and negatives have their own ROI mask at very different rates ('' otherwise)."""
    labels = np.concatenate([c.labels for c in cases])
    has_mask = np.concatenate([c.has_mask if c.has_mask is not None else np.zeros(len(c.labels), bool)
                               for c in cases])
    if not has_mask.any() or labels.min() == labels.max():
        return ""
    positive, negative = float(has_mask[labels == 1].mean()), float(has_mask[labels == 0].mean())
    if abs(positive - negative) <= tolerance:
        return ""
    return (f"{positive:.0%} of the positive and {negative:.0%} of the negative candidates have their own ROI mask; "
            "the classifier may learn the ROI's shape instead of the anatomy (use --roi sphere, or give masks for "
            "all candidates).")


def init_cnn_from(model, path: str, scope: str) -> list[str]:
    """Copy CNN weights from a trained stage-2 (or roi_cnn) checkpoint; returns the names copied."""
    from ..models.checkpoint import load_checkpoint

    payload = load_checkpoint(path)
    state = payload["state_dict"]
    prefix = "cnn." if payload["model"] == "stage2" else ""
    own = model.cnn.state_dict()
    wanted = [k for k in own if (scope == "backbone" and not k.startswith("classifier"))
              or (scope == "first" and k.startswith("stem."))]
    copied = {k: state[prefix + k] for k in wanted if prefix + k in state and state[prefix + k].shape == own[k].shape}
    if not copied:
        raise ModelError(f"{Path(path).name} holds no CNN weights that fit this network (other --config or --no-pet?).")
    model.cnn.load_state_dict(copied, strict=False)
    return sorted(copied)


def train(args) -> str:
    import torch
    from tqdm import tqdm

    from ..dataset.format import read_dataset
    from ..models.checkpoint import save_checkpoint
    from ..models.stage2 import Stage2Model, describe, stage2_config
    from .seg import resolve_device, resume_state

    from .options import check_training_out

    check_training_out(args, [FINAL], init_cnn=args.init_cnn)
    freeze = bool(getattr(args, "freeze_cnn", False))
    if freeze and not args.init_cnn:
        raise DatasetError("--freeze-cnn keeps the CNN of --init-cnn fixed: give --init-cnn CKPT.")
    if freeze and args.head == "cnn":
        raise DatasetError("--freeze-cnn trains the graph head only; --head cnn has no head to train.")
    ranks = ddp.start(getattr(args, "distributed", False), args.device)
    device = ranks.device(resolve_device(args.device))
    dataset = read_dataset(args.data)
    train_ids, val_ids = dataset.split(args.fold)
    if not train_ids:
        raise DatasetError(f"Fold {args.fold} leaves no training cases; use more cases or another fold.")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "cache"
    probe = stage2_config(args.config, head=args.head, use_pet=not args.no_pet, use_priors=False,
                          roi_source=args.roi)
    if ranks.active:  # each rank fills its share of the patch cache, then every rank reads all of it
        for case_id in ranks.share(train_ids + val_ids):
            load_case_candidates(dataset, case_id, probe, cache)
        ranks.barrier()
    quiet = not ranks.is_main
    train_cases = [load_case_candidates(dataset, c, probe, cache)
                   for c in tqdm(train_ids, desc="patches (train)", disable=quiet)]
    val_cases = [load_case_candidates(dataset, c, probe, cache) for c in tqdm(val_ids, desc="patches (val)", disable=quiet)]
    if not args.no_pet and any(c.images.shape[1] < 2 for c in train_cases):
        raise DatasetError("Some training cases have no PET; train a CT-only model with --no-pet.")
    warning = mask_class_imbalance(train_cases)
    if warning and ranks.is_main:
        print(f"warning: {warning}")
    names = train_cases[0].prior_names
    mean, std = prior_normalisation(train_cases)
    trained = tuple(bool(v) for v in np.isfinite(np.concatenate([c.priors for c in train_cases])).any(axis=0))
    reveal = bool(getattr(args, "reveal_labels", False))
    config = stage2_config(args.config, head=args.head, use_pet=not args.no_pet, use_priors=not args.no_priors,
                           roi_source=args.roi, review_state=reveal, decision_channel=reveal,
                           angle_encoding=getattr(args, "angles", "degrees"),
                           **({} if args.no_priors else
                                                   dict(prior_names=names, prior_mean=mean, prior_std=std,
                                                        prior_trained=trained)))
    torch.manual_seed(args.seed)  # the initial weights
    model = Stage2Model(config).to(device)
    initialised = init_cnn_from(model, args.init_cnn, args.init_scope) if args.init_cnn else []
    if freeze:
        model.cnn.requires_grad_(False)

    def train_mode():
        """Training mode, except a frozen CNN, whose BatchNorm keeps the statistics it was trained with."""
        model.train()
        if freeze:
            model.cnn.eval()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    start, history = resume_state(out / LAST, model, optimizer) if args.resume else (0, [])
    # one patient per forward, so BatchNorm's batch is a patient on every rank alike; its running statistics are
    # rebuilt after every step as one process updates them (SequentialStatistics). With a head, the CNN's own
    # classifier is outside the loss: DDP must not wait for its gradient.
    network = ranks.wrap(model, find_unused_parameters=model.head is not None, sync_buffers=False)
    statistics = ddp.SequentialStatistics(model, ranks) if ranks.active else None
    labels = np.concatenate([c.labels for c in train_cases])
    n_pos, n_neg = int(labels.sum()), int(len(labels) - labels.sum())
    pos_weight = torch.tensor(float(np.clip(n_neg / max(n_pos, 1), 1.0, 50.0)), device=device)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    epochs = args.epochs or DEFAULT_EPOCHS[args.config]
    description = {"dataset": dataset.name, "fold": args.fold, "train_cases": len(train_ids),
                   "val_cases": len(val_ids), "train_candidates": len(labels), "train_positives": n_pos,
                   "dataset_json_sha256": hashlib.sha256((dataset.root / "dataset.json").read_bytes()).hexdigest(),
                   "seed": args.seed, "epochs": epochs, "lr": args.lr, "accumulate": args.accumulate,
                   "init_cnn": Path(args.init_cnn).name if args.init_cnn else None, "init_scope": args.init_scope,
                   "init_cnn_tensors": len(initialised), "reveal_labels": reveal, "freeze_cnn": freeze}
    best = max((h.get("val", {}).get("selection", h.get("val", {}).get("mFROC", -1.0)) for h in history), default=-1.0)
    for epoch in range(start, epochs):
        rng = _seed(args.seed, epoch)
        train_mode()
        optimizer.zero_grad(set_to_none=True)
        order = rng.permutation(len(train_cases))
        # the draws of every patient (flips, revealed labels) on every rank alike, in the one-process order
        draws = [(int(k), tuple(int(a) for a in 2 + np.flatnonzero(rng.random(3) < 0.5)),
                  reveal_labels(rng, train_cases[k].labels) if reveal else (None, None)) for k in order]
        total, bar = 0.0, tqdm(total=len(order), desc=f"epoch {epoch + 1}/{epochs}", leave=False,
                               disable=not ranks.is_main)
        for first in range(0, len(order), args.accumulate):  # one optimiser step
            group = draws[first:first + args.accumulate]
            steps = ranks.micro_steps(list(enumerate(group)))
            step_loss = 0.0
            if statistics:
                statistics.begin(len(group))
            for i, ((position, (k, flips, (states, hidden))), weight) in enumerate(steps):
                with ranks.reducing(network, last=i == len(steps) - 1):
                    if weight == 0.0:
                        model.eval()  # padding step: no running statistic changes, weight 0: no gradient
                    images, masks, priors, y = as_tensors(train_cases[k], device, flips)
                    if reveal:
                        logits = network(images, masks, priors if config.use_priors else None,
                                         torch.from_numpy(states).to(device))
                        keep = torch.from_numpy(hidden).to(device)
                        loss = loss_fn(logits[keep], y[keep])
                    else:
                        loss = loss_fn(network(images, masks, priors if config.use_priors else None), y)
                    (loss * weight / args.accumulate).backward()
                    train_mode()
                if statistics and weight > 0:
                    statistics.record(position)
                step_loss += loss.item() * (weight > 0)
            if statistics:
                statistics.end()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            total += ranks.sum_scalar(step_loss)  # every rank's patients: the bar shows what the log records
            bar.update(min(args.accumulate, len(order) - first))
            bar.set_postfix(loss=f"{total / min(first + args.accumulate, len(order)):.4f}")
        bar.close()
        record = {"epoch": epoch, "train_loss": total / len(order)}
        if not ranks.is_main:  # rank 0 validates and writes; the others go on to the next epoch's first reduction
            history.append(record)
            continue
        if val_cases:
            record["val"], probabilities, _ = evaluate_cases(model, val_cases, device)
            if reveal:  # a review-state model is chosen on what it is for as well: re-scoring after decisions
                record["val"]["pending_mFROC"] = pending_mfroc(model, val_cases, probabilities)
                record["val"]["selection"] = (record["val"]["mFROC"] + record["val"]["pending_mFROC"]) / 2
        history.append(record)
        print(strict_json(record, indent=None))
        save_checkpoint(out / LAST, model, config, training_data=description, metrics=record,
                        extra={"optimizer": optimizer.state_dict(), "epoch": epoch, "history": history})
        score = record.get("val", {}).get("selection", record.get("val", {}).get("mFROC", 0.0))
        if not val_cases or score > best:
            best = score
            sha = save_checkpoint(out / FINAL, model, config, training_data=description, metrics=record,
                                  extra={"config": describe(config), "history": history})
        (out / LOG).write_text(strict_json(history))
    if not ranks.is_main:
        ranks.close()  # waits for rank 0's files
        return read_checksum(out / FINAL)
    if not (out / FINAL).is_file():  # resumed after the last epoch: keep the last weights
        sha = save_checkpoint(out / FINAL, model, config, training_data=description, metrics=history[-1] if history
                              else {}, extra={"config": describe(config), "history": history})
    from ..models.checkpoint import sha256_of

    sha = sha256_of(out / FINAL)
    write_checksum(out / FINAL, sha)
    ranks.close()
    return sha


def main(args) -> int:
    sha = train(args)
    if ddp.main_process():
        print(f"stage-2 model written to {Path(args.out) / FINAL} (sha256 {sha})")
    return 0
