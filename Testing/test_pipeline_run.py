"""`lnstaging run` end to end on real PET/CT (IBSI STS_001 DICOM), without and with failures."""

import json
import threading

import numpy as np
import pytest
import SimpleITK as sitk

from LNStagingLib.cli import main
from LNStagingLib.errors import Cancelled
from LNStagingLib.pipeline import CaseInputs, run_to_folder
from LNStagingLib.progress import Progress

STS = "ibsi_validation_sts/dicom/STS_001"


@pytest.fixture()
def sts_case(data_dir, tmp_path):
    ct_dir = data_dir / STS / "CT/image"
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(ct_dir)))
    ct = reader.Execute()
    points = [ct.TransformContinuousIndexToPhysicalPoint(p) for p in ([100, 100, 30], [60, 140, 20])]
    csv = tmp_path / "candidates.csv"
    csv.write_text("x,y,z,radius_mm\n" + "".join(f"{p[0]},{p[1]},{p[2]},{r}\n" for p, r in zip(points, (6, 4))))
    return {"ct": ct_dir, "pet": data_dir / STS / "PET/image", "candidates": csv, "points": points, "ct_image": ct}


def test_run_without_models_measures_given_candidates(sts_case, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "--ct", str(sts_case["ct"]), "--pet", str(sts_case["pet"]), "--candidates",
                 str(sts_case["candidates"]), "--models", "none", "--out", str(out)])
    assert code == 0
    for name in ("candidates.csv", "candidates.json", "gtv_ln.nii.gz", "patient.json", "provenance.json", "report.html"):
        assert (out / name).is_file(), name
    candidates = json.loads((out / "candidates.json").read_text())["candidates"]
    assert len(candidates) == 2
    for c, point, radius in zip(sorted(candidates, key=lambda c: c["id"]), sts_case["points"], (6, 4)):
        assert np.allclose(c["centroid_lps"], point, atol=1.0)  # sphere centroid = the given point
        sphere_ml = 4 / 3 * np.pi * radius ** 3 / 1000
        assert 0.6 * sphere_ml < c["volume_ml"] < 1.4 * sphere_ml
        assert c["suv_max"] >= 0 and c["source"] == "file" and c["probability"] is None
    labels = sitk.ReadImage(str(out / "gtv_ln.nii.gz"))
    assert labels.GetSize() == sts_case["ct_image"].GetSize()
    assert np.allclose(labels.GetOrigin(), sts_case["ct_image"].GetOrigin(), atol=1e-3)
    patient = json.loads((out / "patient.json").read_text())
    assert any("No stage-2 model" in s for s in patient["skipped"])
    assert any("lung" in s for s in patient["skipped"])  # a thigh scan: lung priors are said to be missing
    provenance = json.loads((out / "provenance.json").read_text())
    assert len(provenance["inputs"]["ct"]["sha256"]) == 64 and "total" in provenance["timings_s"]
    report = (out / "report.html").read_text()
    assert "not for clinical use" in report and "GTVn_01" in report and "http" not in report.split("<body>")[1]
    assert "Report:" in capsys.readouterr().out


def test_bad_input_is_one_line_and_writes_nothing(sts_case, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "--ct", str(tmp_path / "missing"), "--pet", str(sts_case["pet"]), "--models", "none",
                 "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "candidates.csv"]


def test_candidate_outside_ct_is_refused(sts_case, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y,z\n0,0,5000\n")
    code = main(["run", "--ct", str(sts_case["ct"]), "--pet", str(sts_case["pet"]), "--candidates", str(bad),
                 "--models", "none", "--out", str(tmp_path / "out")])
    assert code != 0 and "outside the CT" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cancel_leaves_no_output(sts_case, tmp_path):
    cancel = threading.Event()

    def cancel_on_first_report(fraction, message):
        cancel.set()

    with pytest.raises(Cancelled):
        run_to_folder(CaseInputs(ct=sts_case["ct"], pet=sts_case["pet"], candidates=sts_case["candidates"]),
                      tmp_path / "out", progress=Progress(cancel_on_first_report, cancel))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["candidates.csv"]


def test_expected_fp_per_patient_interpolates_the_froc_pairs():
    from LNStagingLib.pipeline import expected_fp_per_patient

    froc = [[0.5, 0.9], [2.0, 0.5], [6.0, 0.1]]  # [fp_per_patient, threshold]
    assert expected_fp_per_patient(froc, 0.5) == 2.0
    assert expected_fp_per_patient(froc, 0.7) == 1.25
    assert expected_fp_per_patient(froc, 0.95) == 0.5  # beyond the curve: its end
