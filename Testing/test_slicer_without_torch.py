"""A fresh Slicer has no torch, MONAI or torch-geometric until the user presses Apply and accepts the install:
the panel (module file, widget, logic) and the model list must work without them. Checked in a child process in
which importing those packages raises ImportError, as it would in Slicer before the install."""

from slicer_child import ROOT, run_module_child

# Not shipped with Slicer (it ships numpy, scipy, SimpleITK, vtk, pydicom): installed on first use.
BLOCKED = ("torch", "torchvision", "monai", "torch_geometric", "pylibjpeg", "openjpeg", "tqdm")

BODY = r'''
import LNStaging
from LNStagingModule import gpu, widget  # noqa: F401
from LNStagingLib.scene import review, review_state, rt_export  # noqa: F401

logic = LNStaging.LNStagingLogic()
ids = logic.modelIds()
assert ids, "no model listed"
missing = logic.missingDependencies()
assert any(m.startswith("torch") for m in missing), missing
assert logic.cudaAvailable() is False
description = logic.gpuDescription()
assert description.startswith("GPU:"), description
catalogue = logic.catalogue()
first = catalogue.entries[ids[0]]
assert catalogue.resolve(first.id).is_file()  # sha256 verified without torch
marked = sorted(e.id for e in catalogue.for_task("cls") if "review decisions" in e.inputs)
assert logic.rescoreModelIds() == marked, (logic.rescoreModelIds(), marked)  # the catalogue's word, torch not loaded
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not loaded, loaded
print("MODELS", ",".join(ids))
print("GPU", description)
'''


def run_blocked(tmp_path, blocked=BLOCKED):
    return run_module_child(tmp_path, BODY, blocked, name="no_torch.py")


def test_panel_and_logic_import_and_list_models_without_torch_monai_pyg(tmp_path):
    done = run_blocked(tmp_path)
    assert done.returncode == 0, done.stdout[-1000:] + done.stderr[-3000:]
    models = next(line for line in done.stdout.splitlines() if line.startswith("MODELS ")).split(" ", 1)[1]
    assert "demo-cls" in models.split(",")


def test_the_blocker_catches_a_module_level_torch_import(tmp_path):
    """The check can fail: a module that imports torch at module level (as checkpoint.py did) breaks the script."""
    bad = tmp_path / "pkg"
    bad.mkdir()
    (bad / "eager_torch.py").write_text("import torch\n")
    done = run_module_child(tmp_path, BODY.replace("import LNStaging\n", "import LNStaging\nimport eager_torch\n"),
                            BLOCKED, name="bad.py", env={"PYTHONPATH": f"{bad}:{ROOT}", "PATH": "/usr/bin:/bin"})
    assert done.returncode != 0
    assert "blocked: not installed in a fresh Slicer" in done.stderr
