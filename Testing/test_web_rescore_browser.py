"""Re-scoring in the browser (issue 19): accepting a node changes the pending nodes' displayed probabilities to the
library's rescore() values; switching re-scoring off restores the original ones. A real ``lnstaging review`` server
process with ``--rescore-model`` and headless Debian chromium (see test_web_review.py). The network is untrained,
with the weights that carry the review state scaled up so that a decision visibly moves the others."""

from __future__ import annotations


import pytest
import SimpleITK as sitk
import torch

pytest.importorskip("trame_slicer")
pytest.importorskip("playwright")

from review_server import Server, get_json  # noqa: E402
from scene_fixtures import PROBABILITIES  # noqa: E402
from test_web_review import CHROMIUM_ARGS, VIEWPORT, chromium_path  # noqa: E402
from waiting import wait_for  # noqa: E402
from test_web_session import write_run  # noqa: E402

from LNStagingLib.inference.rescore import ReviewGraph, rescore  # noqa: E402
from LNStagingLib.models.checkpoint import load_model, save_checkpoint  # noqa: E402
from LNStagingLib.models.stage2 import Stage2Model, stage2_config  # noqa: E402
from LNStagingLib.results import Results  # noqa: E402
from LNStagingLib.web.app import _fmt_p as shown_as  # noqa: E402  (how the page prints a probability)


def review_state_model(path):
    torch.manual_seed(3)
    config = stage2_config("tiny", head="gnnp", use_priors=False, review_state=True)
    model = Stage2Model(config)
    x_dim = config.gnn_config().x_dim
    with torch.no_grad():  # the review-state columns of phi_e's first layer (for x_u and for x_v)
        model.head.phi_e.first.weight[:, x_dim - 3:x_dim] *= 40
        model.head.phi_e.first.weight[:, 2 * x_dim - 3:] *= 40
        model.head.phi_u[0].weight[:, config.h_dim:] *= 5  # and the message's weight in the update and output
        model.head.phi_y.weight *= 5
    save_checkpoint(path, model, config)
    return path


@pytest.mark.slow
def test_accept_shows_rescored_probabilities_and_switch_off_restores(tmp_path):
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    run = tmp_path / "runs" / "p01"
    write_run(run)
    checkpoint = review_state_model(tmp_path / "review_model.pt")
    # What the library says the pending probabilities become after accepting node 1.
    model, _, _ = load_model(checkpoint)
    results = Results.read(run)
    graph = ReviewGraph.from_results(model, results, sitk.ReadImage(str(run / "ct.nii.gz")),
                                     sitk.ReadImage(str(run / "pet.nii.gz")))
    expected = rescore(results, {1: "accepted"}, graph).probabilities
    assert any(abs(expected[k] - PROBABILITIES[k]) >= 0.02 for k in (2, 3, 4)), expected

    server = Server([str(run), "--port", "0", "--rescore-model", str(checkpoint)], tmp_path / "server.log")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(server.url)
            page.wait_for_selector("#cand-1", timeout=60000)
            shown = lambda k: page.inner_text(f"#pv-{k}").strip()  # noqa: E731
            assert [shown(k) for k in PROBABILITIES] == [shown_as(p) for p in PROBABILITIES.values()]

            page.click("#accept-1")
            wait_for(lambda: all(shown(k) == shown_as(expected[k]) for k in (2, 3, 4)), timeout=30, what="re-scored values")
            assert shown(1) == shown_as(PROBABILITIES[1])  # the decided node keeps its probability
            status = get_json(server.base + "/lnstaging/status.json")
            for k in (2, 3, 4):
                assert status["probabilities"][str(k)] == pytest.approx(expected[k], abs=1e-5)
            assert status["rescoring"]["decisions"] == {"1": "accepted"}
            assert status["rescoring"]["seconds"] < 0.5

            page.click("#rescoring")
            wait_for(lambda: all(shown(k) == shown_as(PROBABILITIES[k]) for k in PROBABILITIES), timeout=30, what="originals")
            assert get_json(server.base + "/lnstaging/status.json")["rescoring"]["enabled"] is False
            browser.close()
    finally:
        server.kill()
