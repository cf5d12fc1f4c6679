"""Issue 27, points 7-9: a broken PyTorch (an OSError while loading its libraries) never stops the panel or a Load;
developer-mode Reload forgets the library's modules so they are read again; the analysis child gets no console
window on Windows (what slicer.util.launchConsoleProcess does)."""

from __future__ import annotations

import importlib.abc
import subprocess
import sys
import types
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer")

from scene_fixtures import make_case, mrml  # noqa: E402,F401  (pytest fixture)
from test_slicer_flows import module  # noqa: E402,F401  (pytest fixture)

from LNStagingLib.scene import volumes  # noqa: E402

MODULE = Path(__file__).resolve().parents[1] / "LNStaging"
BROKEN = "libtorch_cuda.so: cannot open shared object file"


class BrokenTorch(importlib.abc.MetaPathFinder):
    """`import torch` fails as a CUDA build without its driver libraries does: OSError, not ImportError."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise OSError(BROKEN)
        return None


@pytest.fixture
def broken_torch(monkeypatch):
    for name in [n for n in sys.modules if n.split(".")[0] == "torch"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [BrokenTorch(), *sys.meta_path])
    with pytest.raises(OSError):
        import torch  # noqa: F401


def test_gpu_line_and_missing_packages_survive_a_broken_torch(broken_torch, module, monkeypatch):  # noqa: F811
    from LNStagingModule import gpu

    monkeypatch.setattr(gpu, "torch_installed", lambda: True)  # find_spec says it is there; importing it fails
    assert gpu.torch_devices() is None
    assert gpu.torch_cuda_available() is False
    assert gpu.describe(smi_view=[]).startswith("GPU: none found")
    assert "torch (PyTorch extension)" in module.logic.LNStagingLogic.missingDependencies()


def test_a_saved_rescoring_choice_does_not_break_load_when_torch_is_broken(broken_torch, module, mrml, tmp_path):  # noqa: F811
    ct, pet, results = make_case()
    results.write(tmp_path / "run")
    ct_node, pet_node = volumes.add_volume(mrml.scene, ct, "CT"), volumes.add_volume(mrml.scene, pet, "PET")
    weights = tmp_path / "rescore.pt"
    weights.write_bytes(b"not read: torch fails first")
    logic = module.logic.LNStagingLogic()
    logic.rescoreModel = str(weights)  # the choice kept in the settings from an earlier session
    review = logic.loadResults(tmp_path / "run", ct_node, pet_node)
    assert review.rescorer is None and logic.reviewAvailable
    assert logic.rescoringStatus().startswith("Re-scoring is off for this review: PyTorch cannot be loaded")
    assert BROKEN in logic.rescoringStatus()


def test_rescore_module_imports_without_torch(broken_torch, monkeypatch):
    monkeypatch.delitem(sys.modules, "LNStagingLib.inference.rescore", raising=False)  # restored afterwards
    import importlib

    from LNStagingLib.errors import ModelError

    rescore = importlib.import_module("LNStagingLib.inference.rescore")
    with pytest.raises(ModelError, match="PyTorch cannot be loaded"):
        rescore.state_codes()


def test_reload_forgets_the_library_and_module_packages(monkeypatch):
    monkeypatch.syspath_prepend(str(MODULE))
    from LNStagingModule import reload

    modules = {"LNStagingLib": 1, "LNStagingLib.scene.review": 2, "LNStagingModule.logic": 3, "LNStaging": 4,
               "LNStagingLibrary": 5, "numpy": 6}
    assert reload.forget_library_modules(modules) == ["LNStagingLib", "LNStagingLib.scene.review",
                                                      "LNStagingModule.logic"]
    assert modules == {"LNStaging": 4, "LNStagingLibrary": 5, "numpy": 6}


def test_windows_child_gets_a_hidden_window_like_launchConsoleProcess(monkeypatch):
    """STARTUPINFO with STARTF_USESHOWWINDOW and SW_HIDE (0), as slicer.util.launchConsoleProcess sets at v5.10.0
    and v5.12.3 (dwFlags = 1, wShowWindow = 0); the constants exist only on Windows, so they are given here."""
    monkeypatch.syspath_prepend(str(MODULE))
    from LNStagingModule import process

    monkeypatch.setattr(subprocess, "STARTUPINFO", lambda: types.SimpleNamespace(dwFlags=0, wShowWindow=5),
                        raising=False)
    monkeypatch.setattr(subprocess, "STARTF_USESHOWWINDOW", 1, raising=False)
    info = process.hidden_window_startupinfo()
    assert info.dwFlags == 1 and info.wShowWindow == 0
