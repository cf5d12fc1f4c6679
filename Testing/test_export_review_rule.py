"""The export rule every face shares (LNStagingLib.export.review_rule): accepted nodes only by default, pending ones
only when asked for, rejected never; the export record saved with the review and marked out of date by any change;
``lnstaging export --results`` reading the saved review; ROI descriptions within 64 characters, whole words.

Case: the real IBSI STS_001 CT series with 19 ball-shaped nodes, 2 accepted, 2 rejected, 15 pending (some below
the operating point). The RTSTRUCT is read back by rt-utils and dicompyler-core.
"""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from export_roundtrip import ball_labels, dice, dicompyler_masks, rtutils_masks, sitk_ct
from LNStagingLib.cli import main as cli_main
from LNStagingLib.export.exporter import export_results, export_review
from LNStagingLib.export.review_rule import (export_state, fit_words, pending_to_confirm, read_record,
                                             read_reviewed_results)
from LNStagingLib.results import Candidate, Results

IBSI_CT = "ibsi_validation_sts/dicom/STS_001/CT/image"
ACCEPTED, REJECTED = (4, 11), (2, 17)
THRESHOLD = 0.5


@pytest.fixture(scope="module")
def reviewed(data_dir, tmp_path_factory):
    """A results folder with a saved review (review/ as the faces write it) over 19 nodes on the IBSI CT."""
    ct_folder = data_dir / IBSI_CT
    ct, uids = sitk_ct(ct_folder)
    nodes = []
    for n in range(19):  # a 5 x 4 grid of 4.5 mm balls on two slabs, inside rt-utils' usable 198 x 198 square
        i, j, k = 30 + 35 * (n % 5), 40 + 35 * ((n // 5) % 4), 20 + 25 * (n % 2)
        nodes.append((n + 1, ct.TransformContinuousIndexToPhysicalPoint((float(i), float(j), float(k))), 4.5, 0.0))
    labels = ball_labels(ct, nodes)
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(ct)
    candidates = []
    for n in range(19):
        cid = n + 1
        review = "accepted" if cid in ACCEPTED else "rejected" if cid in REJECTED else "pending"
        candidates.append(Candidate(cid, tuple(nodes[n][1]), probability=round(0.95 - 0.05 * n, 3) if n < 14 else 7e-05 * n,
                                    review=review))
    results = Results(gtv_ln=image, candidates=candidates)
    results.patient.operating_point = {"threshold": THRESHOLD}
    run = tmp_path_factory.mktemp("rule") / "run"
    unreviewed = Results(gtv_ln=image, candidates=[Candidate(c.id, c.centroid_lps, probability=c.probability)
                                                    for c in candidates])
    unreviewed.write(run)  # the run as the pipeline left it: every node pending
    results.write(run / "review")
    (run / "review" / "review.json").write_text(json.dumps({
        "decisions": {str(c.id): c.review for c in candidates}, "threshold": THRESHOLD}))
    return {"ct_folder": ct_folder, "uids": uids, "labels": labels, "results": results, "run": run}


def roi_names(path) -> list[str]:
    return [r.ROIName for r in pydicom.dcmread(path).StructureSetROISequence]


def test_accepting_2_of_19_exports_2_rois_read_by_rt_utils_and_dicompyler(reviewed, tmp_path):
    out = tmp_path / "RS.dcm"
    summary, record = export_review(reviewed["results"], reviewed["ct_folder"], out, tmp_path / "review",
                                    threshold=THRESHOLD)
    names = {f"GTVn_{cid:02d}": cid for cid in ACCEPTED}
    assert sorted(roi_names(out)) == sorted(names)
    counts = summary.counts
    assert (counts.written, counts.accepted, counts.pending_left, counts.rejected) == (2, 2, 15, 2)
    hidden = sum(1 for c in reviewed["results"].candidates
                 if c.review == "pending" and c.probability < THRESHOLD)
    assert counts.hidden_left == hidden > 0
    assert record.summary == summary.counts.text() and "15 pending" in record.summary and "2 rejected" in record.summary
    for masks in (rtutils_masks(reviewed["ct_folder"], out, reviewed["uids"]),
                  dicompyler_masks(reviewed["ct_folder"], out)):
        assert sorted(masks) == sorted(names)
        for name, cid in names.items():
            assert dice(masks[name], reviewed["labels"] == cid) >= 0.99, name
    for item in pydicom.dcmread(out).StructureSetROISequence:
        assert len(item.ROIDescription) <= 64 and "accepted" in item.ROIDescription


def test_pending_needs_an_explicit_choice_and_rejected_never_leaves(reviewed, tmp_path):
    results = reviewed["results"]
    listed = pending_to_confirm(results.candidates, THRESHOLD)
    assert len(listed) == 15 and [r["probability"] for r in listed] == sorted((r["probability"] for r in listed), reverse=True)
    assert sum(r["hidden"] for r in listed) == export_results(results, reviewed["ct_folder"], tmp_path / "a.dcm",
                                                              threshold=THRESHOLD).counts.hidden_left
    summary = export_results(results, reviewed["ct_folder"], tmp_path / "RS.dcm", include_pending=True)
    written = {v for r in summary.rois for v in r.label_values}
    assert len(written) == 17 and not written & set(REJECTED)
    assert summary.counts.pending_written == 15


def test_a_change_after_export_marks_it_out_of_date(reviewed, tmp_path):
    results = Results.read(reviewed["run"] / "review")
    for c in results.candidates:
        c.review = reviewed["results"].candidate(c.id).review
    review_dir = tmp_path / "review"
    assert export_state(review_dir, results) == "none"
    export_review(results, reviewed["ct_folder"], tmp_path / "RS.dcm", review_dir)
    assert export_state(review_dir, results) == "current"
    results.candidate(5).review = "rejected"  # a decision
    assert export_state(review_dir, results) == "stale"
    results.candidate(5).review = "pending"
    assert export_state(review_dir, results) == "current"
    array = sitk.GetArrayFromImage(results.gtv_ln)
    array[array == ACCEPTED[0]] = 0  # a contour edit (erased)
    edited = sitk.GetImageFromArray(array)
    edited.CopyInformation(results.gtv_ln)
    results.gtv_ln = edited
    assert export_state(review_dir, results) == "stale"
    assert read_record(review_dir).rois == [f"GTVn_{cid:02d}" for cid in ACCEPTED]


def test_cli_export_results_reads_the_saved_review(reviewed, tmp_path, capsys):
    run = reviewed["run"]
    results, decisions = read_reviewed_results(run)
    assert decisions is not None and results.candidate(ACCEPTED[0]).review == "accepted"
    base = ["export", "rtstruct", "--ct-dicom", str(reviewed["ct_folder"]), "--results", str(run), "--quiet"]
    assert cli_main(base + ["--out", str(tmp_path / "default.dcm")]) == 0
    assert sorted(roi_names(tmp_path / "default.dcm")) == [f"GTVn_{cid:02d}" for cid in ACCEPTED]
    out = capsys.readouterr().out
    assert "review state read from" in out and "not exported: 15 pending" in out
    assert cli_main(base + ["--only-accepted", "--out", str(tmp_path / "legacy.dcm")]) == 0  # kept, a no-op
    assert sorted(roi_names(tmp_path / "legacy.dcm")) == [f"GTVn_{cid:02d}" for cid in ACCEPTED]
    assert cli_main(base + ["--include-pending", "--out", str(tmp_path / "pending.dcm")]) == 0
    names = roi_names(tmp_path / "pending.dcm")
    assert len(names) == 17 and not {f"GTVn_{cid:02d}" for cid in REJECTED} & set(names)
    assert cli_main(base + ["--include-pending", "--only-accepted", "--out", str(tmp_path / "x.dcm")]) == 2
    assert not (tmp_path / "x.dcm").exists()


def test_descriptions_fit_64_characters_without_cutting_words():
    text = "Lymph node candidate 123, p(metastasis) 0.873, accepted by the reviewer on the second look"
    short = fit_words(text)
    assert len(short) <= 64 and short.endswith(" ...")
    kept = short[:-4].split(" ")
    assert kept == text.split(" ")[:len(kept)]  # whole words, in order
    assert fit_words("GTVn_01, accepted") == "GTVn_01, accepted"
