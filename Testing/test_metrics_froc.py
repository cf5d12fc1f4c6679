"""Candidate-level FROC: hand-computed values and agreement with MONAI's froc functions."""

import numpy as np
import pytest
from monai.metrics import compute_fp_tp_probs_nd, compute_froc_curve_data, compute_froc_score

from LNStagingLib.evaluation import froc

# Four patients; lesion ids are per patient. Patient A detects lesion 1 twice (the 0.7 duplicate is ignored),
# patient C's lesion is never detected, patient D has no lesion.
DETECTIONS = [
    [(0.9, 1), (0.8, None), (0.7, 1), (0.6, 2), (0.3, None)],
    [(0.85, None), (0.5, None), (0.2, 5)],
    [],
    [(0.4, None)],
]
N_LESIONS = [2, 1, 1, 0]


def test_curve_by_hand():
    curve = froc.froc_curve(DETECTIONS, N_LESIONS)
    assert curve.n_lesions == 4 and curve.n_patients == 4
    np.testing.assert_allclose(curve.thresholds[1:], [0.9, 0.85, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2])
    np.testing.assert_allclose(curve.fp_per_patient, [0, 0, 0.25, 0.5, 0.5, 0.75, 1.0, 1.25, 1.25])
    np.testing.assert_allclose(curve.sensitivity, [0, 0.25, 0.25, 0.25, 0.5, 0.5, 0.5, 0.5, 0.75])


def test_sensitivity_at_by_hand():
    curve = froc.froc_curve(DETECTIONS, N_LESIONS)
    assert froc.sensitivity_at(curve, 0.0) == 0.25      # the highest point at 0 FP
    assert froc.sensitivity_at(curve, 0.125) == 0.25
    assert froc.sensitivity_at(curve, 0.5) == 0.5        # tie at 0.5 FP: the highest sensitivity
    assert froc.sensitivity_at(curve, 1.25) == 0.75
    assert froc.sensitivity_at(curve, 6.0) == 0.75       # beyond the last point: flat
    assert froc.mean_sensitivity(curve, (0.25, 0.5, 1, 2)) == pytest.approx((0.25 + 0.5 + 0.5 + 0.75) / 4)
    assert froc.threshold_at_fp(curve, 0.5) == 0.6
    assert froc.threshold_at_fp(curve, 0.0) == 0.9


def test_linear_interpolation_on_a_sloped_segment():
    # A TP and an FP share probability 0.5: the segment from (1 FP, 0) to (2 FP, 0.5) is sloped.
    curve = froc.froc_curve([[(0.9, None), (0.5, 1), (0.5, None)]], [2])
    assert froc.sensitivity_at(curve, 1.5) == pytest.approx(0.25)
    assert froc.sensitivity_at(curve, 3.0) == pytest.approx(0.5)


def test_f1_by_hand():
    result = froc.f1_at(DETECTIONS, N_LESIONS, 0.5)
    assert (result.tp, result.fp, result.fn) == (2, 3, 2)
    assert result.precision == pytest.approx(0.4) and result.recall == pytest.approx(0.5)
    assert result.f1 == pytest.approx(4 / 9)
    best = froc.best_f1(DETECTIONS, N_LESIONS)
    assert best.f1 == pytest.approx(0.5) and best.threshold == pytest.approx(0.6)  # tie with 0.2: higher threshold


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        froc.froc_curve([[(0.5, 1), (0.4, 2)]], [1])  # two lesions hit, one given
    with pytest.raises(ValueError):
        froc.froc_curve([[(0.5, 1)]], [1, 2])


def test_candidate_detections():
    dets = froc.candidate_detections([0.9, 0.2, 0.7], [1, 0, 1], [3, 0, 3])
    assert dets == [(0.9, 3), (0.2, None), (0.7, 3)]
    assert froc.candidate_detections([0.9, 0.8], [1, 1]) == [(0.9, True), (0.8, True)]
    curve = froc.froc_curve([froc.candidate_detections([0.9, 0.8], [1, 1])], [2])
    assert curve.sensitivity[-1] == 1.0  # "True" hits count as distinct lesions


def _random_cohort(rng, n_patients=12, all_detected=False):
    """Point detections in per-patient 3-D label volumes, with duplicates, misses and tied probabilities."""
    volumes, points, probs = [], [], []
    for _ in range(n_patients):
        vol = np.zeros((20, 20, 20), np.int32)
        n_lesions = int(rng.integers(0, 4))
        for lesion in range(1, n_lesions + 1):
            vol[5 * lesion - 4:5 * lesion, 2:8, 2:8] = lesion
        coords, p = [], []
        for lesion in range(1, n_lesions + 1):
            hits = int(rng.integers(1 if all_detected else 0, 3))  # 0 = missed, 2 = duplicate detection
            for _ in range(hits):
                coords.append((5 * lesion - 2, 4, 4))
                p.append(rng.uniform(0.3, 1.0))
        for _ in range(int(rng.integers(2, 12))):
            coords.append((int(rng.integers(0, 20)), int(rng.integers(10, 20)), int(rng.integers(0, 20))))
            p.append(rng.uniform(0.01, 0.9))
        volumes.append(vol)
        points.append(np.array(coords, int).reshape(-1, 3))
        probs.append(np.round(np.array(p), 2).astype(np.float32))  # ties; float32 as MONAI stores tp_probs
    return volumes, points, probs


def _both(volumes, points, probs):
    ours_dets, ours_n, fps, tps, n_targets = [], [], [], [], 0
    for vol, pts, p in zip(volumes, points, probs):
        fp, tp, n = compute_fp_tp_probs_nd(p, pts, vol)
        fps.append(fp)
        tps.append(tp)
        n_targets += n
        hits = vol[tuple(pts.T)] if len(pts) else np.array([], int)
        ours_dets.append([(float(q), int(h) if h else None) for q, h in zip(p, hits)])
        ours_n.append(int(vol.max()))
    mon_fp, mon_sens = compute_froc_curve_data(np.concatenate(fps), np.concatenate(tps), n_targets, len(volumes))
    return froc.froc_curve(ours_dets, ours_n), mon_fp, mon_sens


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_as_monai_when_a_lesion_is_missed(seed):
    curve, mon_fp, mon_sens = _both(*_random_cohort(np.random.default_rng(seed)))
    assert curve.sensitivity[-1] < 1  # a lesion is missed: MONAI's dropped lowest threshold is the 0 of the misses
    np.testing.assert_allclose(curve.fp_per_patient, mon_fp[::-1])
    np.testing.assert_allclose(curve.sensitivity, mon_sens[::-1])
    rates = (0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0)
    for rate in rates:
        assert froc.sensitivity_at(curve, rate) == pytest.approx(compute_froc_score(mon_fp, mon_sens, (rate,)))
    assert froc.mean_sensitivity(curve) == pytest.approx(compute_froc_score(mon_fp, mon_sens, (2, 3, 4, 6)))


def test_monai_lacks_the_all_detections_point_when_every_lesion_is_found():
    curve, mon_fp, mon_sens = _both(*_random_cohort(np.random.default_rng(5), all_detected=True))
    assert curve.sensitivity[-1] == 1.0
    assert len(curve.fp_per_patient) == len(mon_fp) + 1  # documented difference: MONAI drops the lowest threshold
    np.testing.assert_allclose(curve.fp_per_patient[:-1], mon_fp[::-1])


def _random_patients(rng, n_patients: int, shift: float):
    """Patients with 3 lesions each; each lesion one detection whose probability rises with ``shift``, plus 5 FPs."""
    detections = []
    for _ in range(n_patients):
        hits = [(float(1 / (1 + np.exp(-(rng.normal() + shift)))), lesion) for lesion in (1, 2, 3)]
        fps = [(float(1 / (1 + np.exp(-rng.normal()))), None) for _ in range(5)]
        detections.append(hits + fps)
    return detections, [3] * n_patients


def test_bootstrap_mfroc_brackets_the_value_and_narrows_with_more_patients():
    rng = np.random.default_rng(0)
    small = froc.bootstrap_mfroc(*_random_patients(rng, 10, 1.0), n_boot=300)
    large = froc.bootstrap_mfroc(*_random_patients(rng, 160, 1.0), n_boot=300)
    for ci in (small, large):
        assert ci.low <= ci.value <= ci.high and ci.n_valid == 300
    assert (large.high - large.low) < 0.5 * (small.high - small.low)


def test_paired_difference_of_a_model_with_itself_is_exactly_zero():
    detections, lesions = _random_patients(np.random.default_rng(1), 12, 1.0)
    ci = froc.paired_mfroc_difference(detections, detections, lesions, n_boot=200)
    assert ci.value == ci.low == ci.high == 0.0


def test_paired_difference_finds_a_better_model_that_unpaired_intervals_overlap():
    """Model a = model b with every true lesion's probability raised a little: pairing shows it, overlap hides it."""
    rng = np.random.default_rng(2)
    b, lesions = _random_patients(rng, 12, 0.5)
    a = [[(min(p + 0.05, 1.0), hit) if hit is not None else (p, hit) for p, hit in dets] for dets in b]
    diff = froc.paired_mfroc_difference(a, b, lesions, n_boot=500)
    ci_a, ci_b = froc.bootstrap_mfroc(a, lesions, 500), froc.bootstrap_mfroc(b, lesions, 500)
    assert diff.value > 0 and diff.low > 0
    assert ci_a.low < ci_b.high, "the separate intervals overlap"
    with pytest.raises(ValueError):
        froc.paired_mfroc_difference(a, b[:-1], lesions)
