"""The web review without a browser: case discovery (one run, a batch, missing images), the review session on a real
trame-slicer SlicerApp scene (decisions saved as they happen, edits read back, case switching, restore from disk),
and the access token check. Fast; the browser test is test_web_review.py."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("trame_slicer")

from scene_fixtures import make_case  # noqa: E402

from LNStagingLib.errors import InputFileError, LNStagingError  # noqa: E402
from LNStagingLib.web.cases import find_cases  # noqa: E402
from LNStagingLib.web.security import is_loopback, token_middleware  # noqa: E402


def write_run(folder, with_images=True):
    """A results folder written from a Results object, on a real CT grid with a non-identity direction."""
    ct, pet, results = make_case()
    results.write(folder)
    if with_images:
        sitk.WriteImage(ct, str(folder / "ct.nii.gz"))
        sitk.WriteImage(pet, str(folder / "pet.nii.gz"))
    return ct, results


def grow_segment(review, candidate_id):
    """A 7x7 square added to a candidate's segment in its first slice (what a brush stroke does); (before, after)."""
    from LNStagingLib.scene import segments

    segment_id = segments.segment_id_for(review.segmentation, candidate_id)
    voxels = segments.array_from_segment(review.segmentation, segment_id, review.ct)
    grown = voxels.copy()
    z, y, x = np.argwhere(voxels)[0]
    grown[z, max(y - 3, 0):y + 4, max(x - 3, 0):x + 4] = 1
    segments.update_segment_from_array(review.segmentation, segment_id, grown, review.ct)
    return voxels, grown


@pytest.fixture
def batch(tmp_path):
    for name in ("p02", "p01"):
        write_run(tmp_path / "batch" / name)
    (tmp_path / "batch" / "batch_summary.json").write_text("{}")
    return tmp_path / "batch"


# ---- cases -------------------------------------------------------------------------------------------------------

def test_find_cases_single_batch_and_cohort_images(tmp_path, batch):
    cases = find_cases(batch, ct_dicom=tmp_path / "dicom")
    assert [c.case_id for c in cases] == ["p01", "p02"]
    assert cases[0].ct == batch / "p01" / "ct.nii.gz" and cases[0].pet == batch / "p01" / "pet.nii.gz"
    assert cases[1].ct_dicom == tmp_path / "dicom" / "p02"  # a batch: one DICOM sub-folder per case
    assert "does not exist" in cases[1].export_disabled_reason()
    single = find_cases(batch / "p01")
    assert len(single) == 1 and single[0].review_dir == batch / "p01" / "review"
    assert "--ct-dicom" in single[0].export_disabled_reason()
    # images from a cohort folder (docs/DATASET.md) when the results folder has none
    write_run(tmp_path / "runs" / "c7", with_images=False)
    cohort_case = tmp_path / "cohort" / "cases" / "c7"
    cohort_case.mkdir(parents=True)
    for name in ("ct.nii.gz", "pet.nii.gz"):
        (cohort_case / name).write_bytes((batch / "p01" / name).read_bytes())
    (found,) = find_cases(tmp_path / "runs", data=tmp_path / "cohort")
    assert found.ct == cohort_case / "ct.nii.gz"


def test_find_cases_errors_say_what_to_do(tmp_path, batch):
    with pytest.raises(InputFileError, match="run the pipeline first"):
        find_cases(tmp_path)  # holds only a folder of runs, not runs
    with pytest.raises(InputFileError, match="--data"):
        find_cases(batch, ct=batch / "p01" / "ct.nii.gz")
    write_run(tmp_path / "bare", with_images=False)
    with pytest.raises(InputFileError, match="--ct FILE"):
        find_cases(tmp_path / "bare")
    with pytest.raises(InputFileError, match="does not exist"):
        find_cases(tmp_path / "bare", ct=tmp_path / "nope.nii.gz")


# ---- the session on a real scene -------------------------------------------------------------------------------------

@pytest.fixture
def session(batch):
    from trame_slicer.core import SlicerApp

    from LNStagingLib.web.session import ReviewSession

    session = ReviewSession(SlicerApp(), find_cases(batch))
    yield session
    session.close_case()


def test_session_saves_decisions_and_edits_as_they_happen_and_switches_cases(session, batch):
    from LNStagingLib.scene import segments

    session.open_case("p01")
    review_dir = batch / "p01" / "review"
    assert json.loads((review_dir / "review.json").read_text())["decisions"]["1"] == "pending"
    status = session.status()
    assert status["selected"]["id"] == 1  # the most probable node is selected on opening
    ras = np.array(status["selected"]["centroid_ras"])
    session.select(3)
    assert session.status()["selected"]["id"] == 3
    assert session.status()["slice_offsets"] != {}
    assert not np.allclose(session.status()["selected"]["centroid_ras"], ras)

    attention = (review_dir / "attention.nii.gz").stat()
    session.set_review(2, "rejected")
    assert json.loads((review_dir / "review.json").read_text())["decisions"]["2"] == "rejected"
    session.set_threshold(0.7)
    assert json.loads((review_dir / "review.json").read_text())["threshold"] == pytest.approx(0.7)
    assert session.status()["visible_ids"] == [1]  # 0.92 shown; 0.61 and 0.34 below, 2 rejected anyway

    # a contour edit through the segment editor's segmentation: saved with the edit read back into GTV_LN
    voxels, grown = grow_segment(session.review, 3)
    session.editor.active_segmentation.trigger_modified()  # what a paint stroke emits
    on_disk = sitk.GetArrayFromImage(sitk.ReadImage(str(review_dir / "gtv_ln.nii.gz")))
    assert int((on_disk == 3).sum()) == int(grown.sum()) > int(voxels.sum())
    # decisions and edits rewrote only what they touch (scene.review_autosave): the attention image is as first saved
    assert (review_dir / "attention.nii.gz").stat().st_ino == attention.st_ino
    assert (review_dir / "attention.nii.gz").stat().st_mtime_ns == attention.st_mtime_ns
    assert not list(review_dir.parent.glob(".*"))  # no temporary files left beside the review folder

    session.open_case("p02")  # the other case replaces this one in the scene
    assert session.scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 1
    assert session.status()["decisions"]["2"] == "pending"
    session.open_case("p01")  # back: restored from its review folder
    status = session.status()
    assert status["decisions"]["2"] == "rejected" and status["threshold"] == pytest.approx(0.7)
    assert status["voxels"]["3"] == int(grown.sum())


def test_export_without_ct_dicom_explains_why(session):
    session.open_case("p01")
    with pytest.raises(LNStagingError, match="--ct-dicom"):
        session.export_rtstruct()


def test_view_tools_values_under_cursor_decision_style_and_marker(session):
    """Issue 15 without a browser: CT presets, PET window, HU/SUV/candidate at a point, next/previous, slice step,
    overlay toggle, decision drawn on the segments, and the marker at a candidate hidden by the operating point."""
    from LNStagingLib.scene import segments
    from LNStagingLib.decision_style import DECISION_STYLES
    from LNStagingLib.web.session import CT_PRESETS, PET_SUV_WINDOW

    session.open_case("p01")
    assert session.pet_window == PET_SUV_WINDOW and session.pet_window[0] == pytest.approx(2.0)
    pet_display = session.review.pet.GetDisplayNode()
    assert pet_display.GetLowerThreshold() == pytest.approx(2.0)  # below SUV 2 transparent
    session.set_ct_preset("lung")
    assert session.ct_window() == pytest.approx(CT_PRESETS["lung"])
    with pytest.raises(LNStagingError, match="CT window"):
        session.set_ct_preset("brain")
    with pytest.raises(LNStagingError):
        session.set_pet_window(5.0, 3.0)
    session.set_pet_window(1.0, 6.0)
    assert pet_display.GetWindowLevelMin() == pytest.approx(1.0) and pet_display.GetWindowLevelMax() == pytest.approx(6.0)

    c = session.review.results.candidate(3)
    ras = [-c.centroid_lps[0], -c.centroid_lps[1], c.centroid_lps[2]]
    values = session.values_at(ras)
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(session.case.ct)))
    index = sitk.ReadImage(str(session.case.ct)).TransformPhysicalPointToIndex(c.centroid_lps)
    assert values["hu"] == pytest.approx(float(ct[index[2], index[1], index[0]]))
    assert values["suv"] is not None and values["candidate"] == 3
    assert session.values_at([1e5, 1e5, 1e5]) == {"hu": None, "suv": None, "candidate": None}

    ranked = [x.id for x in session.ranked_candidates()]
    session.select(ranked[0])
    session.step_candidate(+1)
    assert session.selected_id == ranked[1]
    session.step_candidate(-1)
    assert session.selected_id == ranked[0]
    before = session.slice_offsets()["axial"]
    session.step_slice(+1)
    moved = abs(session.slice_offsets()["axial"] - before)
    assert 0 < moved <= max(sitk.ReadImage(str(session.case.ct)).GetSpacing()) + 1e-3  # one CT slice
    session.toggle_overlay()
    assert session.overlay == "none"
    session.toggle_overlay()
    assert session.overlay == "pet"

    session.set_review(ranked[0], "accepted")
    session.set_review(ranked[1], "rejected")
    display = session.review.segmentation.GetDisplayNode()
    by_candidate = {cid: sid for sid, cid in segments.candidate_ids_by_segment(session.review.segmentation).items()}
    for cid, state in ((ranked[0], "accepted"), (ranked[1], "rejected"), (ranked[2], "pending")):
        assert display.GetSegmentOpacity2DFill(by_candidate[cid]) == pytest.approx(DECISION_STYLES[state].fill_opacity)
        colour = session.review.segmentation.GetSegmentation().GetSegment(by_candidate[cid]).GetColor()
        assert colour == pytest.approx(DECISION_STYLES[state].colour_rgb)  # by decision, not by probability

    session.set_threshold(0.99)  # every pending node hidden now
    hidden = ranked[2]
    assert hidden not in session.review.visible_ids()
    session.select(hidden)
    h = session.review.results.candidate(hidden)
    assert session.status()["marker_ras"] == pytest.approx([-h.centroid_lps[0], -h.centroid_lps[1], h.centroid_lps[2]],
                                                           abs=1e-3)


# ---- access control --------------------------------------------------------------------------------------------------

def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.10") and not is_loopback("no-such-host.invalid")


def test_token_middleware_refuses_without_token_and_sets_cookie():
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    async def scenario():
        async def handler(_request):
            return web.Response(text="ok")

        app = web.Application(middlewares=[token_middleware("s3cret")])
        app.router.add_get("/x", handler)
        async with TestClient(TestServer(app)) as client:
            assert (await client.get("/x")).status == 403
            assert (await client.get("/x?token=wrong")).status == 403
            first = await client.get("/x?token=s3cret")
            assert first.status == 200 and "lnstaging_token" in first.cookies
            assert (await client.get("/x")).status == 200  # the cookie carries the token on

    asyncio.run(scenario())


def test_a_stroke_saved_only_as_segmentation_is_restored_after_a_kill(session, batch):
    """Issue 26: the segmentation is written first after a stroke; a server killed before GTV_LN followed it
    restores the stroke (restore_review reads the edits back from the newer segmentation file)."""
    from trame_slicer.core import SlicerApp

    from LNStagingLib.scene import review_autosave
    from LNStagingLib.web.session import ReviewSession

    session.open_case("p01")
    review_dir = batch / "p01" / "review"
    review = session.review
    session._loading = True  # apply the edit without the session's own save: only the segmentation is written
    voxels, grown = grow_segment(review, 3)
    session._loading = False
    labels_before = (review_dir / "gtv_ln.nii.gz").read_bytes()
    assert review_autosave.save_segmentation(review, review_dir)
    assert (review_dir / "gtv_ln.nii.gz").read_bytes() == labels_before  # killed here: GTV_LN not written yet

    restarted = ReviewSession(SlicerApp(), find_cases(batch))  # what a restart after SIGKILL does
    try:
        restarted.open_case("p01")
        assert restarted.status()["voxels"]["3"] == int(grown.sum()) > int(voxels.sum())
        assert restarted.status()["voxels"]["1"] == int(session.voxel_counts()[1])  # the others unchanged
    finally:
        restarted.close_case()
