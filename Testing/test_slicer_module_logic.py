"""Pieces of the Slicer module that run outside the Qt application: GPU detection, the install path (constraints
file; pip_ensure on Slicer 5.12, pip_install before), the operating point shown after a restore, and Apply/Load
replacing the previous review's nodes instead of adding a second GTV_LN."""

import sys
import types
from pathlib import Path

import pytest

from scene_fixtures import case, mrml, review  # noqa: F401  (pytest fixtures)

MODULE = Path(__file__).resolve().parents[1] / "LNStaging"
sys.path.insert(0, str(MODULE))

from LNStagingModule import dependencies, gpu  # noqa: E402

slicer = pytest.importorskip("slicer")


def test_nvidia_smi_parsing_and_descriptions():
    assert gpu.parse_nvidia_smi("NVIDIA RTX A4000, 16376\nTesla T4, 15360\n") == [("NVIDIA RTX A4000", 16376),
                                                                                ("Tesla T4", 15360)]
    assert gpu.parse_nvidia_smi("NVIDIA-SMI has failed because it couldn't communicate with the driver") == []
    assert gpu.describe(torch_view=[("NVIDIA RTX A4000", 16376)], smi_view=[]) == "GPU: NVIDIA RTX A4000, 16.0 GB"
    assert "PyTorch not installed yet" in gpu.describe(torch_view=None, smi_view=[("Tesla T4", 15360)])
    assert "CPU-only build" in gpu.describe(torch_view=[], smi_view=[("Tesla T4", 15360)])
    assert gpu.describe(torch_view=None, smi_view=[]) == "GPU: none found (no CUDA device): the analysis runs on the CPU"


def test_constraints_pin_slicers_own_packages(tmp_path):
    text = dependencies.constraints_text()
    pinned = dict(line.split("==") for line in text.split())
    from importlib.metadata import version

    assert pinned["numpy"] == version("numpy")
    assert pinned["scipy"] == version("scipy")
    assert "pydicom" in dependencies.PROTECTED
    assert dependencies.write_constraints(tmp_path).read_text() == text
    assert not any(dependencies.requirement_name(r) == "pydicom" for r in dependencies.read_requirements())


@pytest.fixture
def fake_slicer_install(monkeypatch):
    """slicer.util.pip_install and (optionally) slicer.packaging.pip_ensure replaced by recorders."""
    calls = []
    monkeypatch.setattr(slicer.util, "pip_install", lambda args: calls.append(("pip_install", args)), raising=False)
    return calls


def test_install_uses_pip_ensure_with_constraints_on_slicer_5_12(monkeypatch, fake_slicer_install):
    packaging = types.ModuleType("slicer.packaging")
    packaging.pip_ensure = lambda requirements, **kwargs: fake_slicer_install.append(("pip_ensure", requirements, kwargs))
    monkeypatch.setitem(sys.modules, "slicer.packaging", packaging)
    monkeypatch.setattr(slicer, "packaging", packaging, raising=False)
    restart = dependencies.install(["monai>=1.3"])
    assert restart is False  # pip_ensure offers the restart itself
    (kind, requirements, kwargs), = fake_slicer_install
    assert kind == "pip_ensure" and requirements == ["monai>=1.3"]
    assert kwargs["prompt_install"] is False and kwargs["prompt_restart"] is True
    assert "numpy==" in Path(kwargs["constraints"]).read_text()


def test_install_falls_back_to_pip_install_with_constraints_on_slicer_5_10(monkeypatch, fake_slicer_install):
    monkeypatch.setitem(sys.modules, "slicer.packaging", None)  # import slicer.packaging -> ImportError
    monkeypatch.delattr(slicer, "packaging", raising=False)
    restart = dependencies.install(["monai>=1.3"])
    assert restart is True  # the widget then offers a restart
    (kind, args), = fake_slicer_install
    assert kind == "pip_install" and args[0] == "-c" and args[2:] == ["monai>=1.3"]
    assert "numpy==" in Path(args[1]).read_text()
    with pytest.raises(ValueError, match="refusing"):
        dependencies.install(["numpy>=3"])


def test_operating_point_is_what_the_widget_shows(review):
    review.set_operating_point(threshold=0.37)
    assert review.operating_point() == {"mode": "threshold", "threshold": 0.37, "fp_per_patient": None}
    threshold = review.set_operating_point(fp_per_patient=1.5)
    controls = review.operating_point()
    assert controls["mode"] == "fp_per_patient" and controls["fp_per_patient"] == 1.5
    assert controls["threshold"] == pytest.approx(threshold)


def test_restore_keeps_the_saved_operating_point(review, mrml, tmp_path):
    from LNStagingLib.scene import review_state

    review.set_operating_point(threshold=0.37)
    saved = review_state.save_review(review, tmp_path / "review")
    restored = review_state.restore_review(mrml.scene, saved, review.ct, review.pet)
    assert restored.threshold == pytest.approx(0.37)
    assert restored.operating_point()["threshold"] == pytest.approx(0.37)
    review.set_operating_point(fp_per_patient=1.5)
    saved = review_state.save_review(review, tmp_path / "review2")
    restored = review_state.restore_review(mrml.scene, saved, review.ct, review.pet)
    assert restored.operating_point()["mode"] == "fp_per_patient"
    assert restored.operating_point()["fp_per_patient"] == pytest.approx(1.5)
    assert restored.threshold == pytest.approx(review.threshold)


def test_a_second_load_replaces_the_review_nodes(review, mrml, tmp_path):
    from LNStagingLib.scene import review_state
    from LNStagingLib.scene.review import ROLE_ATTRIBUTE, ReviewScene, remove_review_nodes

    def count(cls):
        return mrml.scene.GetNumberOfNodesByClass(cls)

    before = {cls: count(cls) for cls in ("vtkMRMLSegmentationNode", "vtkMRMLTableNode",
                                          "vtkMRMLMarkupsFiducialNode", "vtkMRMLScalarVolumeNode")}
    assert review.segmentation.GetAttribute(ROLE_ATTRIBUTE) == "segmentation"
    assert review.ct.GetAttribute(ROLE_ATTRIBUTE) is None  # the user's CT is never removed
    saved = review_state.save_review(review, tmp_path / "review")
    for _ in range(2):
        assert remove_review_nodes(mrml.scene) == 4  # attention, GTV_LN, table, markups
        review = review_state.restore_review(mrml.scene, saved, review.ct, review.pet)
    assert remove_review_nodes(mrml.scene) == 4
    ReviewScene.show(mrml.scene, review.results, review.ct, review.pet)
    assert {cls: count(cls) for cls in before} == before


def test_report_action_writes_the_reviewed_report_from_the_scene(review, case, tmp_path):
    """Slicer's "Report..." (logic.writeReport -> scene.review_state.write_review_report): the review in the scene
    is saved into RESULTS/review/ and report.html is written there by report.write_reviewed_report, the function
    the browser review and `lnstaging report` call; the same saved review gives the same report through the CLI's
    path (images from the scene's volumes equal the files')."""
    import re

    from LNStagingLib import NOT_FOR_CLINICAL_USE
    from LNStagingLib.report import write_reviewed_report
    from LNStagingLib.scene import review_state

    ct, pet, results = case
    run = tmp_path / "case007"
    results.write(run)  # the run as the pipeline left it: every node pending
    review.reviewer = "Dr Slicer"
    review.accept(4)
    review.reject(2)
    path = review_state.write_review_report(review, run)
    assert path == run / "review" / "report.html"
    text = path.read_text()
    assert NOT_FOR_CLINICAL_USE in text and "Case case007" in text
    assert "1 accepted" in text and "1 rejected" in text and "2 pending" in text
    assert "Reviewer: Dr Slicer" in text and "When (UTC)" in text
    assert review_state.read_decisions(run / "review")["decisions"]["4"] == "accepted"  # saved first
    same = write_reviewed_report(run, ct, pet, out=tmp_path / "cli.html")

    def stable(html):  # the report's own time of writing aside
        return re.sub(r"report \d{4}-\d\d-\d\d \d\d:\d\d", "", html)

    assert stable(same.read_text()) == stable(text)
    # given the review folder itself, the report still goes beside the run's files
    assert review_state.write_review_report(review, run / "review") == path


def test_module_has_a_report_action_calling_the_logic():
    ui = (MODULE / "Resources" / "UI" / "LNStaging.ui").read_text()
    widget = (MODULE / "LNStagingModule" / "widget.py").read_text()
    logic = (MODULE / "LNStagingModule" / "logic.py").read_text()
    assert 'name="reportButton"' in ui
    assert 'reportButton.connect("clicked(bool)", self.onReport)' in widget and "self.logic.writeReport(" in widget
    assert "review_state.write_review_report(self.review, resultsFolder, progress=progress)" in logic
