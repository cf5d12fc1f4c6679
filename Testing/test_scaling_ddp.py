"""`lnstaging train seg|cls|patient` on 2 gloo ranks on loopback (torch DistributedDataParallel, started by the venv's
torchrun) train the same models as one process with the same effective batch, and resume exactly
(docs/SCALING.md). All distributed trainings run in one torchrun start (Testing/ddp_runs.py): one slow test."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from LNStagingLib.cli import main as cli
from LNStagingLib.models.checkpoint import load_checkpoint, load_model
from LNStagingLib.phantom.cohort import write_cohort

from scaling_support import train_patient_sgd, train_seg_sgd

REPO = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")


def torchrun(plan: list, folder: Path) -> float:
    """Run the plan's trainings on 2 ranks (each rank's stdout and stderr to its own file under folder/logs); the
    seconds it took."""
    plan_file = folder / "plan.json"
    plan_file.write_text(json.dumps(plan))
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'Testing'}", "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    run = subprocess.run([str(TORCHRUN), "--standalone", "--nproc-per-node", "2", "--log-dir", str(folder / "logs"),
                          "--redirects", "3", str(REPO / "Testing" / "ddp_runs.py"), str(plan_file)], env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-4000:] + "".join(p.read_text()[-2000:] for p in (folder / "logs").rglob("*.log"))
    return time.perf_counter() - start


def rank_output(folder: Path, rank: int) -> str:
    """What one rank of torchrun() printed, stdout then stderr."""
    files = [next((folder / "logs").rglob(f"{rank}/{name}.log")) for name in ("stdout", "stderr")]
    return "".join(path.read_text() for path in files)


def strict(path: Path):
    """A JSON file that only a strict reader would accept (no bare NaN or Infinity)."""
    def refuse(constant):
        raise ValueError(f"{path.name} holds a bare {constant}: not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def tensors(path: Path) -> tuple[dict, dict]:
    """(parameters, floating-point buffers) of a checkpoint."""
    from LNStagingLib.models import identification, patient, stage2, unet  # noqa: F401  (register the models)

    model, _, _ = load_model(path)
    parameters = {name: p.detach() for name, p in model.named_parameters()}
    buffers = {name: b for name, b in model.state_dict().items() if name not in parameters and b.is_floating_point()}
    return parameters, buffers


def largest_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((float((a[k] - b[k]).abs().max()) for k in a), default=0.0)


def validation_fold(cohort: Path) -> int:
    """A fold whose cases leave metastatic and non-metastatic patients in training (the patient model needs both)."""
    folds = json.loads((cohort / "dataset.json").read_text())["folds"]
    label = {case: json.loads((cohort / "cases" / case / "patient.json").read_text())["metastasis"] for case in folds}
    usable = [f for f in sorted(set(folds.values())) if {label[c] for c in folds if folds[c] != f} == {0, 1}]
    assert usable, f"the phantom cohort has one class only: {label}"
    return usable[0]


@pytest.mark.slow
def test_two_gloo_ranks_equal_one_process_and_resume_exactly(tmp_path):
    torch.set_num_threads(1)
    cohort = write_cohort(tmp_path / "cohort", seed=2, cases=4, size=(64, 64, 40), folds=4, test_fraction=0.0)
    fold = validation_fold(cohort)  # 3 training cases, metastatic and not
    data = ["--data", str(cohort), "--config", "tiny", "--fold", str(fold), "--seed", "1"]
    # stage 2: 3 patients per optimiser step (2 + 1 on 2 ranks: the second rank pads with a zero-weight step)
    commands = {"cls": ["train", "cls", *data, "--head", "gnnp", "--accumulate", "3", "--lr", "1e-3"],
                "seg": ["train", "seg", *data],  # batch 2 (1 patch per rank), identification batch 4 (2 per rank)
                "patient": ["train", "patient", *data]}  # 2 patients per step (1 per rank, then 1 and none)

    started = time.perf_counter()
    single = {task: tmp_path / f"{task}_one" for task in ("cls", "patient")}
    for task, folder in single.items():
        assert cli(commands[task] + ["--out", str(folder), "--epochs", "2"]) == 0
    train_seg_sgd(cohort, tmp_path / "sgd_one", fold=fold)  # stage 1 and the patient model compared with SGD (below)
    train_patient_sgd(cohort, tmp_path / "patient_sgd_one", fold=fold)
    one_process = time.perf_counter() - started

    two = {task: tmp_path / f"{task}_two" for task in commands}
    resumed = {task: tmp_path / f"{task}_resumed" for task in commands}
    for folder in (two["cls"], resumed["cls"]):  # the patch cache is keyed by the case files and patch settings
        shutil.copytree(single["cls"] / "cache", folder / "cache")
    plan = []
    for task, command in commands.items():
        first = ["--phase", "seg"] if task == "seg" else []
        plan += [command + ["--out", str(two[task]), "--epochs", "2", "--distributed"],
                 command + ["--out", str(resumed[task]), "--epochs", "1", *first],  # torchrun's environment alone
                 command + ["--out", str(resumed[task]), "--epochs", "2", "--resume", "--distributed"]]
    plan.append(["seg-sgd", str(cohort), str(tmp_path / "sgd_two"), str(fold)])
    plan.append(["patient-sgd", str(cohort), str(tmp_path / "patient_sgd_two"), str(fold)])
    distributed = torchrun(plan, tmp_path)
    print(f"one process: {one_process:.1f} s for 4 trainings; 2 ranks: {distributed:.1f} s for 11 (one torchrun)")

    # training output (issue 31): rank 0 alone prints; the cls bar's loss is the logged loss; loading reaches 100 %;
    # strict JSON logs; one checksum rule (NAME.pt.sha256 in sha256sum's format)
    main_output, other_output = rank_output(tmp_path, 0), rank_output(tmp_path, 1)
    assert "%|" not in other_output and "sha256" not in other_output and "loading" not in other_output, other_output[-3000:]
    assert "loading cases 100%" in main_output
    bars = re.findall(r"epoch (\d)/2: [^\r\n]*loss=([0-9.]+)", main_output)
    first_epoch = [loss for epoch, loss in bars if epoch == "1"]
    assert first_epoch and bars[-1][0] == "2", bars
    logged = strict(two["cls"] / "train_cls_log.json")
    assert float(first_epoch[-1]) == round(logged[0]["train_loss"], 4), (first_epoch, logged[0])
    assert float(bars[-1][1]) == round(strict(resumed["cls"] / "train_cls_log.json")[1]["train_loss"], 4)
    finals = {"cls": ["cls_model.pt"], "seg": ["seg_model.pt", "identifier.pt"], "patient": ["patient_model.pt"]}
    for task, names in finals.items():
        strict(two[task] / f"train_{task}_log.json")
        assert sorted(p.name for p in two[task].glob("*.sha256")) == sorted(f"{n}.sha256" for n in names)
        for name in names:
            from LNStagingLib.models.checkpoint import sha256_of

            assert (two[task] / f"{name}.sha256").read_text() == f"{sha256_of(two[task] / name)}  {name}\n"

    files = {"cls": ["cls_last.pt"], "seg": ["seg_model.pt", "identifier.pt"], "patient": ["patient_model.pt"]}
    for task, names in files.items():
        for name in names:  # resumed = uninterrupted, to the bit
            (w2, b2), (w3, b3) = tensors(two[task] / name), tensors(resumed[task] / name)
            assert all(torch.equal(w2[k], w3[k]) for k in w2), f"{name}: resumed differs from uninterrupted"
            assert all(torch.equal(b2[k], b3[k]) for k in b2), f"{name}: resumed statistics differ"
    assert load_checkpoint(two["cls"] / "cls_last.pt")["extra"]["epoch"] == 1

    (w1, b1), (w2, b2) = tensors(single["patient"] / "patient_model.pt"), tensors(two["patient"] / "patient_model.pt")
    print(f"patient_model.pt with the preset's Adam: 2 ranks vs 1 process, largest difference: weights "
          f"{largest_difference(w1, w2):.3g}, buffers {largest_difference(b1, b2):.3g} (not asserted: Adam, see "
          "train_seg_sgd)")
    pairs = {"cls_last.pt": (single["cls"], two["cls"]),
             "patient_model.pt": (tmp_path / "patient_sgd_one", tmp_path / "patient_sgd_two"),
             "seg_model.pt": (tmp_path / "sgd_one", tmp_path / "sgd_two"),
             "identifier.pt": (tmp_path / "sgd_one", tmp_path / "sgd_two")}
    for name, (one, two_ranks) in pairs.items():  # same model as one process with the same effective batch
        (w1, b1), (w2, b2) = tensors(one / name), tensors(two_ranks / name)
        weights, buffers = largest_difference(w1, w2), largest_difference(b1, b2)
        print(f"{name}{'' if name == 'cls_last.pt' else ' with SGD'}: 2 ranks vs 1 process, largest difference: "
              f"weights {weights:.3g}, buffers {buffers:.3g}")
        assert weights < 1e-5, f"{name}: 2 ranks differ from 1 process by {weights:g}"
        assert buffers < 1e-5, f"{name}: BatchNorm statistics of 2 ranks differ from 1 process by {buffers:g}"
    sgd1 = tensors(tmp_path / "sgd_one" / "seg_model.pt")[0]

    # the comparisons prove something only if training moved the weights well beyond the tolerance
    from LNStagingLib.models.stage2 import Stage2Model

    _, config, _ = load_model(single["cls"] / "cls_last.pt")
    torch.manual_seed(1)
    initial = {k: p.detach() for k, p in Stage2Model(config).named_parameters()}
    moved = largest_difference(initial, tensors(single["cls"] / "cls_last.pt")[0])
    from LNStagingLib.models.unet import AttentionUNet, unet_config

    torch.manual_seed(1)
    initial = {k: p.detach() for k, p in AttentionUNet(unet_config("tiny")).named_parameters()}
    moved_sgd = largest_difference(initial, sgd1)
    from LNStagingLib.models.patient import PatientMetastasisNet, preset

    torch.manual_seed(1)
    initial = {k: p.detach() for k, p in PatientMetastasisNet(preset("tiny")).named_parameters()}
    moved_patient = largest_difference(initial, tensors(tmp_path / "patient_sgd_one" / "patient_model.pt")[0])
    print(f"largest weight change in training: stage 2 {moved:.3g}, stage 1 with SGD {moved_sgd:.3g}, patient with "
          f"SGD {moved_patient:.3g}")
    assert min(moved, moved_sgd, moved_patient) > 10 * 1e-5


def test_distributed_without_torchrun_says_how_to_start(tmp_path, capsys, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for task in ("cls", "seg", "patient"):
        code = cli(["train", task, "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--distributed"])
        assert code == 2 and "torchrun --standalone --nproc-per-node N" in capsys.readouterr().err, task
