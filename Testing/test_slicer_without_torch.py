"""A fresh Slicer has no torch, MONAI or torch-geometric until the user presses Apply and accepts the install:
the panel (module file, widget, logic) and the model list must work without them. Checked in a child process in
which importing those packages raises ImportError, as it would in Slicer before the install."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "LNStaging"

# Not shipped with Slicer (it ships numpy, scipy, SimpleITK, vtk, pydicom): installed on first use.
BLOCKED = ("torch", "torchvision", "monai", "torch_geometric", "pylibjpeg", "openjpeg", "tqdm")

SCRIPT = r'''
import sys, types, importlib.abc

BLOCKED = set(sys.argv[2].split(","))


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"No module named {name!r} (blocked: not installed in a fresh Slicer)")
        return None


sys.meta_path.insert(0, Blocker())
try:
    import torch  # noqa: F401
    raise SystemExit("the blocker does not work")
except ImportError:
    pass

# What the Slicer application provides and slicer-core does not: Qt and the scripted-module base classes.
qt = types.ModuleType("qt")
class _Q:
    def __init__(self, *a, **k): pass
    def __getattr__(self, name): return lambda *a, **k: None
for name in ("QTimer", "QShortcut", "QKeySequence", "QFileDialog", "QDir", "QSettings", "QFileInfo"):
    setattr(qt, name, _Q)
sys.modules["qt"] = qt
import slicer
slm = types.ModuleType("slicer.ScriptedLoadableModule")
for name in ("ScriptedLoadableModule", "ScriptedLoadableModuleWidget", "ScriptedLoadableModuleLogic",
             "ScriptedLoadableModuleTest"):
    setattr(slm, name, type(name, (), {"__init__": lambda self, *a, **k: None}))
sys.modules["slicer.ScriptedLoadableModule"] = slm
pnw = types.ModuleType("slicer.parameterNodeWrapper")
pnw.parameterNodeWrapper = lambda cls: cls
pnw.WithinRange = lambda lo, hi: (lo, hi)
sys.modules["slicer.parameterNodeWrapper"] = pnw
slicer.util.VTKObservationMixin = type("VTKObservationMixin", (), {"__init__": lambda self: None})

sys.path.insert(0, sys.argv[1])
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
    script = tmp_path / "no_torch.py"
    script.write_text(SCRIPT)
    return subprocess.run([sys.executable, str(script), str(MODULE), ",".join(blocked)], capture_output=True,
                          text=True, timeout=180, cwd=tmp_path)


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
    script = tmp_path / "bad.py"
    script.write_text(SCRIPT.replace("import LNStaging\n", "import LNStaging\nimport eager_torch\n"))
    done = subprocess.run([sys.executable, str(script), str(MODULE), ",".join(BLOCKED)], capture_output=True,
                          text=True, timeout=180, cwd=tmp_path, env={"PYTHONPATH": f"{bad}:{ROOT}",
                                                                     "PATH": "/usr/bin:/bin"})
    assert done.returncode != 0
    assert "blocked: not installed in a fresh Slicer" in done.stderr
