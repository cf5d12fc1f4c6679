"""Scene adapter on slicer-core: Results as segments/table/markups, operating point, accept/reject, edits read
back, save/restore. Real MRML objects; the CT grid is rotated and anisotropic (see scene_fixtures)."""

import json
import re
import zipfile
from datetime import datetime, timezone

import numpy as np
import pytest
import SimpleITK as sitk

from scene_fixtures import PROBABILITIES, case, mrml, review  # noqa: F401  (pytest fixtures)

slicer = pytest.importorskip("slicer")

from LNStagingLib.results import Results  # noqa: E402
from LNStagingLib.scene import markups, review_state, segments, setup, table, volumes  # noqa: E402
from LNStagingLib.scene.review import threshold_for_fp_per_patient  # noqa: E402


def label_count(results, cid):
    return int((sitk.GetArrayViewFromImage(results.gtv_ln) == cid).sum())


def test_segments_one_per_candidate_with_terminology_and_probability_colour(review):
    segmentation = review.segmentation.GetSegmentation()
    assert list(segmentation.GetSegmentIDs()) == ["GTVn_01", "GTVn_02", "GTVn_03", "GTVn_04"]
    entry = segmentation.GetSegment("GTVn_01").GetTerminology()
    for code in ("SCT^49755003^Morphologically Altered Structure", "SCT^14799000^Neoplasm, Secondary",
                 "SCT^59441001^Lymph node"):
        assert code in entry
    greens = [segmentation.GetSegment(f"GTVn_0{cid}").GetColor()[1] for cid in (1, 2, 3, 4)]
    assert greens == sorted(greens)  # most probable (1) is the reddest
    for cid in PROBABILITIES:
        voxels = segments.array_from_segment(review.segmentation, f"GTVn_0{cid}", review.ct)
        assert int(voxels.sum()) == label_count(review.results, cid) > 0
        assert np.array_equal(voxels > 0, sitk.GetArrayViewFromImage(review.results.gtv_ln) == cid)


def test_surface_conversion_works_with_registered_rules(review):
    assert review.segmentation.CreateClosedSurfaceRepresentation()
    surface = review.segmentation.GetSegmentation().GetSegment("GTVn_02").GetRepresentation("Closed surface")
    assert surface is not None and surface.GetNumberOfPoints() > 0


def test_table_sorted_by_probability_and_markups_in_ras(review):
    assert table.column_values(review.table, "id") == [1, 2, 3, 4]
    probabilities = table.column_values(review.table, "probability")
    assert probabilities == sorted(probabilities, reverse=True)
    assert table.candidate_id_at_row(review.table, 1) == 2
    assert review.table.GetColumnTitle("short_axis_mm") == "Short axis (mm)"
    assert review.markups.GetNumberOfControlPoints() == 4
    for c in review.results.candidates:
        index = markups.control_point_index(review.markups, c.id)
        ras = review.markups.GetNthControlPointPosition(index)
        assert ras == pytest.approx((-c.centroid_lps[0], -c.centroid_lps[1], c.centroid_lps[2]))
        assert review.markups.GetNthControlPointLabel(index) == c.name


def visible(review):
    display = review.segmentation.GetDisplayNode()
    seg_visible = {cid for sid, cid in segments.candidate_ids_by_segment(review.segmentation).items()
                   if display.GetSegmentVisibility(sid)}
    point_visible = {int(review.markups.GetNthControlPointDescription(i))
                     for i in range(review.markups.GetNumberOfControlPoints())
                     if review.markups.GetNthControlPointVisibility(i)}
    assert seg_visible == point_visible
    return seg_visible


def test_operating_point_threshold_and_fp_per_patient(review):
    assert visible(review) == {1, 2, 3, 4}
    review.set_operating_point(threshold=0.5)
    assert visible(review) == {1, 2}
    assert review.results.patient.operating_point == {"basis": "probability", "threshold": 0.5}
    # FROC (1 FP -> 0.6, 2 FP -> 0.4): 1.5 FP/patient interpolates to 0.5
    assert threshold_for_fp_per_patient(review.froc, 1.5) == pytest.approx(0.5)
    assert threshold_for_fp_per_patient(review.froc, 100) == pytest.approx(0.05)  # clamped
    assert review.set_operating_point(fp_per_patient=4.0) == pytest.approx(0.2)
    assert visible(review) == {1, 2, 3}
    assert review.results.patient.operating_point["fp_per_patient"] == 4.0


def test_accept_reject_update_results_table_and_visibility(review):
    review.set_operating_point(threshold=0.5)
    review.reject(1)
    review.accept(4)  # below threshold, accepted: shown
    assert visible(review) == {2, 4}
    assert review.results.candidate(1).review == "rejected"
    states = dict(zip(table.column_values(review.table, "id"), table.column_values(review.table, "review")))
    assert states == {1: "rejected", 2: "pending", 3: "pending", 4: "accepted"}
    review.set_show_rejected(True)
    assert visible(review) == {1, 2, 4}
    with pytest.raises(ValueError):
        review.set_review(2, "maybe")


def test_edits_read_back_paint_erase_add_remove(review):
    ct_grid = review.ct
    before = {c.id: label_count(review.results, c.id) for c in review.results.candidates}
    # paint: grow GTVn_01 by a 2x2x2 block next to it
    painted = segments.array_from_segment(review.segmentation, "GTVn_01", ct_grid)
    z, y, x = np.argwhere(painted)[0]
    block = (slice(z, z + 2), slice(y - 3, y - 1), slice(x, x + 2))
    added_voxels = int((painted[block] == 0).sum())
    assert added_voxels > 0
    painted[block] = 1
    segments.update_segment_from_array(review.segmentation, "GTVn_01", painted, ct_grid)
    # erase GTVn_02 completely, delete the GTVn_03 segment, add a user segment
    segments.update_segment_from_array(review.segmentation, "GTVn_02", np.zeros_like(painted), ct_grid)
    review.segmentation.GetSegmentation().RemoveSegment("GTVn_03")
    new = np.zeros_like(painted)
    new[2:4, 40:43, 5:8] = 1
    user_id = review.segmentation.GetSegmentation().AddEmptySegment("", "my node")
    segments.update_segment_from_array(review.segmentation, user_id, new, ct_grid)

    report = review.read_edits()

    assert report == {"changed": [1], "removed": [2, 3], "added": [5]}
    results = review.results
    assert label_count(results, 1) == before[1] + added_voxels
    assert label_count(results, 4) == before[4]
    assert [c.id for c in results.candidates] == [1, 4, 5]
    user = results.candidate(5)
    assert user.source == "user" and user.review == "accepted" and label_count(results, 5) == 18
    voxel_ml = np.prod(results.gtv_ln.GetSpacing()) / 1000
    assert results.candidate(1).volume_ml == pytest.approx((before[1] + added_voxels) * voxel_ml)
    # the user's segment lands where it was painted, in LPS on the CT grid
    lps = results.gtv_ln.TransformContinuousIndexToPhysicalPoint((6.0, 41.0, 2.5))
    assert user.centroid_lps == pytest.approx(lps)
    assert user.suv_max == pytest.approx(0.8)  # PET background under the new segment
    assert review.segmentation.GetSegmentation().GetSegment(user_id).GetName() == "GTVn_05"
    assert table.column_values(review.table, "id")[-1] == 5 or 5 in table.column_values(review.table, "id")
    assert markups.control_point_index(review.markups, 5) is not None
    assert markups.control_point_index(review.markups, 2) is None
    assert review.read_edits() == {"changed": [], "removed": [], "added": []}  # idempotent


def test_save_restore_round_trip(review, case, tmp_path):
    ct, pet, _ = case
    review.set_operating_point(threshold=0.3)
    review.reject(2)
    review.accept(4)
    review.results.candidate(1).note = "level 7"
    painted = segments.array_from_segment(review.segmentation, "GTVn_03", review.ct)
    painted[:, :, :] = 0
    painted[5:7, 10:12, 10:12] = 1
    segments.update_segment_from_array(review.segmentation, "GTVn_03", painted, review.ct)
    folder = review_state.save_review(review, tmp_path / "review")
    saved = json.loads((folder / "review.json").read_text())
    assert saved["decisions"] == {"1": "pending", "2": "rejected", "3": "pending", "4": "accepted"}
    assert not list(tmp_path.glob(".review.partial-*"))

    fresh = setup.prepare_scene()
    ct_node = volumes.add_volume(fresh.scene, ct, "CT")
    restored = review_state.restore_review(fresh.scene, folder, ct_node)
    assert {c.id: c.review for c in restored.results.candidates} == {1: "pending", 2: "rejected", 3: "pending", 4: "accepted"}
    assert restored.results.candidate(1).note == "level 7"
    assert restored.threshold == pytest.approx(0.3)
    assert visible(restored) == {1, 3, 4}
    for cid in (1, 2, 3, 4):
        sid = f"GTVn_0{cid}"
        assert np.array_equal(segments.array_from_segment(restored.segmentation, sid, ct_node),
                              segments.array_from_segment(review.segmentation, sid, review.ct))
    assert label_count(restored.results, 3) == 8
    assert restored.read_edits() == {"changed": [], "removed": [], "added": []}
    # the folder is also an ordinary results folder
    assert Results.read(folder).candidate(2).review == "rejected"
    fresh.scene.Clear(True)


def test_save_as_mrb_bundle(review, tmp_path):
    path = review_state.save_review_mrb(review, tmp_path / "case.mrb")
    names = zipfile.ZipFile(path).namelist()
    assert any(n.endswith(".seg.nrrd") for n in names)
    assert any(n.endswith(".mrml") for n in names)


def test_restore_refuses_a_folder_that_is_not_a_review(mrml, tmp_path):
    from LNStagingLib.errors import InputFileError

    with pytest.raises(InputFileError, match="not a saved LNStaging review"):
        review_state.restore_review(mrml.scene, tmp_path, None)


def test_decisions_and_edits_carry_utc_time_and_reviewer_into_review_json_and_the_report(review, case, tmp_path):
    from LNStagingLib.report import write_reviewed_report

    ct, pet, _ = case
    review.reviewer = "Dr Test"
    review.accept(4)
    review.accept(4)  # no change, no new event
    review.reviewer = ""  # a decision without a name keeps only its time
    review.reject(2)
    painted = segments.array_from_segment(review.segmentation, "GTVn_01", review.ct)
    z, y, x = np.argwhere(painted)[0]
    painted[z, y - 2:y, x] = 1
    segments.update_segment_from_array(review.segmentation, "GTVn_01", painted, review.ct)
    review.read_edits()
    events = review.events
    assert [(e["candidate"], e["action"], e.get("by")) for e in events] == [
        (4, "accepted", "Dr Test"), (2, "rejected", None), (1, "edited", None)]
    for e in events:  # UTC ISO 8601 to the second
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", e["at"])
        stamped = datetime.strptime(e["at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        assert abs((datetime.now(timezone.utc) - stamped).total_seconds()) < 120
    review.reviewer = "Dr Test"
    run = tmp_path / "case"
    Results(gtv_ln=case[2].gtv_ln, candidates=case[2].candidates).write(run)
    folder = review_state.save_review(review, run / "review")
    saved = json.loads((folder / "review.json").read_text())
    assert saved["events"] == events and saved["reviewer"] == "Dr Test"

    fresh = setup.prepare_scene()
    restored = review_state.restore_review(fresh.scene, folder, volumes.add_volume(fresh.scene, ct, "CT"))
    assert restored.events == events and restored.reviewer == "Dr Test"
    assert restored.last_events()[4]["action"] == "accepted"
    fresh.scene.Clear(True)

    text = write_reviewed_report(run, ct, pet).read_text()
    assert "When (UTC)" in text and "Reviewer: Dr Test" in text
    assert "3 decision(s)/edit(s)" in text and events[0]["at"][:10] in text
    row = re.search(r"<tr[^>]*><td>GTVn_04</td>.*?</tr>", text).group(0)
    assert f"<td>{events[0]['at'][11:16]}</td>" in row and "accepted" in row
