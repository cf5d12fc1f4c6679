"""`lnstaging train cls --distributed` under torchrun (2 gloo ranks on loopback) trains the same stage-2 model as one
process with the same effective batch, and resumes exactly (docs/SCALING.md). Needs 2 cores: one slow test."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from LNStagingLib.cli import main as cli
from LNStagingLib.models.checkpoint import load_checkpoint, load_model
from LNStagingLib.phantom.cohort import write_cohort

REPO = Path(__file__).resolve().parents[1]


def torchrun(args: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "LNStagingLib.cli", *args, "--distributed"], env=env, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]


def parameters(folder: Path) -> dict:
    from LNStagingLib.models import stage2  # noqa: F401  (registers the stage-2 model for load_model)

    model, _, _ = load_model(folder / "cls_last.pt")
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.slow
def test_two_gloo_ranks_equal_one_process_and_resume_exactly(tmp_path):
    torch.set_num_threads(1)
    cohort = write_cohort(tmp_path / "cohort", seed=3, cases=5, size="small", folds=5, test_fraction=0.0)
    # 4 training cases (fold 4 validates), 4 patients per optimiser step (2 per rank on 2 ranks)
    common = ["train", "cls", "--data", str(cohort), "--config", "tiny", "--head", "gnnp", "--fold", "4",
              "--accumulate", "4", "--seed", "1"]
    one, two, resumed = tmp_path / "one", tmp_path / "two", tmp_path / "resumed"
    assert cli(common + ["--out", str(one), "--epochs", "2"]) == 0
    for folder in (two, resumed):  # the patch cache is keyed by the case files and patch settings: reuse it
        shutil.copytree(one / "cache", folder / "cache")
    torchrun(common + ["--out", str(two), "--epochs", "2"])
    torchrun(common + ["--out", str(resumed), "--epochs", "1"])
    torchrun(common + ["--out", str(resumed), "--epochs", "2", "--resume"])

    single, distributed, continued = parameters(one), parameters(two), parameters(resumed)
    assert load_checkpoint(two / "cls_last.pt")["extra"]["epoch"] == 1
    worst = max(float((single[k] - distributed[k]).abs().max()) for k in single)
    print(f"largest weight difference, 2 gloo ranks vs 1 process after 2 epochs: {worst:.3g}")
    assert worst < 1e-5, f"2 ranks differ from 1 process by {worst:g}"
    assert all(torch.equal(distributed[k], continued[k]) for k in distributed)  # resumed = uninterrupted

    _, config, _ = load_model(one / "cls_last.pt")
    from LNStagingLib.models.stage2 import Stage2Model

    torch.manual_seed(1)
    initial = dict(Stage2Model(config).named_parameters())
    moved = max(float((single[k] - initial[k].detach()).abs().max()) for k in single)
    print(f"largest weight change in training: {moved:.3g}")
    assert moved > 10 * 1e-5, "training hardly moved the weights: the comparison would prove nothing"


def test_distributed_without_torchrun_says_how_to_start(tmp_path, capsys, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    code = cli(["train", "cls", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--distributed"])
    assert code == 2 and "torchrun --standalone --nproc-per-node N" in capsys.readouterr().err
