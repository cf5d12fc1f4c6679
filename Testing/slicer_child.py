"""The Slicer module imported in a child Python process, outside Slicer: what the Slicer application provides and
slicer-core does not (Qt, the scripted-module base classes, the parameter node wrapper) is stubbed, and the packages
named in ``blocked`` raise ImportError on import, as in a fresh Slicer before the dependency install. Shared by the
module-import test (test_scene_module.py) and the no-torch test (test_slicer_without_torch.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "LNStaging"

# Run first in the child; argv[1] is the module folder, argv[2] the comma-separated blocked top-level packages.
PRELUDE = r'''
import sys, types, importlib.abc

BLOCKED = set(filter(None, sys.argv[2].split(",")))


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"No module named {name!r} (blocked: not installed in a fresh Slicer)")
        return None


sys.meta_path.insert(0, Blocker())
if "torch" in BLOCKED:
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
'''


def run_module_child(tmp_path: Path, body: str, blocked=(), name: str = "child.py", timeout: float = 180,
                     env: dict | None = None) -> subprocess.CompletedProcess:
    """Run PRELUDE + ``body`` (Python source) in a fresh interpreter in ``tmp_path``; its output as text."""
    script = tmp_path / name
    script.write_text(PRELUDE + body)
    return subprocess.run([sys.executable, str(script), str(MODULE), ",".join(blocked)], capture_output=True,
                          text=True, timeout=timeout, cwd=tmp_path, env=env)
