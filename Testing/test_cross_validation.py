"""`lnstaging cv`: nested cross-validation. Outer folds partition the non-test cases, every case is tested once by a
model that never saw it, the inner validation fold lies inside the outer training set, and the pooled summary is
computed from the folds' evaluation files."""

import json
from pathlib import Path

import numpy as np
import pytest

from LNStagingLib.cli import main as cli
from LNStagingLib.dataset.format import read_dataset
from LNStagingLib.phantom.cohort import write_cohort
from LNStagingLib.dataset.format import write_description
from LNStagingLib.training.cross_validation import (fold_class_counts, outer_folds, pooled_patient_summary,
                                                    pooled_summary, write_fold_cohort)


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


def test_stratified_outer_folds_keep_both_classes_in_every_fold():
    """10 positive and 5 negative patients in 5 folds: every test fold gets 2 + 1, deterministically per seed."""
    ids = [f"case{i:02d}" for i in range(15)]
    labels = {c: int(i % 3 != 0) for i, c in enumerate(ids)}
    groups = outer_folds(ids, 5, seed=3, labels=labels)
    assert sorted(c for g in groups for c in g) == ids
    assert [(sum(labels[c] for c in g), sum(1 - labels[c] for c in g)) for g in groups] == [(2, 1)] * 5
    assert groups == outer_folds(ids, 5, seed=3, labels=labels) != outer_folds(ids, 5, seed=4, labels=labels)
    assert all("note" not in row for row in fold_class_counts(groups, labels))
    # without labels the split is the unstratified one of earlier versions (resumable working folders)
    assert outer_folds(ids, 5, seed=3) == [[ids[i] for i in sorted(np.random.default_rng(3).permutation(15)[k::5])]
                                           for k in range(5)]


def test_fewer_negatives_than_folds_is_said_per_fold():
    ids = [f"c{i}" for i in range(10)]
    labels = {c: int(i >= 3) for i, c in enumerate(ids)}  # 3 negatives, 5 folds
    counts = fold_class_counts(outer_folds(ids, 5, seed=0, labels=labels), labels)
    assert sum(r["negative"] for r in counts) == 3 and all(r["negative"] <= 1 for r in counts)
    one_class = [r for r in counts if "note" in r]
    assert len(one_class) == 2 and all("positive patient(s) only" in r["note"] for r in one_class)


def _patients(labels, scores):
    return [{"case": f"p{i}", "label": y, "probability": s} for i, (y, s) in enumerate(zip(labels, scores))]


def test_pooled_patient_summary_names_one_class_folds_and_pools_out_of_fold():
    reports = [{"patients": _patients([1, 1, 0], [0.9, 0.6, 0.2]), "confusion": {"tp": 2, "fp": 0, "tn": 1, "fn": 0}},
               {"patients": _patients([1, 1], [0.7, 0.4]), "confusion": {"tp": 1, "fp": 0, "tn": 0, "fn": 1}},
               {"patients": _patients([1, 0, 0], [0.8, 0.5, 0.1]), "confusion": {"tp": 1, "fp": 1, "tn": 1, "fn": 0}}]
    entry = pooled_patient_summary(reports)
    assert (entry["patients"], entry["positive"], entry["negative"]) == (8, 5, 3)
    assert [(r["positive"], r["negative"]) for r in entry["per_fold"]] == [(2, 1), (2, 0), (1, 2)]
    assert entry["per_fold"][1]["auc"] is None
    assert "fold 1 holds 2 positive patient(s) only" in entry["per_fold"][1]["note"]
    assert entry["one_class_folds"] == [entry["per_fold"][1]["note"]]
    assert entry["per_fold"][0]["auc"] == 1.0 and entry["per_fold"][2]["auc"] == 1.0
    # pooled: positives 0.9 0.6 0.7 0.4 0.8 against negatives 0.2 0.5 0.1 -> 14 of 15 pairs ordered (0.4 < 0.5)
    assert entry["auc"] == pytest.approx(14 / 15)
    for key in ("auc_95ci_delong", "auc_95ci_bootstrap"):
        low, high = entry[key]
        assert low <= entry["auc"] <= high and low < high
    assert entry["sensitivity"] == pytest.approx(4 / 5) and entry["specificity"] == pytest.approx(2 / 3)
    json.dumps(entry, allow_nan=False)  # no nan anywhere in what cv writes


def test_pooled_patient_summary_says_why_no_auc():
    entry = pooled_patient_summary([{"patients": _patients([1, 1], [0.9, 0.2])}, {"patients": _patients([1], [0.5])}])
    assert entry["auc"] is None and "all 3 pooled patients are positive" in entry["auc_not_computed"]
    assert len(entry["one_class_folds"]) == 2


@pytest.fixture()
def labelled_cohort(tmp_path):
    """Eleven cases with a patient.json only (8 positive, 3 negative): enough for the fold logic of `lnstaging cv`."""
    root = tmp_path / "labelled"
    ids = [f"case{i:02d}" for i in range(11)]
    for i, case_id in enumerate(ids):
        (root / "cases" / case_id).mkdir(parents=True)
        (root / "cases" / case_id / "patient.json").write_text(json.dumps({"metastasis": int(i >= 3)}))
    write_description(root, name="labelled", case_ids=ids, organ_labels={1: "aorta"}, organ_mapping="pdac20",
                      folds={c: 0 for c in ids[:10]}, test=ids[10:])
    return root


def test_cv_patient_stage_reports_fold_counts_and_one_class_folds(labelled_cohort, tmp_path, monkeypatch, capsys):
    """`lnstaging cv --stages patient` end to end with training and evaluation replaced by a fake scorer: stratified
    outer folds, every case tested once, a fold with positives only named in the output and the summary."""
    import LNStagingLib.cli as cli_module

    real_cli = cli_module.main
    calls, full = [], []

    def fake(argv):
        calls.append(argv[:2])
        full.append(argv)
        if argv[0] == "evaluate":
            data = argv[argv.index("--data") + 1]
            fold = read_dataset(data)
            patients = [{"case": c, "label": fold.case(c).metastasis,
                         "probability": 0.2 + 0.6 * fold.case(c).metastasis - 0.01 * i}
                        for i, c in enumerate(fold.test_ids)]
            out = Path(argv[argv.index("--out") + 1])
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(out, "w") as handle:
                json.dump({"patients": patients}, handle)
        return 0

    monkeypatch.setattr(cli_module, "main", fake)
    out = tmp_path / "cv"
    assert real_cli(["cv", "--data", str(labelled_cohort), "--out", str(out), "--folds", "4", "--inner-folds", "2",
                     "--stages", "patient"]) == 0
    summary = json.loads((out / "cv_summary.json").read_text())
    assert summary["stratified_by_patient_label"] is True
    tested = sorted(c for g in summary["outer_folds"] for c in g)
    assert tested == sorted(read_dataset(labelled_cohort).trainval_ids)  # case10 (the cohort's test case) never
    counts = [(r["positive"], r["negative"]) for r in summary["outer_fold_class_counts"]]
    assert sorted(counts) == [(1, 1), (2, 0), (2, 1), (2, 1)]  # 3 negatives cannot fill 4 folds
    assert summary["patient"]["auc"] == 1.0 and len(summary["patient"]["one_class_folds"]) == 1
    printed = capsys.readouterr().out
    assert "WARNING: outer fold" in printed and "2 positive patient(s) only" in printed
    assert calls.count(["train", "patient"]) == 4
    # LN volumes from the pipeline (issue 29): per outer fold a stage-1 model trained without the held-out fold
    # predicts it, the training cases are cross-fitted; gtv_ln.nii.gz never reaches the evaluation
    assert calls.count(["train", "seg"]) == 4 and calls.count(["predict-volumes", "--data"]) == 8
    for k, held_out in enumerate(summary["outer_folds"]):
        fold = out / f"fold{k}"
        seg = next(a for a in full if a[:2] == ["train", "seg"] and a[a.index("--out") + 1] == str(fold / "seg"))
        assert read_dataset(seg[seg.index("--data") + 1]).test_ids == held_out  # held out of the stage-1 training
        cross_fit = next(a for a in full if "--cross-fit" in a and str(fold) in a[a.index("--out") + 1])
        assert cross_fit[cross_fit.index("--cross-fit") + 1] == "2"
        test_volumes = next(a for a in full if a[0] == "predict-volumes" and "--cases" in a
                            and str(fold) in a[a.index("--out") + 1])
        assert test_volumes[test_volumes.index("--cases") + 1:test_volumes.index("--models")] == held_out
        assert str(fold / "seg" / "seg_model.pt") in test_volumes[test_volumes.index("--models") + 1]
        train = next(a for a in full if a[:2] == ["train", "patient"] and str(fold) in a[a.index("--out") + 1])
        evaluate = next(a for a in full if a[:2] == ["evaluate", "patient"] and str(fold) in a[a.index("--out") + 1])
        assert train[train.index("--ln-volumes") + 1] == cross_fit[cross_fit.index("--out") + 1]
        assert evaluate[evaluate.index("--ln-volumes") + 1] == test_volumes[test_volumes.index("--out") + 1]
    assert "cross-fitted" in summary["patient_ln_volumes"]
    # a second run with another seed would make another split: refused instead of mixing the two
    assert real_cli(["cv", "--data", str(labelled_cohort), "--out", str(out), "--folds", "4", "--stages", "patient",
                     "--seed", "5"]) == 2
    assert "another split" in capsys.readouterr().err
    # a volume file of the user's would bypass the held-out prediction: refused
    assert real_cli(["cv", "--data", str(labelled_cohort), "--out", str(tmp_path / "cv2"), "--folds", "4",
                     "--stages", "patient", "--patient-args", "--ln-volumes v.csv"]) == 2
    assert "drop --ln-volumes" in capsys.readouterr().err
    # the held-out volumes need the stage-1 identifier: --phase seg is refused before any training
    assert real_cli(["cv", "--data", str(labelled_cohort), "--out", str(tmp_path / "cv3"), "--folds", "4",
                     "--stages", "seg,patient", "--seg-args", "--phase seg"]) == 2
    assert "drop --phase" in capsys.readouterr().err and not (tmp_path / "cv3" / "fold0").exists()


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


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_cv_patient_stage_no_longer_leaks_the_label(tmp_path):
    """Issue 29's reproduction: with gtv_ln volumes a 1-epoch tiny patient model scored a pooled out-of-fold AUC of
    1.000 [1.0, 1.0] (the volume is > 0 exactly for positive phantom patients). With the pipeline's volumes the
    held-out patients get what the fold's stage-1 model predicts and the AUC is that of an untrained model."""
    import torch

    from LNStagingLib.dataset.ln_volumes import read_ln_volumes
    from LNStagingLib.models.checkpoint import load_checkpoint

    torch.set_num_threads(1)
    data, out = tmp_path / "ph", tmp_path / "cv"
    assert cli(["phantom", "--seed", "11", "--cases", "16", "--size", "small", "--folds", "2", "--test-fraction", "0",
                "--out", str(data)]) == 0
    assert cli(["cv", "--data", str(data), "--out", str(out), "--folds", "2", "--inner-folds", "2", "--stages",
                "patient", "--config", "tiny"]) == 0
    summary = json.loads((out / "cv_summary.json").read_text())
    patient = summary["patient"]
    assert patient["patients"] == 16 and patient["positive"] and patient["negative"]
    assert patient["auc"] < 1.0
    low, high = patient["auc_95ci_delong"]
    assert low < 0.5 < high  # consistent with chance
    for k, held_out in enumerate(summary["outer_folds"]):
        report = json.loads((out / f"fold{k}" / "patient" / "eval_patient_test.json").read_text())
        assert report["ln_volume_source"] == "test_volumes.csv"
        predicted = read_ln_volumes(out / f"fold{k}" / "volumes" / "test_volumes.csv")
        assert sorted(predicted) == sorted(held_out)
        assert {p["case"]: p["ln_volume_mm3"] for p in report["patients"]} == pytest.approx(predicted)
        trained = load_checkpoint(out / f"fold{k}" / "patient" / "patient_model.pt")
        assert trained["training_data"]["ln_volume_source"] == "train_volumes.csv (predicted)"
