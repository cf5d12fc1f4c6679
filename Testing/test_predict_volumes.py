"""Predicted LN volumes (paper 2, eq. 7): `lnstaging predict-volumes` runs stage 1 + identification per case, the
pipeline feeds the patient model the identifier's volume, and `train patient --ln-volumes` trains on the file."""

import csv
import json

import pytest
import torch

from LNStagingLib.cli import main as cli
from LNStagingLib.dataset.format import read_dataset
from LNStagingLib.dataset.ln_volumes import read_ln_volumes
from LNStagingLib.models.checkpoint import load_checkpoint, save_checkpoint
from LNStagingLib.models.identification import InstanceIdentifier
from LNStagingLib.models.unet import AttentionUNet, unet_config
from LNStagingLib.phantom.cohort import write_cohort
from LNStagingLib.pipeline import ModelSelection, RunOptions, run_case
from LNStagingLib.commands.run_batch import case_inputs_from_dataset


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    # seed 7: the training fold holds a positive and a negative patient (seed 5 did before the liver-dome FOV)
    return write_cohort(tmp_path_factory.mktemp("pv") / "cohort", seed=7, cases=4, size="small", folds=2,
                        test_fraction=0.0, direction="mixed")


@pytest.fixture(scope="module")
def stage1_models(tmp_path_factory):
    """Untrained tiny networks (seeded): enough to exercise the path, not to find nodes."""
    torch.manual_seed(3)
    folder = tmp_path_factory.mktemp("models")
    seg = AttentionUNet(unet_config("tiny", use_pet=True))
    identifier = InstanceIdentifier.from_segmentation(seg)
    selection = ModelSelection()
    for stage, net in (("seg", seg), ("identification", identifier)):
        path = folder / f"{stage}.pt"
        trained_at = {"spacing_mm": [3.0, 3.0, 5.0]} if stage == "seg" else {}
        selection.sha256[stage] = save_checkpoint(path, net, net.config, training_data=trained_at)
        setattr(selection, stage, path)
    return selection


def _models_arg(models):
    return f"seg={models.seg},identification={models.identification}"


def test_predict_volumes_writes_the_pipelines_identifier_volume_per_case(cohort, stage1_models, tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "volumes.csv"
    assert cli(["predict-volumes", "--data", str(cohort), "--models", _models_arg(stage1_models),
                "--threshold", "0.0", "--out", str(out), "--threads", "1", "--cases", "case000", "case001"]) == 0
    with open(out, newline="") as handle:
        assert next(csv.reader(handle)) == ["case", "volume_mm3"]
    volumes = read_ln_volumes(out)
    dataset = read_dataset(cohort)
    assert list(volumes) == ["case000", "case001"]
    # the same case through the pipeline: V_max_pLN = the largest instance the identifier calls positive
    case_id = "case001"
    results, _ = run_case(case_inputs_from_dataset(dataset, case_id),
                          RunOptions(models=stage1_models, threshold=0.0, threads=1))
    identified = [c for c in results.candidates if c.scores.get("identification", -1) >= 0.0]
    expected = max((c.volume_ml for c in identified), default=0.0) * 1000.0
    assert volumes[case_id] == pytest.approx(expected, abs=1e-3)
    assert results.patient.note.endswith("instance identifier") == bool(identified)


def test_predict_volumes_needs_the_identifier(cohort, stage1_models, tmp_path, capsys):
    assert cli(["predict-volumes", "--data", str(cohort), "--models", f"seg={stage1_models.seg}",
                "--out", str(tmp_path / "v.csv")]) == 2
    assert "identifier" in capsys.readouterr().err and not (tmp_path / "v.csv").exists()


def test_patient_model_trains_on_the_volumes_file(cohort, tmp_path):
    from LNStagingLib.models.patient import preset
    from LNStagingLib.training.patient import load_cohort

    dataset = read_dataset(cohort)
    volumes = {case_id: 1000.0 * (k + 1) for k, case_id in enumerate(dataset.case_ids)}
    path = tmp_path / "predicted.csv"
    path.write_text("case,volume_mm3\n" + "".join(f"{c},{v}\n" for c, v in volumes.items()))
    loaded = load_cohort(cohort, 0, preset("tiny"), ln_volumes=read_ln_volumes(path), ln_volume_source=path.name)
    assert {e.case_id: e.ln_volume_mm3 for e in loaded.train + loaded.val} == {
        c: volumes[c] for c in [e.case_id for e in loaded.train + loaded.val]}
    assert loaded.description()["ln_volume_source"] == "predicted.csv (predicted)"
    if len({e.label for e in loaded.train}) < 2:
        pytest.skip("this fold's training cases share one label")
    out = tmp_path / "run"
    assert cli(["train", "patient", "--data", str(cohort), "--out", str(out), "--config", "tiny",
                "--ln-volumes", str(path)]) == 0
    payload = load_checkpoint(out / "patient_model.pt")
    assert payload["training_data"]["ln_volume_source"] == "predicted.csv (predicted)"


def _predicted_volume_patient_model(folder):
    from LNStagingLib.models.patient import PatientMetastasisNet, preset

    torch.manual_seed(0)
    net = PatientMetastasisNet(preset("tiny"))
    path = folder / "patient_model.pt"
    save_checkpoint(path, net, net.config, training_data={"ln_volume_source": "train_volumes.csv (predicted)"})
    return path


def test_evaluation_never_reads_gtv_ln_for_a_model_trained_on_predicted_volumes(cohort, tmp_path, monkeypatch, capsys):
    """Issue 29: gtv_ln.nii.gz is > 0 exactly for the phantom's positive patients; a model trained with --ln-volumes
    is refused without them, and with them evaluation opens no gtv_ln file."""
    from LNStagingLib.dataset.format import CaseFiles

    model = _predicted_volume_patient_model(tmp_path)
    out = tmp_path / "eval.json"
    assert cli(["evaluate", "patient", "--data", str(cohort), "--model", str(model), "--split", "all",
                "--out", str(out)]) == 2
    assert "--ln-volumes" in capsys.readouterr().err and not out.exists()

    real_load = CaseFiles.load
    opened = []

    def load(self, key):
        opened.append(key)
        if key == "gtv_ln":
            raise AssertionError("evaluation read gtv_ln.nii.gz")
        return real_load(self, key)

    monkeypatch.setattr(CaseFiles, "load", load)
    volumes = tmp_path / "volumes.csv"
    ids = read_dataset(cohort).case_ids
    volumes.write_text("case,volume_mm3\n" + "".join(f"{c},{100.0 * k}\n" for k, c in enumerate(ids)))
    assert cli(["evaluate", "patient", "--data", str(cohort), "--model", str(model), "--split", "all",
                "--ln-volumes", str(volumes), "--out", str(out)]) == 0
    assert "ct" in opened and "gtv_ln" not in opened
    report = json.loads(out.read_text())
    assert [p["ln_volume_mm3"] for p in report["patients"]] == [100.0 * k for k in range(len(ids))]
    assert report["ln_volume_source"] == "volumes.csv"


def test_cross_fit_refuses_what_it_cannot_do(cohort, tmp_path, capsys):
    out = tmp_path / "train_volumes.csv"
    assert cli(["predict-volumes", "--data", str(cohort), "--cross-fit", "1", "--out", str(out)]) == 2
    assert "at least 2 groups" in capsys.readouterr().err
    assert cli(["predict-volumes", "--data", str(cohort), "--cross-fit", "2", "--cases", "case000",
                "--out", str(out)]) == 2
    assert "do not combine" in capsys.readouterr().err
    assert cli(["predict-volumes", "--data", str(cohort), "--cross-fit", "2", "--seg-args", "--phase seg",
                "--out", str(out)]) == 2
    assert "identifier" in capsys.readouterr().err and not out.exists()
    assert cli(["predict-volumes", "--data", str(cohort), "--seg-args=--pet", "--out", str(out)]) == 2
    assert "belong to --cross-fit" in capsys.readouterr().err and not out.exists()


@pytest.mark.slow
def test_cross_fit_predicts_each_training_case_with_a_model_that_never_saw_it(cohort, tmp_path):
    """--cross-fit 2 on the four non-test cases: two stage-1 trainings, each on the other group; every case gets
    the volume its group's model predicts, and a second call reuses the groups' files (resumable)."""
    import hashlib

    torch.set_num_threads(1)
    out, work = tmp_path / "train_volumes.csv", tmp_path / "work"
    argv = ["predict-volumes", "--data", str(cohort), "--cross-fit", "2", "--work", str(work), "--config", "tiny",
            "--seed", "3", "--seg-args", "--pet --epochs 1", "--threads", "1", "--threshold", "0.0", "--out", str(out)]
    assert cli(argv) == 0
    dataset = read_dataset(cohort)
    volumes = read_ln_volumes(out)
    assert list(volumes) == dataset.trainval_ids
    groups = [read_dataset(work / f"fold{j}" / "data").test_ids for j in range(2)]
    assert sorted(groups[0] + groups[1]) == sorted(dataset.trainval_ids) and groups[0] and groups[1]
    for j, group in enumerate(groups):
        fold = read_dataset(work / f"fold{j}" / "data")
        train_ids, val_ids = fold.split(0)
        assert not set(train_ids + val_ids) & set(group)  # the group's model never saw it
        seen = load_checkpoint(work / f"fold{j}" / "seg" / "seg_model.pt")["training_data"]
        assert seen["train_ids_sha256"] == hashlib.sha256("\n".join(sorted(train_ids)).encode()).hexdigest()
        assert read_ln_volumes(work / f"fold{j}" / "volumes.csv") == {c: volumes[c] for c in group}
    # the group's first case through the pipeline with its group's model gives the same volume
    case_id = groups[1][0]
    models = ModelSelection(seg=work / "fold1" / "seg" / "seg_model.pt",
                            identification=work / "fold1" / "seg" / "identifier.pt")
    results, _ = run_case(case_inputs_from_dataset(dataset, case_id), RunOptions(models=models, threshold=0.0,
                                                                                 threads=1))
    assert volumes[case_id] == pytest.approx((results.patient.largest_positive_ln_volume_ml or 0.0) * 1000.0,
                                             abs=1e-3)
    stamp = (work / "fold0" / "seg" / "seg_model.pt").stat().st_mtime_ns
    assert cli([*argv, "--overwrite"]) == 0
    assert read_ln_volumes(out) == volumes and (work / "fold0" / "seg" / "seg_model.pt").stat().st_mtime_ns == stamp
    # a group interrupted after its last epoch but before its models and volumes were written resumes: no epoch is
    # trained again (the resume points are not rewritten) and the volumes are the same
    last = {name: (work / "fold0" / "seg" / name).stat().st_mtime_ns for name in ("seg_last.pt", "identifier_last.pt")}
    for name in ("volumes.csv", "seg/seg_model.pt", "seg/identifier.pt"):
        (work / "fold0" / name).unlink()
    assert cli([*argv, "--overwrite"]) == 0
    assert read_ln_volumes(out) == volumes and (work / "fold0" / "seg" / "identifier.pt").is_file()
    assert {name: (work / "fold0" / "seg" / name).stat().st_mtime_ns for name in last} == last
