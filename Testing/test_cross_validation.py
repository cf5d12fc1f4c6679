"""`lnstaging cv`: nested cross-validation. Outer folds partition the non-test cases, every case is tested once by a
model that never saw it, the inner validation fold lies inside the outer training set, and the pooled summary is
computed from the folds' evaluation files."""

import json

import numpy as np
import pytest

from LNStagingLib.cli import main as cli
from LNStagingLib.dataset.format import read_dataset
from LNStagingLib.phantom.cohort import write_cohort
from LNStagingLib.training.cross_validation import outer_folds, pooled_summary, write_fold_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("cv") / "cohort", seed=4, cases=6, size=(64, 64, 40), folds=2,
                        test_fraction=0.0, direction="mixed")


def test_outer_folds_partition_and_fold_cohorts_nest(cohort, tmp_path):
    dataset = read_dataset(cohort)
    groups = outer_folds(dataset.trainval_ids, 3, seed=0)
    assert sorted(c for g in groups for c in g) == sorted(dataset.trainval_ids) and all(len(g) == 2 for g in groups)
    assert groups == outer_folds(dataset.trainval_ids, 3, seed=0) != outer_folds(dataset.trainval_ids, 3, seed=1)
    fold = read_dataset(write_fold_cohort(dataset, groups[0], 2, 0, tmp_path / "fold0"))
    assert fold.test_ids == groups[0]
    train, val = fold.split(0)
    assert set(train) | set(val) == set(dataset.trainval_ids) - set(groups[0]) and val and train
    assert (fold.root / "cases" / groups[0][0] / "ct.nii.gz").is_file()  # the original case files, linked


def test_pooled_summary_tests_every_case_once():
    """Patient AUC pooled over folds with DeLong's interval; cls mFROC pooled over every fold's patients."""
    rng = np.random.default_rng(0)
    patient_reports, cls_reports = [], []
    for k in range(2):
        patients = [{"case": f"c{k}{i}", "label": int(i % 2), "probability": float(0.3 + 0.4 * (i % 2) +
                                                                                rng.normal(0, 0.2))} for i in range(6)]
        patient_reports.append({"patients": patients})
        probabilities = {f"c{k}{i}": [0.9, 0.2, 0.4] for i in range(3)}
        truth = {f"c{k}{i}": {"labels": [1, 0, 0], "node_ids": [1, 0, 0], "n_lesions": 1} for i in range(3)}
        cls_reports.append({"probabilities": probabilities, "truth": truth, "metrics": {"mFROC": 1.0}})
    summary = pooled_summary({"patient": patient_reports, "cls": cls_reports})
    assert summary["patient"]["patients"] == 12 and summary["patient"]["positive"] == 6
    low, high = summary["patient"]["auc_95ci_delong"]
    assert low <= summary["patient"]["auc"] <= high
    assert summary["cls"]["patients"] == 6 and summary["cls"]["lesions"] == 6 and summary["cls"]["mFROC"] == 1.0


@pytest.mark.slow
def test_cv_runs_seg_and_cls_on_two_folds(cohort, tmp_path):
    out = tmp_path / "run"
    assert cli(["cv", "--data", str(cohort), "--out", str(out), "--folds", "2", "--inner-folds", "3", "--config",
                "tiny", "--stages", "seg,cls", "--seg-args", "--epochs 1 --phase seg",
                "--cls-args", "--epochs 1 --head cnn"]) == 0
    summary = json.loads((out / "cv_summary.json").read_text())
    tested = [c for group in summary["outer_folds"] for c in group]
    assert sorted(tested) == sorted(read_dataset(cohort).trainval_ids)
    assert summary["cls"]["patients"] == len(tested) and len(summary["cls"]["per_fold_mFROC"]) == 2
    assert len(summary["seg"]["dice_per_fold"]) == 2
    for k, group in enumerate(summary["outer_folds"]):
        report = json.loads((out / f"fold{k}" / "cls" / "eval_cls_test.json").read_text())
        assert sorted(report["probabilities"]) == sorted(group)  # each fold's model tested on its held-out cases
