"""Re-scoring in the review session (issue 19), without a browser: an accept or reject moves the pending
candidates' probabilities to the library's rescore() values, decided ones never change, switching it off restores
the originals, and the saved review records what was re-scored and from which decisions. Real CT grid with a
non-identity direction (scene_fixtures); an untrained review-state network (the mechanics are what is tested)."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("trame_slicer")

from scene_fixtures import PROBABILITIES  # noqa: E402
from test_web_session import write_run  # noqa: E402

from LNStagingLib.inference.rescore import rescore  # noqa: E402
from LNStagingLib.web.cases import find_cases  # noqa: E402


@pytest.fixture
def review_model(tmp_path):
    from LNStagingLib.models.checkpoint import save_checkpoint
    from LNStagingLib.models.stage2 import Stage2Model, stage2_config

    torch.manual_seed(3)
    config = stage2_config("tiny", head="gnnp", use_priors=False, review_state=True)
    path = tmp_path / "review_model.pt"
    save_checkpoint(path, Stage2Model(config), config)
    return path


@pytest.fixture
def session(tmp_path, review_model):
    from trame_slicer.core import SlicerApp

    from LNStagingLib.web.session import ReviewSession

    write_run(tmp_path / "runs" / "p01")
    session = ReviewSession(SlicerApp(), find_cases(tmp_path / "runs"), rescore_model=review_model)
    yield session
    session.close_case()


def test_accept_rescores_pending_and_switch_off_restores(session, tmp_path):
    session.open_case("p01")
    status = session.status()
    assert status["rescoring"]["available"] and status["rescoring"]["enabled"]
    assert {int(k): v for k, v in status["probabilities"].items()} == PROBABILITIES  # nothing decided yet

    session.set_review(1, "accepted")
    expected = rescore(session.review.results, {1: "accepted"}, session.rescorer.graph).probabilities
    shown = {int(k): v for k, v in session.status()["probabilities"].items()}
    assert shown == expected and shown[1] == PROBABILITIES[1]
    assert any(abs(shown[k] - PROBABILITIES[k]) > 1e-6 for k in (2, 3, 4))
    assert session.status()["rescoring"]["seconds"] < 0.5
    assert set(session.status()["rescoring"]["moved"]) == {"2", "3", "4"}
    saved = json.loads((tmp_path / "runs" / "p01" / "review" / "provenance.json").read_text())["rescore"]
    assert saved["enabled"] and saved["decisions"] == {"1": "accepted"}
    assert saved["probabilities"]["2"] == pytest.approx(shown[2], abs=1e-6)

    session.set_review(3, "rejected")
    shown = {int(k): v for k, v in session.status()["probabilities"].items()}
    assert shown[3] == PROBABILITIES[3] and shown[1] == PROBABILITIES[1]  # decided nodes never change

    session.set_rescoring(False)
    shown = {int(k): v for k, v in session.status()["probabilities"].items()}
    assert shown == PROBABILITIES
    saved = json.loads((tmp_path / "runs" / "p01" / "review" / "provenance.json").read_text())["rescore"]
    assert saved["enabled"] is False


def test_the_operating_point_thresholds_the_rescored_probabilities(session):
    """The browser's threshold hides and shows pending nodes by their re-scored probability, not the original."""
    session.open_case("p01")
    session.set_review(1, "accepted")
    shown = {int(k): v for k, v in session.status()["probabilities"].items()}
    k = max((2, 3, 4), key=lambda i: abs(shown[i] - PROBABILITIES[i]))  # the node the decision moved most
    assert abs(shown[k] - PROBABILITIES[k]) > 1e-4
    between = (shown[k] + PROBABILITIES[k]) / 2  # re-scored and original value on opposite sides of it
    session.set_threshold(between)
    visible = set(session.status()["visible_ids"])
    assert visible == {1} | {i for i in (2, 3, 4) if shown[i] >= between}
    assert (k in visible) != (PROBABILITIES[k] >= between)
    session.set_rescoring(False)  # off: the same threshold now acts on the originals
    assert (k in set(session.status()["visible_ids"])) == (PROBABILITIES[k] >= between)
