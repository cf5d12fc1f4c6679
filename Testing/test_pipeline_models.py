"""The whole pipeline with every network (tiny, untrained) on a phantom with an oblique grid: every stage runs, every
output is written, and a second run gives identical probabilities (determinism on the CPU)."""

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from LNStagingLib.models.checkpoint import save_checkpoint
from LNStagingLib.models.identification import InstanceIdentifier
from LNStagingLib.models.patient import PatientMetastasisNet, preset
from LNStagingLib.models.stage2 import Stage2Model, stage2_config
from LNStagingLib.models.unet import AttentionUNet, unet_config
from LNStagingLib.phantom.cohort import write_cohort
from LNStagingLib.pipeline import CaseInputs, ModelSelection, RunOptions, run_to_folder
from LNStagingLib.priors.candidate_priors import PRIOR_NAMES


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models")
    seg = AttentionUNet(unet_config("tiny", use_pet=True))
    networks = {
        "seg": seg,
        "identification": InstanceIdentifier.from_segmentation(seg),
        "cls": Stage2Model(stage2_config("tiny", head="gnnp", prior_names=PRIOR_NAMES)),
        "patient": PatientMetastasisNet(preset("tiny")),
    }
    selection = ModelSelection()
    for stage, net in networks.items():
        path = folder / f"{stage}.pt"
        trained_at = {"spacing_mm": [3.0, 3.0, 5.0]} if stage == "seg" else {}  # the phantom is 1.5 x 1.5 x 2.5 mm
        selection.sha256[stage] = save_checkpoint(path, net, net.config, training_data=trained_at)
        setattr(selection, stage, path)
    return selection


@pytest.fixture(scope="module")
def phantom_case(tmp_path_factory):
    root = write_cohort(tmp_path_factory.mktemp("cohort") / "c", seed=5, cases=1, size="small", folds=1,
                        test_fraction=0.0, direction="oblique")
    return root / "cases" / "case000"


def _run(case, models, out):
    inputs = CaseInputs(ct=case / "ct.nii.gz", pet=case / "pet.nii.gz", organs=case / "organs.nii.gz",
                        organ_mapping="pdac20", tumor=case / "tumor.nii.gz", candidates=case / "candidates.csv")
    torch.set_num_threads(1)
    return run_to_folder(inputs, out, RunOptions(models=models))


def test_every_stage_runs_and_is_deterministic(phantom_case, tiny_models, tmp_path):
    first = _run(phantom_case, tiny_models, tmp_path / "a")
    for name in ("attention.nii.gz", "ln_probability.nii.gz", "gtv_ln.nii.gz", "candidates.csv", "candidates.json",
                 "patient.json", "provenance.json", "report.html"):
        assert (tmp_path / "a" / name).is_file(), name
    assert first.candidates, "the phantom's candidate file gives candidates even if stage 1 finds none"
    assert all(c.probability is not None and 0 <= c.probability <= 1 for c in first.candidates)
    assert all("stage2" in c.scores and "identification" in c.scores for c in first.candidates)
    assert all(set(c.priors) >= {"x_norm", "y_norm", "tumor_distance_mm"} for c in first.candidates)
    assert 0 <= first.patient.metastasis_probability <= 1
    assert sorted(c.rank for c in first.candidates) == list(range(1, len(first.candidates) + 1))
    provenance = json.loads((tmp_path / "a" / "provenance.json").read_text())
    assert set(provenance["models_applied"]) == {"seg", "cls", "identification", "patient"}
    assert provenance["models_applied"]["cls"]["sha256"] == tiny_models.sha256["cls"]
    assert not any("No stage" in s or "No organ" in s or "No tumour" in s for s in first.skipped)
    assert provenance["stage1_windows"]["grid_spacing_mm"] == [3.0, 3.0, 5.0]  # run at the model's voxel size
    ct = sitk.ReadImage(str(phantom_case / "ct.nii.gz"))
    probability = sitk.ReadImage(str(tmp_path / "a" / "ln_probability.nii.gz"))
    assert probability.GetSize() == ct.GetSize() and np.allclose(probability.GetDirection(), ct.GetDirection())

    second = _run(phantom_case, tiny_models, tmp_path / "b")
    assert [c.probability for c in second.candidates] == [c.probability for c in first.candidates]
    assert second.patient.metastasis_probability == first.patient.metastasis_probability


def test_wrong_checksum_is_refused_before_loading(phantom_case, tiny_models, tmp_path):
    from LNStagingLib.errors import ModelError

    bad = ModelSelection(cls=tiny_models.cls, sha256={"cls": "0" * 64})
    with pytest.raises(ModelError, match="sha256"):
        _run(phantom_case, bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_stage1_grid_follows_the_model_voxel_size():
    from LNStagingLib.pipeline import stage1_grid

    ct = sitk.Image([100, 80, 40], sitk.sitkFloat32)
    ct.SetSpacing((0.9, 0.9, 1.5))
    ct.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))
    assert stage1_grid(ct, None) is ct and stage1_grid(ct, [1.0, 0.95, 1.6]) is ct  # within 20 %: CT grid
    grid = stage1_grid(ct, [1.8, 1.8, 2.5])
    assert grid.GetSpacing() == (1.8, 1.8, 2.5) and grid.GetSize() == (50, 40, 24)
    assert grid.GetDirection() == ct.GetDirection()
