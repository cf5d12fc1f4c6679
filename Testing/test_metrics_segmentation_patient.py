"""Dice, instance matching at IoU >= 0.3, patient metrics and bootstrap intervals against hand-computed values."""

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from monai.metrics import compute_dice, compute_roc_auc

from LNStagingLib.evaluation import bootstrap, metrics


def test_dice_by_hand_and_as_monai():
    a = np.zeros((4, 5, 6), np.uint8)
    b = np.zeros_like(a)
    a[0:2, 0:2, 0:2] = 1  # 8 voxels
    b[1:3, 0:2, 0:2] = 1  # 8 voxels, 4 shared
    assert metrics.dice(a, b) == pytest.approx(0.5)
    assert metrics.dice(sitk.GetImageFromArray(a), sitk.GetImageFromArray(b)) == pytest.approx(0.5)
    monai = compute_dice(torch.tensor(a)[None, None], torch.tensor(b)[None, None], include_background=True)
    assert metrics.dice(a, b) == pytest.approx(float(monai))
    assert np.isnan(metrics.dice(np.zeros(3), np.zeros(3)))
    assert metrics.dice(np.zeros(3), np.zeros(3), empty_value=1.0) == 1.0
    with pytest.raises(ValueError):
        metrics.dice(a, b[:-1])


def test_instance_matching_by_hand():
    ref = np.zeros((1, 10, 40), np.uint16)
    pred = np.zeros_like(ref)
    ref[0, 0:10, 0:10] = 1                # 100 voxels
    pred[0, 0:10, 0:5] = 7                # 50 voxels inside ref 1: IoU 0.5 -> match
    ref[0, 0:10, 12:22] = 2               # 100 voxels
    pred[0, 0:2, 12:22] = 8               # 20 voxels: IoU 0.2 -> no match
    ref[0, 0:4, 25:30] = 3                # two small nodes (20 voxels each) under one prediction of 60 voxels
    ref[0, 6:10, 25:30] = 4
    pred[0, 0:10, 24:30] = 9              # IoU 20/60 = 0.333 with each: only one may match
    pred[0, 0:3, 35:38] = 10              # false positive
    match = metrics.match_instances(pred, ref)
    assert (match.n_pred, match.n_ref, match.tp) == (4, 4, 2)
    matched = {(p, r) for p, r, _ in match.pairs}
    assert (7, 1) in matched and len([m for m in matched if m[0] == 9]) == 1
    assert match.recall == pytest.approx(0.5) and match.precision == pytest.approx(0.5)
    assert match.f_measure == pytest.approx(0.5)
    iou, pred_ids, ref_ids = metrics.instance_iou(pred, ref)
    assert iou[list(pred_ids).index(8), list(ref_ids).index(2)] == pytest.approx(0.2)
    pooled = metrics.pooled_instance_metrics([match, metrics.match_instances(ref, ref)])
    assert pooled["tp"] == 6 and pooled["recall"] == pytest.approx(6 / 8) and pooled["precision"] == pytest.approx(6 / 8)


def test_patient_metrics_by_hand():
    y = [1, 1, 1, 0, 0, 0, 0]
    s = [0.9, 0.6, 0.4, 0.7, 0.3, 0.2, 0.4]
    m = metrics.binary_metrics(y, s, 0.5)
    assert (m["tp"], m["fn"], m["tn"], m["fp"]) == (2, 1, 3, 1)
    assert m["sensitivity"] == pytest.approx(2 / 3) and m["specificity"] == pytest.approx(3 / 4)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 3 / 4) / 2)
    # AUC: pairs (pos > neg) of 12: 0.9 beats 4, 0.6 beats 3, 0.4 beats 2 and ties 1 (0.5) -> 9.5 / 12
    assert m["auc"] == pytest.approx(9.5 / 12)
    assert m["auc"] == pytest.approx(float(compute_roc_auc(torch.tensor(s), torch.tensor(y))))
    assert np.isnan(metrics.roc_auc([1, 1], [0.2, 0.3]))
    with pytest.raises(ValueError):
        metrics.binary_metrics([0, 2], [0.1, 0.2])


def test_bootstrap_is_seeded_and_sane():
    rng = np.random.default_rng(0)
    x = rng.normal(10.0, 2.0, size=200)
    ci = bootstrap.bootstrap_ci(lambda idx: float(x[idx].mean()), len(x), seed=3)
    again = bootstrap.bootstrap_ci(lambda idx: float(x[idx].mean()), len(x), seed=3)
    other = bootstrap.bootstrap_ci(lambda idx: float(x[idx].mean()), len(x), seed=4)
    assert ci == again and ci != other
    assert ci.n_valid == 1000 and ci.low < ci.value < ci.high
    half_width = 1.96 * x.std() / np.sqrt(len(x))  # normal approximation of the percentile interval
    assert (ci.high - ci.low) / 2 == pytest.approx(half_width, rel=0.15)


def test_bootstrap_binary_metrics_skips_undefined_resamples():
    y = [1, 0, 0, 1, 0, 0, 0]
    s = [0.8, 0.3, 0.1, 0.45, 0.6, 0.2, 0.05]
    cis = bootstrap.bootstrap_binary_metrics(y, s, seed=0)
    assert set(cis) == {"balanced_accuracy", "auc", "sensitivity", "specificity", "accuracy"}
    assert cis["auc"].value == pytest.approx(9 / 10)
    assert 0 < cis["auc"].n_valid < 1000  # some resamples hold no positive patient
    for ci in cis.values():
        assert ci.low <= ci.value <= ci.high or np.isnan(ci.value)


def test_seg_per_case_counts_reproduce_the_pooled_metrics_and_carry_intervals():
    """evaluate seg writes each case's tp / n_pred / n_ref so that pooled metrics, their bootstrap CIs and paired
    comparisons can be recomputed from the JSON."""
    from LNStagingLib.evaluation.seg import bootstrap_seg_metrics, case_counts, case_metrics, pooled_from_counts, summarise

    rng = np.random.default_rng(0)
    per_case, counts = [], []
    for k in range(6):
        nodes = np.zeros((12, 20, 20), np.int32)
        predicted = np.zeros_like(nodes)
        for i in range(1, 4):
            nodes[2 + 3 * (i - 1):4 + 3 * (i - 1), 3:8, 3 + 5 * (i - 1):7 + 5 * (i - 1)] = i
        predicted[nodes == 1] = 1
        if k % 2:
            predicted[nodes == 2] = 2
        predicted[9:11, 14:18, 14:18] = 5  # a false positive
        metrics = case_metrics(predicted, nodes, {1, 3}, {1: 0.9, 2: 0.2, 5: float(rng.uniform(0.4, 0.6))})
        per_case.append(metrics)
        counts.append(case_counts(f"c{k}", metrics))
    summary = summarise(per_case)
    for group in ("class_agnostic", "positive", "negative"):
        pooled = pooled_from_counts(counts, group)
        for key in ("recall", "precision", "f_measure"):
            assert pooled[key] == pytest.approx(summary[group][key])
        assert pooled["dice"] == pytest.approx(summary[group]["dice"])
    cis = bootstrap_seg_metrics(counts, n_boot=200)
    low, high = cis["class_agnostic"]["f_measure"]
    assert low <= summary["class_agnostic"]["f_measure"] <= high and low < high
