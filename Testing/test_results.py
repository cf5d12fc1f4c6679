"""The Results object round-trips through its file form, and the atomic folder leaves nothing on failure."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from LNStagingLib.io.atomic import atomic_directory
from LNStagingLib.results import Candidate, PatientResult, Results


def _labels():
    arr = np.zeros((8, 9, 10), np.uint16)
    arr[2:4, 2:4, 2:4] = 1
    arr[5:7, 5:7, 5:7] = 2
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.8, 0.9, 2.5))
    img.SetOrigin((-10.0, 20.0, 5.0))
    img.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))
    return img


def test_results_round_trip(tmp_path):
    r = Results(gtv_ln=_labels(), candidates=[
        Candidate(1, (1, 2, 3), volume_ml=0.1, priors={"z_norm": 0.4}, probability=0.2),
        Candidate(2, (4, 5, 6), probability=0.9, review="accepted"),
    ], patient=PatientResult(metastasis_probability=0.7), skipped=["no organs: attention map skipped"])
    r.rank_candidates()
    assert [c.rank for c in r.candidates] == [2, 1]
    r.write(tmp_path)
    back = Results.read(tmp_path)
    assert back.candidate(2).review == "accepted"
    assert back.candidate(1).priors == {"z_norm": 0.4}
    assert back.patient.metastasis_probability == 0.7
    assert back.skipped == ["no organs: attention map skipped"]
    assert back.gtv_ln.GetDirection() == r.gtv_ln.GetDirection()
    assert np.array_equal(sitk.GetArrayFromImage(back.gtv_ln), sitk.GetArrayFromImage(r.gtv_ln))
    assert "not for clinical use" in json.loads((tmp_path / "patient.json").read_text())["disclaimer"]
    assert (tmp_path / "candidates.csv").read_text().splitlines()[0].startswith("id,name,rank,probability")


def test_atomic_directory_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        with atomic_directory(out) as tmp:
            (tmp / "candidates.json").write_text("{}")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(out) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (out / "a.txt").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_review_state_is_checked():
    with pytest.raises(ValueError):
        Candidate(1, (0, 0, 0), review="maybe")


def test_ctrl_c_inside_atomic_directory_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(tmp_path / "run") as tmp:
            (tmp / "gtv_ln.nii.gz").write_bytes(b"partial")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
