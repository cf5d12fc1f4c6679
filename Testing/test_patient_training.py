"""`lnstaging train patient` / `evaluate patient` end to end on a tiny synthetic cohort (one tiny epoch)."""

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from LNStagingLib import cli
from LNStagingLib.dataset.format import write_description
from LNStagingLib.errors import DatasetError
from LNStagingLib.models.checkpoint import load_checkpoint, sha256_of
from LNStagingLib.models.patient import largest_node_volume_mm3


def _image(array, spacing=(2.0, 2.0, 3.0), direction=(0, 1, 0, -1, 0, 0, 0, 0, 1)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    image.SetOrigin((10.0, -20.0, 5.0))
    return image


def _write_case(folder, seed, positive):
    rng = np.random.default_rng(seed)
    shape = (16, 28, 28)  # z, y, x
    z, y, x = np.indices(shape)
    tumor = (((x - 14) / 6.0) ** 2 + ((y - 13) / 4.0) ** 2 + ((z - 8) / 3.0) ** 2 <= 1).astype(np.uint8)
    ct = rng.normal(40, 15, shape) + tumor.astype(float) * (30 if positive else -10)
    gtv = np.zeros(shape, np.uint16)
    if positive:
        gtv[2:4, 3:6, 3:6] = 1   # 18 voxels
        gtv[10:13, 20:24, 20:24] = 2  # 48 voxels: the largest
    folder.mkdir(parents=True)
    for name, array in (("ct", ct.astype(np.int16)), ("pet", np.ones(shape, np.float32)), ("organs", tumor * 19),
                        ("tumor", tumor), ("gtv_ln", gtv)):
        sitk.WriteImage(_image(array), str(folder / f"{name}.nii.gz"))
    (folder / "patient.json").write_text(json.dumps({"metastasis": int(positive)}))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    ids = [f"case{i:02d}" for i in range(8)]
    for i, case_id in enumerate(ids):
        _write_case(root / "cases" / case_id, i, positive=i % 2 == 1)
    write_description(root, name="tiny", case_ids=ids, organ_labels={19: "tumor"}, organ_mapping="pdac20",
                      folds={c: i % 3 for i, c in enumerate(ids[:6])}, test=ids[6:])
    return root


def test_largest_node_volume():
    gtv = np.zeros((10, 10, 10), np.uint16)
    gtv[0:2, 0:2, 0:2] = 3
    gtv[5:8, 5:8, 5:8] = 1
    assert largest_node_volume_mm3(_image(gtv)) == pytest.approx(27 * 2 * 2 * 3)
    assert largest_node_volume_mm3(_image(gtv * 0)) == 0.0


def test_train_resume_and_evaluate(cohort, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "patient", "--data", str(cohort), "--out", str(out), "--config", "tiny", "--fold", "0"]
    assert cli.main(args) == 0
    final = out / "patient_model.pt"
    assert (out / "patient_model.pt.sha256").read_text() == f"{sha256_of(final)}  patient_model.pt\n"  # sha256sum -c
    payload = load_checkpoint(final, sha256_of(final))
    assert payload["training_data"]["n_train"] == 4 and payload["training_data"]["n_val"] == 2
    assert "case" not in json.dumps(payload["training_data"])  # no case identifiers in the checkpoint
    assert {"val_auc", "val_balanced_accuracy"} <= set(payload["metrics"])
    # resume for a second epoch continues where the first stopped
    assert cli.main(args + ["--resume", "--epochs", "2"]) == 0
    history = json.loads((out / "train_patient_log.json").read_text())["patient"]
    assert [h["epoch"] for h in history] == [0, 1]

    report_path = tmp_path / "eval.json"
    assert cli.main(["evaluate", "patient", "--data", str(cohort), "--model", str(final), "--split", "trainval",
                     "--n-bootstrap", "50", "--out", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert report["n_patients"] == 6 and report["n_positive"] == 3
    assert set(report["metrics"]) == {"balanced_accuracy", "auc", "sensitivity", "specificity", "accuracy"}
    for ci in report["metrics"].values():
        assert 0 <= ci["low"] <= ci["high"] <= 1
    positives = [p for p in report["patients"] if p["label"] == 1]
    assert all(p["ln_volume_mm3"] == pytest.approx(48 * 12.0) for p in positives)
    # determinism: the same evaluation again gives the same probabilities
    assert cli.main(["evaluate", "patient", "--data", str(cohort), "--model", str(final), "--split", "trainval",
                     "--n-bootstrap", "50", "--out", str(tmp_path / "again.json")]) == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert [p["probability"] for p in again["patients"]] == [p["probability"] for p in report["patients"]]
    # volumes measured elsewhere (the pipeline) replace the ground-truth ones
    (tmp_path / "vol.csv").write_text("case,volume_mm3\ncase06,0\ncase07,1234.5\n")
    assert cli.main(["evaluate", "patient", "--data", str(cohort), "--model", str(final), "--n-bootstrap", "20",
                     "--ln-volumes", str(tmp_path / "vol.csv"), "--out", str(tmp_path / "test.json")]) == 0
    test = json.loads((tmp_path / "test.json").read_text())
    assert [p["ln_volume_mm3"] for p in test["patients"]] == [0.0, 1234.5]


def test_init_weights_and_user_errors(cohort, tmp_path, capsys):
    from LNStagingLib.models.patient import PatientMetastasisNet, preset

    donor = PatientMetastasisNet(preset("tiny"))
    torch.save({"state_dict": {f"module.{k}": v for k, v in donor.backbone.state_dict().items()}},
               tmp_path / "init.pth")
    out = tmp_path / "run"
    assert cli.main(["train", "patient", "--data", str(cohort), "--out", str(out), "--config", "tiny",
                     "--init-weights", str(tmp_path / "init.pth"), "--epochs", "0"]) == 0
    assert "tensors loaded" in capsys.readouterr().out
    extra = load_checkpoint(out / "patient_model.pt")["extra"]
    assert extra["init_weights"]["file"] == "init.pth"
    # a user error is one line and a non-zero exit code, no traceback
    code = cli.main(["evaluate", "patient", "--data", str(cohort), "--model", str(tmp_path / "missing.pt")])
    assert code != 0
    with pytest.raises(DatasetError):
        from LNStagingLib.dataset.format import read_dataset
        from LNStagingLib.training.patient import load_cohort
        load_cohort(cohort, fold=5, config=preset("tiny"))


def test_undefined_metrics_are_null_in_the_json():
    from LNStagingLib.evaluation.patient import json_safe

    safe = json_safe({"metrics": {"specificity": {"value": float("nan"), "low": 0.5}}, "x": [float("inf"), 1.0]})
    assert safe == {"metrics": {"specificity": {"value": None, "low": 0.5}}, "x": [None, 1.0]}
    json.dumps(safe, allow_nan=False)
