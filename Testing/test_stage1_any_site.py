"""Issue 13 point 6: a stage-1 model without attention runs on a case without organ masks of any body site (a thigh
sarcoma PET/CT, real data), says so in one line, and the run tells the user about the catalogue's any-site model when
the attention model cannot run."""

import json

import torch

from LNStagingLib.cli import main
from LNStagingLib.models.catalogue import Catalogue
from LNStagingLib.models.checkpoint import save_checkpoint
from LNStagingLib.models.unet import AttentionUNet, unet_config


def test_stage1_without_attention_runs_on_a_real_case_without_organ_masks(data_dir, tmp_path, capsys):
    torch.manual_seed(0)
    net = AttentionUNet(unet_config("tiny", use_pet=True, use_attention=False))
    model = tmp_path / "seg_noattention.pt"
    save_checkpoint(model, net, net.config, training_data={"spacing_mm": [3.0, 3.0, 5.0]})
    nifti = data_dir / "ibsi_validation_sts" / "nifti" / "STS_001"
    out = tmp_path / "run"
    assert main(["run", "--ct", str(nifti / "CT_image.nii.gz"), "--pet", str(nifti / "PET_image.nii.gz"),
                 "--models", f"seg={model}", "--candidates", "pet", "--threads", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Stage 1 ran without distance-guided attention" in printed
    assert "Stage-1 segmentation skipped" not in printed and "No stage-1 model fits" not in printed
    provenance = json.loads((out / "provenance.json").read_text())
    windows = provenance["stage1_windows"]
    assert windows["grid_spacing_mm"] == [3.0, 3.0, 5.0] and windows["run"] > 0
    # --candidates pet names the detector, not a file: merged with stage 1, never hashed as an input
    assert "PET candidates from SUV rules" in printed and "candidates" not in provenance["inputs"]
    sources = {c["source"] for c in json.loads((out / "candidates.json").read_text())["candidates"]}
    assert sources & {"pet", "stage1+pet"}



def test_the_catalogue_names_its_any_site_stage1_model():
    """The shipped catalogue holds a stage-1 model without attention for any site, phantom-trained and not the
    default (the attention model stays the abdominal default)."""
    catalogue = Catalogue.read()
    entry = catalogue.any_site_without_attention()
    assert entry is not None and entry.id == "demo-seg-noattention"
    assert entry.training_domain == "synthetic phantom" and not entry.default
    assert catalogue.default_id("seg") == "demo-seg"
    assert catalogue.resolve(entry.id, "seg").is_file()
