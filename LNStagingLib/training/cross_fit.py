"""Cross-fitted LN volumes: each training patient's largest positive LN volume predicted by a stage-1 model that
never saw that patient (``lnstaging predict-volumes --cross-fit K``).

Paper 2 feeds its patient model (eq. 7) the volume its own stage 1 + identifier predict; the authors' code keeps
one volume file per fold (``seg_ln_vol_fold{k}``). A stage-1 model segments its own training patients almost
perfectly, the patients it meets in use much less so: a patient model trained on in-sample volumes and tested on
held-out ones learns a feature whose distribution changes between training and use (issue 29). Here the non-test
cases are dealt into K groups (seeded, stratified by the patient label when every case has one, as in
``lnstaging cv``); for each group a stage-1 model and identifier are trained on the other groups with the ordinary
``lnstaging train seg`` on a derived cohort whose test set is the group (WORK/fold{k}/data, cases linked), and the
group's volumes are predicted by the pipeline with that model. A group whose volumes file exists is not redone; a
group whose training was interrupted continues from its *_last.pt (K trainings take hours on a CPU).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError

VOLUMES_CSV = "volumes.csv"


def cross_fit_groups(dataset, k: int, seed: int) -> tuple[list[list[str]], dict[str, int] | None]:
    """The non-test cases in ``k`` seeded groups, stratified by the patient label when both labels occur; and the
    labels used (None: not stratified)."""
    from .cross_validation import outer_folds, patient_labels

    if k < 2:
        raise DatasetError("--cross-fit needs at least 2 groups (each is predicted by a model trained on the others).")
    ids = dataset.trainval_ids
    labels = patient_labels(dataset, ids)
    if labels is not None and len(set(labels.values())) < 2:
        labels = None
    return outer_folds(ids, k, seed, labels), labels


def check_stage1_options(seg_args: list[str]) -> None:
    """LN volumes need both stage-1 phases (segmentation and identifier)."""
    if "--phase" in seg_args:
        raise DatasetError("LN volumes need the stage-1 model and the identifier: drop --phase from the stage-1 "
                           "training options.")


def train_seg_command(data: Path, out: Path, config: str, seed: int, seg_args: list[str],
                      resume: bool = False) -> list[str]:
    """argv of the stage-1 training (segmentation + identifier) on ``data``'s folds, inner fold 0 validating;
    ``resume``: continue from the *_last.pt an interrupted training left in ``out``."""
    check_stage1_options(seg_args)
    return ["train", "seg", "--data", str(data), "--out", str(out), "--config", config, "--fold", "0",
            "--seed", str(seed), "--resume" if resume else "--overwrite", *seg_args]


def models_ready(folder: Path) -> bool:
    """A finished stage-1 training (the identifier is written last)."""
    return (folder / "seg_model.pt").is_file() and (folder / "identifier.pt").is_file()


def cross_fit_volumes(dataset, k: int, work: Path, *, config: str = "small", seed: int = 0, seg_args=(),
                      threshold: float = 0.5, device: str = "cpu", threads=None, progress=None) -> dict[str, float]:
    """case id -> V_max_pLN (mm3) for every non-test case, each from a stage-1 model trained without it."""
    from ..cli import main as cli
    from ..commands.predict_volumes import predict_volumes
    from ..dataset.ln_volumes import read_ln_volumes, write_ln_volumes
    from ..models.checkpoint import sha256_of
    from ..pipeline import ModelSelection
    from ..progress import Progress
    from .cross_validation import write_fold_cohort

    progress = progress or Progress()
    groups, labels = cross_fit_groups(dataset, k, seed)
    volumes: dict[str, float] = {}
    for j, group in enumerate(groups):
        fold = Path(work) / f"fold{j}"
        done = fold / VOLUMES_CSV
        # refuses a working folder made with another split (other --seed, K or cohort)
        data = write_fold_cohort(dataset, group, max(2, k - 1), seed, fold / "data", labels)
        if not done.is_file():
            models = fold / "seg"
            if not models_ready(models):
                # an interrupted training continues where it stopped (train seg's resume draws the same patches)
                argv = train_seg_command(data, models, config, seed, list(seg_args),
                                         resume=any(models.glob("*_last.pt")))
                code = cli(argv)
                if code:
                    raise DatasetError(f"cross-fit group {j}: 'lnstaging train seg' failed (exit {code}).")
            selection = ModelSelection(seg=models / "seg_model.pt", identification=models / "identifier.pt")
            selection.sha256 = {stage: sha256_of(getattr(selection, stage)) for stage in ("seg", "identification")}
            predicted = predict_volumes(dataset, group, selection, threshold=threshold, device=device,
                                        threads=threads, progress=progress.sub(j / k, (j + 1) / k))
            write_ln_volumes(done, predicted)
        volumes.update(read_ln_volumes(done))
    return {case_id: volumes[case_id] for case_id in dataset.trainval_ids}
