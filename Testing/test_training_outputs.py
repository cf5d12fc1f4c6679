"""One rule for what trainings write beside their checkpoints (issue 31): NAME.pt.sha256 in sha256sum's format, and
strict JSON logs (NaN and infinities as null). The trainings themselves are checked on 2 ranks in
test_scaling_ddp.py."""

import hashlib
import json
import shutil
import subprocess

import numpy as np
import pytest

from LNStagingLib.training.outputs import checksum_path, read_checksum, strict_json, write_checksum


def test_checksum_file_is_named_after_the_checkpoint_and_sha256sum_checks_it(tmp_path):
    checkpoint = tmp_path / "cls_model.pt"
    checkpoint.write_bytes(b"weights")
    sha = hashlib.sha256(b"weights").hexdigest()
    assert write_checksum(checkpoint, sha) == checksum_path(checkpoint) == tmp_path / "cls_model.pt.sha256"
    assert read_checksum(checkpoint) == sha
    if shutil.which("sha256sum"):
        done = subprocess.run(["sha256sum", "-c", "cls_model.pt.sha256"], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0 and "cls_model.pt: OK" in done.stdout
        checkpoint.write_bytes(b"changed")
        assert subprocess.run(["sha256sum", "-c", "cls_model.pt.sha256"], cwd=tmp_path, capture_output=True).returncode


def test_logs_are_strict_json():
    record = {"epoch": 1, "train_loss": np.float32(0.5), "val_patch_dice": float("nan"),
              "history": [np.float64("inf"), -float("inf"), 2]}
    text = strict_json(record)

    def refuse(constant):
        raise ValueError(constant)

    assert json.loads(text, parse_constant=refuse) == {"epoch": 1, "train_loss": 0.5, "val_patch_dice": None,
                                                       "history": [None, None, 2]}
    with pytest.raises(ValueError):
        json.loads(json.dumps({"x": float("nan")}), parse_constant=refuse)  # what the logs held before
