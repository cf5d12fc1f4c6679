"""Re-scoring in the Slicer module (issue 19), on slicer-core without Qt: the module logic with a re-scoring model
chosen (a weights file or a catalogue id) re-scores the pending nodes after each accept/reject, the candidate table
shows the re-scored probability and how far it moved, the status line says which moved, a decided node never
changes, the operating point (threshold and FP per patient) thresholds the re-scored probabilities, switching off
or choosing no model restores the originals, and a model without the review-state input is refused with the
review left usable. The saved review, its report and the export say what was re-scored and from which decisions.

Real CT grid with a non-identity direction (scene_fixtures); an untrained tiny review-state network: what is tested
is the wiring every face relies on, against the library's own rescore() values."""

from __future__ import annotations

import contextlib
import json
import sys
import types
from pathlib import Path

import pytest
import torch

slicer = pytest.importorskip("slicer")

from export_roundtrip import sitk_ct  # noqa: E402
from scene_fixtures import PROBABILITIES, import_module_logic, make_case, mrml  # noqa: E402,F401  (pytest fixture)
from test_export_review_rule import reviewed  # noqa: E402,F401  (the shared fixture: 19 nodes on a DICOM CT)
from test_install_demo_models import installed  # noqa: E402,F401  (demo models installed into a temporary Resources/)

from LNStagingLib.errors import ModelError  # noqa: E402
from LNStagingLib.inference.rescore import rescore  # noqa: E402
from LNStagingLib.inference.rescore_record import change_text  # noqa: E402
from LNStagingLib.models.checkpoint import save_checkpoint  # noqa: E402
from LNStagingLib.models.stage2 import Stage2Model, stage2_config  # noqa: E402
from LNStagingLib.scene import table, volumes  # noqa: E402



def tiny_checkpoint(path: Path, review_state: bool) -> Path:
    """An untrained tiny GNNp; its graph weights scaled up so that a decision moves the others by more than the
    3 decimals shown (untrained, the moves are below 0.001)."""
    torch.manual_seed(3)
    config = stage2_config("tiny", head="gnnp", use_priors=False, review_state=review_state)
    model = Stage2Model(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith("head.") and name.endswith("weight"):
                parameter.mul_(4.0)
    save_checkpoint(path, model, config)
    return path


@pytest.fixture
def logic_class(monkeypatch, mrml):  # noqa: F811
    """LNStagingLogic as Slicer would load it: the scripted-module base class (application only) stubbed, the
    global scene the fixture's MRML scene."""
    yield import_module_logic(monkeypatch, mrml.scene).LNStagingLogic
    sys.modules.pop("LNStagingModule.logic", None)


class FakeCombo:
    """The QComboBox calls the widget makes (clear, addItem, findData, currentIndex, currentData, blockSignals)."""

    def __init__(self):
        self.items, self.currentIndex, self.signalsBlocked = [], -1, False

    def clear(self):
        self.items, self.currentIndex = [], -1

    def addItem(self, text, data):
        self.items.append((text, data))
        self.currentIndex = 0 if self.currentIndex < 0 else self.currentIndex

    def findData(self, data):
        return next((i for i, (_, d) in enumerate(self.items) if d == data), -1)

    @property
    def currentData(self):
        return self.items[self.currentIndex][1] if self.currentIndex >= 0 else None

    def blockSignals(self, block):
        self.signalsBlocked = block


@pytest.fixture
def widget(logic_class, monkeypatch):
    """LNStagingWidget's re-scoring slots on fake Qt controls (Qt itself is application only): the wiring between the
    controls, the logic and the status bar, without building the panel."""
    qt = types.ModuleType("qt")
    qt.QFileInfo = lambda path: types.SimpleNamespace(fileName=lambda: Path(path).name,
                                                      absolutePath=lambda: str(Path(path).parent))
    qt.QSettings = lambda: types.SimpleNamespace(value=lambda key: None, setValue=lambda key, value: None)
    qt.Qt = types.SimpleNamespace(WindowModal=1)
    monkeypatch.setitem(sys.modules, "qt", qt)
    dialogs = []  # the CNN pass runs under a progress dialog (Qt: application only, faked here)

    def progress_dialog(**kwargs):
        dialogs.append(types.SimpleNamespace(wasCanceled=False, value=0, close=lambda: None, **kwargs))
        return dialogs[-1]

    monkeypatch.setattr(slicer.util, "createProgressDialog", progress_dialog)
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(processEvents=lambda: None), raising=False)
    base = sys.modules["slicer.ScriptedLoadableModule"]
    base.ScriptedLoadableModuleWidget = type("ScriptedLoadableModuleWidget", (), {})
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper, wrapper.WithinRange = (lambda cls: cls), (lambda low, high: (low, high))
    monkeypatch.setitem(sys.modules, "slicer.parameterNodeWrapper", wrapper)
    shown, errors = [], []
    monkeypatch.setattr(slicer.util, "showStatusMessage", lambda text, duration=0: shown.append(text))
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, **kwargs: errors.append(text))
    monkeypatch.setattr(slicer.util, "WaitCursor", contextlib.nullcontext)
    for name in ("LNStagingModule.widget", "LNStagingModule.parameters"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    from LNStagingModule.widget import LNStagingWidget

    w = LNStagingWidget.__new__(LNStagingWidget)  # no Qt timer, no .ui: only what the re-scoring slots touch
    w.logic = logic_class()
    w.ui = types.SimpleNamespace(rescoreModelComboBox=FakeCombo(), rescoreStatusLabel=types.SimpleNamespace(text=""),
                                 rescoreCheckBox=types.SimpleNamespace(checked=True))
    w.statusMessages, w.errorMessages, w.progressDialogs = shown, errors, dialogs
    yield w
    for name in ("LNStagingModule.widget", "LNStagingModule.parameters"):
        sys.modules.pop(name, None)


@pytest.fixture
def run(tmp_path, mrml):  # noqa: F811
    """A run's results folder (4 candidates, validation FROC in provenance) and the CT/PET nodes in the scene."""
    ct, pet, results = make_case()
    results.provenance["froc"] = [[0.5, 0.8], [1.0, 0.6], [2.0, 0.4], [4.0, 0.2], [8.0, 0.05]]
    results.write(tmp_path / "run")
    return tmp_path / "run", volumes.add_volume(mrml.scene, ct, "CT"), volumes.add_volume(mrml.scene, pet, "PET")


def shown(review) -> dict:
    return dict(zip(table.column_values(review.table, "id"), table.column_values(review.table, "probability")))


def changes(review) -> dict:
    return dict(zip(table.column_values(review.table, "id"), table.column_values(review.table, "rescored_change")))


def test_decisions_rescore_in_the_module_and_switching_off_restores(logic_class, run, tmp_path):
    folder, ct_node, pet_node = run
    logic = logic_class()
    logic.setRescoreModel(str(tiny_checkpoint(tmp_path / "review_model.pt", True)))  # before any review: kept
    review = logic.loadResults(folder, ct_node, pet_node)
    assert review.rescorer is not None and shown(review) == pytest.approx(PROBABILITIES, abs=1e-9)
    assert "accept or reject a node" in logic.rescoringStatus()

    review.accept(1)  # what the widget's Accept does
    expected = rescore(review.results, {1: "accepted"}, review.rescorer.graph).probabilities
    assert shown(review) == pytest.approx(expected, abs=1e-9) and shown(review)[1] == PROBABILITIES[1]
    moved = {k: expected[k] - PROBABILITIES[k] for k in (2, 3, 4)}
    assert max(abs(v) for v in moved.values()) > 2e-3
    assert changes(review)[1] == "" and all(changes(review)[k] == change_text(moved[k]) for k in moved)
    assert any(changes(review)[k].startswith(("+", "-")) for k in moved)
    assert (change_text(0.1204), change_text(-0.0451), change_text(-0.0004)) == ("+0.120", "-0.045", "0.000")
    status = logic.rescoringStatus()
    biggest = max(moved, key=lambda k: abs(moved[k]))
    assert status.startswith("Re-scored 3 pending nodes from 1 decision in ")
    assert f"GTVn_{biggest:02d} {change_text(moved[biggest])}" in status
    assert review.rescorer.seconds < 0.5

    review.reject(3)
    after = shown(review)
    assert after[1] == PROBABILITIES[1] and after[3] == PROBABILITIES[3]  # decided nodes never change
    assert after == pytest.approx(rescore(review.results, {1: "accepted", 3: "rejected"},
                                          review.rescorer.graph).probabilities, abs=1e-9)

    logic.setRescoring(False)
    assert shown(review) == pytest.approx(PROBABILITIES, abs=0) and set(changes(review).values()) == {""}
    assert "off" in logic.rescoringStatus()
    logic.setRescoring(True)
    assert shown(review) == pytest.approx(after, abs=1e-9)
    logic.setRescoreModel("")  # no model: the originals, and the record says re-scoring is off
    assert review.rescorer is None and shown(review) == pytest.approx(PROBABILITIES, abs=0)
    assert review.results.provenance["rescore"]["enabled"] is False


def test_the_operating_point_thresholds_the_rescored_probabilities(logic_class, run, tmp_path):
    folder, ct_node, pet_node = run
    logic = logic_class()
    logic.setRescoreModel(str(tiny_checkpoint(tmp_path / "review_model.pt", True)))
    review = logic.loadResults(folder, ct_node, pet_node)
    review.accept(1)
    rescored = shown(review)
    k = max((2, 3, 4), key=lambda i: abs(rescored[i] - PROBABILITIES[i]))  # the node that moved most
    between = (rescored[k] + PROBABILITIES[k]) / 2  # a threshold only the re-scored value is on one side of
    for how in ("threshold", "fp_per_patient"):
        if how == "threshold":
            review.set_operating_point(threshold=between)
        else:  # an FP-per-patient point whose FROC threshold is that same value
            review.froc = [(0.0, between + 0.1), (2.0, between - 0.1)]
            assert review.set_operating_point(fp_per_patient=1.0) == pytest.approx(between)
        visible = review.visible_ids()
        assert visible == {1} | {i for i in (2, 3, 4) if rescored[i] >= between}
        assert (k in visible) == (rescored[k] >= between) != (PROBABILITIES[k] >= between)


def test_a_model_without_the_review_state_is_refused_and_the_review_stays(logic_class, run, tmp_path):
    folder, ct_node, pet_node = run
    logic = logic_class()
    review = logic.loadResults(folder, ct_node, pet_node)
    plain = tiny_checkpoint(tmp_path / "plain.pt", False)
    with pytest.raises(ModelError, match="trained without the review state"):
        logic.setRescoreModel(str(plain))
    assert logic.rescoreModel == "" and review.rescorer is None
    review.accept(1)
    assert shown(review) == pytest.approx(PROBABILITIES, abs=0)
    with pytest.raises(ModelError, match="neither a model file nor a cls model of the catalogue"):
        logic.setRescoreModel(str(tmp_path / "missing.pt"))
    logic.rescoreModel = str(plain)  # a refused model remembered from an earlier session: the load still works
    review = logic.loadResults(folder, ct_node, pet_node)
    assert review.rescorer is None and logic.rescoringStatus().startswith("Re-scoring is off for this review:")


def test_the_saved_review_report_and_export_say_what_was_rescored(logic_class, run, tmp_path, data_dir):
    from LNStagingLib.report import write_reviewed_report

    folder, ct_node, pet_node = run
    logic = logic_class()
    logic.setRescoreModel(str(tiny_checkpoint(tmp_path / "review_model.pt", True)))
    review = logic.loadResults(folder, ct_node, pet_node)
    review.accept(1)
    review.reject(4)
    rescored = shown(review)
    saved = logic.saveReview(folder / "review")
    record = json.loads((saved / "provenance.json").read_text())["rescore"]
    assert record["enabled"] and record["decisions"] == {"1": "accepted", "4": "rejected"}
    assert record["model"] == "review_model.pt" and len(record["model_sha256"]) == 64
    assert {int(k): v for k, v in record["probabilities"].items()} == pytest.approx(rescored, abs=1e-6)
    assert set(record["moved"]) == {"2", "3"}
    saved_candidates = json.loads((saved / "candidates.json").read_text())["candidates"]
    originals = {c["id"]: c["scores"]["stage2"] for c in saved_candidates}
    assert originals == PROBABILITIES

    # Restored with the same model: the same re-scored probabilities; restored without one: the originals.
    review = logic.loadResults(saved, ct_node, pet_node)
    assert review.rescorer is not None and shown(review) == pytest.approx(rescored, abs=1e-6)
    logic.rescoreModel = ""
    review = logic.loadResults(saved, ct_node, pet_node)
    assert shown(review) == pytest.approx(PROBABILITIES, abs=0)

    # The reviewed report, regenerated from the saved review folder, says so too.
    page = write_reviewed_report(folder, volumes.image_from_volume(ct_node)).read_text()
    assert "re-scored by review_model.pt from 2 review decisions (candidates 1, 4)" in page


def test_the_export_says_which_probabilities_were_rescored(reviewed, tmp_path):  # noqa: F811
    """RTSTRUCT on the real IBSI STS_001 DICOM CT (19 nodes, 2 accepted, 2 rejected): re-scored with an untrained
    CT-only review-state model, pending nodes included; the ROI descriptions and export.json say what was re-scored."""
    import copy

    import pydicom

    from LNStagingLib.export.exporter import export_review
    from LNStagingLib.inference.rescore import rescorer_from_checkpoint

    results = copy.deepcopy(reviewed["results"])
    ct, _ = sitk_ct(reviewed["ct_folder"])
    torch.manual_seed(3)
    config = stage2_config("tiny", head="gnnp", use_priors=False, use_pet=False, review_state=True)
    save_checkpoint(tmp_path / "ct_review_model.pt", Stage2Model(config), config)
    rescorer_from_checkpoint(tmp_path / "ct_review_model.pt", results, ct).apply(results)
    moved = results.provenance["rescore"]["moved"]
    assert len(moved) == 15 and results.provenance["rescore"]["decisions"] == {"2": "rejected", "4": "accepted",
                                                                                "11": "accepted", "17": "rejected"}
    summary, record = export_review(results, reviewed["ct_folder"], tmp_path / "RS.dcm", tmp_path / "review",
                                    include_pending=True)
    descriptions = {r.ROIName: r.ROIDescription for r in pydicom.dcmread(tmp_path / "RS.dcm").StructureSetROISequence}
    assert len(descriptions) == 17  # 2 accepted + 15 pending
    for c in results.candidates:
        if c.review == "pending":
            assert descriptions[c.name] == (f"Lymph node candidate {c.id}, p(metastasis) {c.probability:.3f} "
                                            "re-scored, pending")
        elif c.review == "accepted":
            assert descriptions[c.name] == f"Lymph node candidate {c.id}, p(metastasis) {c.probability:.3f}, accepted"
    line = "Probabilities of 15 pending candidates were re-scored by ct_review_model.pt from 4 review decisions " \
           "(candidates 2, 4, 11, 17)."
    assert line in summary.notes and record.summary.endswith(line)
    assert json.loads((tmp_path / "review" / "export.json").read_text())["summary"] == record.summary


def test_the_module_lists_and_uses_the_installed_demo_rescoring_model(logic_class, run, installed):  # noqa: F811
    """After scripts/install_demo_models.py (tiny checkpoints into a temporary Resources/): the model list offers
    demo-cls-rescore (not demo-cls, trained without the review state) and choosing it re-scores with its verified
    file."""
    resources, entries = installed
    folder, ct_node, pet_node = run
    logic = logic_class()
    assert logic.rescoreModelIds() == ["demo-cls-rescore"]
    review = logic.loadResults(folder, ct_node, pet_node)
    logic.setRescoreModel("demo-cls-rescore")
    assert review.rescorer.model_name == "demo-cls-rescore"
    assert review.rescorer.model_sha256 == entries["demo-cls-rescore"]["sha256"]
    review.accept(2)
    assert review.results.provenance["rescore"]["model"] == "demo-cls-rescore"
    assert shown(review) == pytest.approx(rescore(review.results, {2: "accepted"}, review.rescorer.graph).probabilities,
                                          abs=1e-9)
    with pytest.raises(ModelError, match="trained without the review state"):
        logic.setRescoreModel("demo-cls")


def test_the_widget_slots_wire_the_controls_to_the_logic(widget, run, tmp_path):
    folder, ct_node, pet_node = run
    review = widget.logic.loadResults(folder, ct_node, pet_node)
    widget._fillRescoreModels()
    combo = widget.ui.rescoreModelComboBox
    assert combo.items[0] == ("None (original probabilities)", "") and combo.currentData == ""
    assert not combo.signalsBlocked  # unblocked again after filling

    model = str(tiny_checkpoint(tmp_path / "review_model.pt", True))
    widget._setRescoreModel(model)  # what File... does after the dialog
    assert len(widget.progressDialogs) == 1 and widget.progressDialogs[0].labelText.startswith("re-scoring")
    assert review.rescorer is not None and combo.items[-1] == ("review_model.pt", model) and combo.currentData == model
    assert "accept or reject a node" in widget.ui.rescoreStatusLabel.text == widget.statusMessages[-1]
    review.accept(1)
    widget._showRescoringStatus()  # as _decide does after each decision
    assert widget.ui.rescoreStatusLabel.text.startswith("Re-scored 3 pending nodes from 1 decision")
    widget.onRescoring(False)
    assert shown(review) == pytest.approx(PROBABILITIES, abs=0) and "off" in widget.statusMessages[-1]
    widget.onRescoring(True)

    widget._setRescoreModel(str(tiny_checkpoint(tmp_path / "plain.pt", False)))  # refused: one dialog, back to None
    assert len(widget.errorMessages) == 1 and "trained without the review state" in widget.errorMessages[0]
    assert widget.logic.rescoreModel == "" and combo.currentData == "" and review.rescorer is None
    assert shown(review) == pytest.approx(PROBABILITIES, abs=0)
