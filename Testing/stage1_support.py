"""Shared pytest fixture of the stage-1 tests (imported by Testing/test_stage1_*.py)."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks run fastest on one thread, above all on a shared machine; restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_seg_without_attention(path):
    """An untrained (seeded) tiny stage-1 model without attention, trained at 3x3x5 mm: runs on any real case fast."""
    import torch

    from LNStagingLib.models.checkpoint import save_checkpoint
    from LNStagingLib.models.unet import AttentionUNet, unet_config

    torch.manual_seed(0)
    net = AttentionUNet(unet_config("tiny", use_pet=True, use_attention=False))
    save_checkpoint(path, net, net.config, training_data={"spacing_mm": [3.0, 3.0, 5.0]})
    return path


def run_sts_with_stage1_without_attention(data_dir, tmp_path, capsys):
    """`lnstaging run` on the IBSI STS_001 NIfTI PET/CT with that model and PET candidates: (results folder, stdout)."""
    from LNStagingLib.cli import main

    model = tiny_seg_without_attention(tmp_path / "seg_noattention.pt")
    nifti = data_dir / "ibsi_validation_sts" / "nifti" / "STS_001"
    out = tmp_path / "run"
    assert main(["run", "--ct", str(nifti / "CT_image.nii.gz"), "--pet", str(nifti / "PET_image.nii.gz"),
                 "--models", f"seg={model}", "--candidates", "pet", "--threads", "1", "--out", str(out)]) == 0
    return out, capsys.readouterr().out
