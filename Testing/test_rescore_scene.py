"""Re-scoring through the scene adapter (the path the Slicer module and the web review share, issue 19): a decision
on the ReviewScene re-scores the pending nodes, the candidate table and the operating point follow the re-scored
probabilities, decided nodes keep theirs, and switching off restores the originals. Real CT grid with a non-identity
direction (scene_fixtures); an untrained review-state network."""

import pytest
import torch

pytest.importorskip("slicer")

from scene_fixtures import PROBABILITIES, case, mrml, review  # noqa: E402,F401

from LNStagingLib.inference.rescore import Rescorer, ReviewGraph, rescore  # noqa: E402
from LNStagingLib.models.stage2 import Stage2Model, stage2_config  # noqa: E402
from LNStagingLib.scene import table  # noqa: E402


def test_scene_decision_rescores_pending_and_table_follows(review, case):  # noqa: F811
    ct, pet, _ = case
    torch.manual_seed(3)
    model = Stage2Model(stage2_config("tiny", head="gnnp", use_priors=False, review_state=True)).eval()
    review.rescorer = Rescorer(ReviewGraph.from_results(model, review.results, ct, pet), model_name="tiny")
    review.accept(1)
    expected = rescore(review.results, {1: "accepted"}, review.rescorer.graph).probabilities
    shown = dict(zip(table.column_values(review.table, "id"), table.column_values(review.table, "probability")))
    assert shown == pytest.approx(expected, abs=1e-9) and shown[1] == PROBABILITIES[1]
    assert any(abs(shown[k] - PROBABILITIES[k]) > 1e-6 for k in (2, 3, 4))
    review.set_operating_point(threshold=expected[3])  # the operating point thresholds re-scored probabilities
    assert 3 in review.visible_ids() and all(k in review.visible_ids() for k in (2, 3, 4) if expected[k] >= expected[3])
    review.set_rescoring(False)
    shown = dict(zip(table.column_values(review.table, "id"), table.column_values(review.table, "probability")))
    assert shown == pytest.approx(PROBABILITIES, abs=1e-9)
    assert review.results.provenance["rescore"]["enabled"] is False


def test_candidates_added_or_removed_by_edits_rebuild_the_graph(review, case):  # noqa: F811
    """A contour edit that deletes a node and adds one (a user segment, accepted, without probability): the next
    decision rebuilds the graph for the candidates now on screen instead of failing, the user's node keeps no
    probability, and switching off restores every original (None for the user's node)."""
    import numpy as np

    from LNStagingLib.scene import segments

    ct, pet, _ = case
    torch.manual_seed(3)
    model = Stage2Model(stage2_config("tiny", head="gnnp", use_priors=False, review_state=True)).eval()
    review.rescorer = Rescorer(ReviewGraph.from_results(model, review.results, ct, pet), model_name="tiny")
    review.accept(1)
    review.segmentation.GetSegmentation().RemoveSegment("GTVn_03")
    new = np.zeros(ct.GetSize()[::-1], np.uint8)
    new[2:4, 40:43, 5:8] = 1
    user_id = review.segmentation.GetSegmentation().AddEmptySegment("", "my node")
    segments.update_segment_from_array(review.segmentation, user_id, new, review.ct)
    assert review.read_edits()["added"] == [5]
    review.reject(2)  # the graph was built for 1-4; now 1, 2, 4, 5
    assert sorted(review.rescorer.graph.candidate_ids) == [1, 2, 4, 5]
    expected = rescore(review.results, {1: "accepted", 2: "rejected", 5: "accepted"}, review.rescorer.graph)
    shown = dict(zip(table.column_values(review.table, "id"), table.column_values(review.table, "probability")))
    assert shown[4] == pytest.approx(expected.probabilities[4], abs=1e-9) and set(expected.moved) == {4}
    assert review.results.candidate(5).probability is None and shown[2] == PROBABILITIES[2]
    review.set_rescoring(False)
    assert {c.id: c.probability for c in review.results.candidates} == {1: PROBABILITIES[1], 2: PROBABILITIES[2],
                                                                        4: PROBABILITIES[4], 5: None}
