"""rescore(): a reviewer's decisions re-score the pending candidates (issue 19), on a real CT (non-identity direction).

The network is untrained (random weights): what is tested is the mechanics every face relies on: nothing decided
gives the ordinary stage-2 probabilities, a decided node never changes, a decision moves the pending ones, it is
fast enough for a click (< 0.5 s), and a model trained without the review state is refused.
"""

import time

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from LNStagingLib.errors import ModelError
from LNStagingLib.inference.classification import classify_candidates
from LNStagingLib.inference.rescore import ReviewGraph, rescore
from LNStagingLib.models.stage2 import Stage2Model, stage2_config
from LNStagingLib.results import Candidate, Results

NAMES = ("x_norm", "y_norm", "z_norm", "tumor_distance_mm", "tumor_elevation_deg", "tumor_azimuth_deg")
N = 30


@pytest.fixture(scope="module", params=[False, True], ids=["review-state-input", "decision-channel"])
def case(data_dir, request):
    ct = sitk.ReadImage(str(data_dir / "totalsegmentator" / "example_ct.nii.gz"))
    assert ct.GetDirection() != (1, 0, 0, 0, 1, 0, 0, 0, 1)
    pet = sitk.Cast(sitk.Clamp(ct, lowerBound=0, upperBound=1000), sitk.sitkFloat32) / 100.0  # a stand-in SUV map
    rng = np.random.default_rng(0)
    index = rng.integers(10, np.array(ct.GetSize()) - 10, size=(N, 3))
    centres = np.array([ct.TransformIndexToPhysicalPoint([int(v) for v in i]) for i in index])
    priors = rng.random((N, len(NAMES))) * 50
    torch.manual_seed(0)
    model = Stage2Model(stage2_config("small", head="gnnp", prior_names=NAMES, review_state=True,
                                      decision_channel=request.param)).eval()
    original = classify_candidates(model, ct, centres, pet=pet, priors=priors)
    results = Results(candidates=[
        Candidate(id=k + 1, centroid_lps=tuple(centres[k]), priors=dict(zip(NAMES, priors[k])),
                  probability=float(original[k]), scores={"stage2": float(original[k])}) for k in range(N)])
    graph = ReviewGraph.from_results(model, results, ct, pet)
    return results, graph, original


def test_no_decision_gives_the_ordinary_probabilities(case):
    results, graph, original = case
    out = rescore(results, {}, graph)
    assert np.allclose([out.probabilities[k + 1] for k in range(N)], original, rtol=0, atol=1e-5)
    assert max(abs(v) for v in out.moved.values()) < 1e-5 and out.decisions == {}


def test_decided_nodes_never_change_and_pending_ones_move(case):
    results, graph, original = case
    decisions = {3: "accepted", 7: "rejected", 8: "pending"}
    out = rescore(results, decisions, graph)
    assert out.decisions == {3: "accepted", 7: "rejected"}
    assert out.probabilities[3] == results.candidate(3).scores["stage2"]
    assert out.probabilities[7] == results.candidate(7).scores["stage2"]
    assert set(out.moved) == set(range(1, N + 1)) - {3, 7}
    # the decisions reach the others through the messages (same code path as nothing decided: any change is theirs)
    nothing = rescore(results, {}, graph)
    assert max(abs(out.probabilities[k] - nothing.probabilities[k]) for k in out.moved) > 1e-6
    for k, delta in out.moved.items():
        assert out.probabilities[k] == pytest.approx(out.original[k] + delta, abs=1e-9)
    # accepted and rejected are different evidence
    flipped = rescore(results, {3: "rejected", 7: "rejected"}, graph)
    assert any(abs(flipped.probabilities[k] - out.probabilities[k]) > 1e-5 for k in out.moved)


def test_rescore_is_fast_enough_for_a_click(case):
    results, graph, _ = case
    rescore(results, {1: "accepted"}, graph)  # warm-up
    t = time.perf_counter()
    for k in range(1, 11):
        rescore(results, {k: "accepted", k + 1: "rejected"}, graph)
    per_call = (time.perf_counter() - t) / 10
    assert per_call < 0.5, per_call


def test_bad_decisions_and_models_without_review_state_are_refused(case):
    results, graph, _ = case
    with pytest.raises(ValueError):
        rescore(results, {999: "accepted"}, graph)
    with pytest.raises(ValueError):
        rescore(results, {1: "maybe"}, graph)
    plain = Stage2Model(stage2_config("tiny", head="gnnp", prior_names=NAMES)).eval()
    with pytest.raises(ModelError):
        ReviewGraph(plain, graph.candidate_ids, graph.cnn_logits, graph.features, graph.priors)
    shorter = Results(candidates=results.candidates[:-1])
    with pytest.raises(ModelError):
        rescore(shorter, {}, graph)


def test_rescorer_applies_records_and_switches_off(case):
    import copy

    from LNStagingLib.inference.rescore import Rescorer, rescore_summary
    from LNStagingLib.scene.review import visible_candidate_ids

    results, graph, original = case
    results = copy.deepcopy(results)
    rescorer = Rescorer(graph, model_name="test-model", model_sha256="0" * 64)
    results.candidate(2).review = "accepted"
    results.candidate(5).review = "rejected"
    out = rescorer.apply(results)
    shown = {c.id: c.probability for c in results.candidates}
    assert shown == out.probabilities and shown[2] == original[1] and shown[5] == original[4]
    info = results.provenance["rescore"]
    assert info["enabled"] and info["decisions"] == {"2": "accepted", "5": "rejected"}
    assert set(info["moved"]) == {str(k) for k in range(1, N + 1)} - {"2", "5"}
    assert "2 review decisions" in rescore_summary(results)
    # The operating point thresholds the re-scored probabilities.
    threshold = float(np.median([shown[k] for k in out.moved]))
    visible = visible_candidate_ids(results, threshold)
    assert visible == {2} | {k for k in out.moved if shown[k] >= threshold}
    # Switched off: every candidate shows its original probability again, and the record says so.
    rescorer.enabled = False
    assert rescorer.apply(results) is None
    assert [c.probability for c in results.candidates] == [c.scores["stage2"] for c in results.candidates]
    assert np.allclose([c.probability for c in results.candidates], original, atol=0)
    assert results.provenance["rescore"]["enabled"] is False and rescore_summary(results) is None


def test_decisions_shift_the_run_probabilities_by_the_models_logit_change(case):
    import copy

    results, graph, _ = case
    other = copy.deepcopy(results)  # as if the run had used another stage-2 model: every probability 0.3
    for c in other.candidates:
        c.probability, c.scores = 0.3, {"stage2": 0.3}
    assert all(p == 0.3 for p in rescore(other, {}, graph).probabilities.values())
    out = rescore(other, {4: "accepted"}, graph)
    states = [-1] * N
    states[3] = 1
    p_dec, p_none = graph.probabilities(states), graph.probabilities([-1] * N)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    for k, p in out.probabilities.items():
        if k != 4:
            assert logit(p) == pytest.approx(logit(0.3) + logit(p_dec[k - 1]) - logit(p_none[k - 1]), abs=1e-4)
    assert out.probabilities[4] == 0.3


def test_the_report_says_the_probabilities_were_rescored(case, data_dir):
    import copy

    from LNStagingLib.inference.rescore import Rescorer
    from LNStagingLib.report import render_report

    results, graph, _ = case
    results = copy.deepcopy(results)
    ct = sitk.ReadImage(str(data_dir / "totalsegmentator" / "example_ct.nii.gz"))
    results.candidate(1).review = "accepted"
    Rescorer(graph, model_name="review-model.pt").apply(results)
    results.candidates = results.candidates[:2]  # two candidate figures are enough here
    page = render_report(results, ct)
    assert f"re-scored by review-model.pt from 1 review decisions (candidates 1)" in page
    results.provenance.pop("rescore")
    assert "re-scored" not in render_report(results, ct)
