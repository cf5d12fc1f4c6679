"""Issue 26, the PET-only case in the Slicer module: a PET loaded alone, CT None, Apply runs `lnstaging run` without
--ct, and the review is shown on the PET through LNStagingLogic on slicer-core: the PET as the background, what ran
in the module's status, the slider in SUVpeak, RTSTRUCT export and re-scoring refused in one line, the report, a
saved review reloaded, a CT or another PET refused.

Real data: the QIN head-and-neck PET (SUV crop), its axes permuted and one flipped so its direction is not the
identity, and placed under a translation (a registered PET: the results must follow its transform). The child is
the real `python -m LNStagingLib.cli run` where PyTorch is installed (`make test`); in the small Slicer venvs (no
PyTorch, no pydicom: make test-slicer-stable / test-slicer-510) a stand-in child writes a PET-only results folder
made from the library's own PET detector on the same PET, in the form a run writes it."""

from __future__ import annotations

import importlib.util
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import vtk

slicer = pytest.importorskip("slicer")

from scene_fixtures import import_module_logic, mrml  # noqa: E402,F401  (pytest fixture)
from test_slicer_flows import module, widget_module  # noqa: E402,F401  (pytest fixtures: the module on fake Qt)

from LNStagingLib.errors import ExportError, LNStagingError  # noqa: E402
from LNStagingLib.io.resample import same_grid  # noqa: E402
from LNStagingLib.report import PET_ONLY_SUV_MAX  # noqa: E402
from LNStagingLib.results import Candidate, PatientResult, Results  # noqa: E402
from LNStagingLib.scene import volumes  # noqa: E402

QIN_PET = "mirp_qin_headneck_0139/derived/pet_suv_headneck_crop.nii.gz"
NO_CT = "no CT given: every model reads the CT"
SHIFT_MM = (12.0, -7.0, 5.0)
CAN_RUN = all(importlib.util.find_spec(name) for name in ("torch", "pydicom"))  # what `lnstaging run` needs


@pytest.fixture
def logic(monkeypatch, mrml):  # noqa: F811
    """LNStagingModule.logic as Slicer loads it (scripted-module base class stubbed, slicer.mrmlScene the fixture's
    scene); the child process is the real `python -m LNStagingLib.cli run`."""
    module = import_module_logic(monkeypatch, mrml.scene)
    made = module.LNStagingLogic()
    yield module, made
    made.cleanup()
    sys.modules.pop("LNStagingModule.logic", None)


def qin_pet_image(data_dir) -> sitk.Image:
    """The real QIN PET with a non-identity direction: axes x<->y permuted and z flipped."""
    pet = sitk.ReadImage(str(data_dir / QIN_PET), sitk.sitkFloat32)
    return sitk.Flip(sitk.PermuteAxes(pet, [1, 0, 2]), [False, False, True])


@pytest.fixture
def pet_node(mrml, data_dir):  # noqa: F811
    """The PET in the scene, alone (no CT), under a translation (registered)."""
    image = qin_pet_image(data_dir)
    assert not np.allclose(np.reshape(image.GetDirection(), (3, 3)), np.eye(3))
    node = volumes.add_volume(mrml.scene, image, "QIN PET")
    transform = mrml.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "registration")
    matrix = vtk.vtkMatrix4x4()
    for axis, shift in enumerate(SHIFT_MM):
        matrix.SetElement(axis, 3, shift)
    transform.SetMatrixTransformToParent(matrix)
    node.SetAndObserveTransformNodeID(transform.GetID())
    return node


def wait_for(logic, run):
    deadline = time.time() + 300
    while not logic.analysisFinished:
        logic.pollAnalysis()
        assert time.time() < deadline, "the run did not finish"
        time.sleep(0.1)
    logic.pollAnalysis()
    assert run.child is not None and run.child.wait() == 0, "\n".join(run.child.output if run.child else [])


def pet_only_results(pet: sitk.Image, folder: Path) -> Path:
    """A PET-only results folder in the form `lnstaging run --pet` writes it (no model applied, each for want of a
    CT; candidates from the library's PET detector on ``pet``, on its grid, ranked by SUVpeak; provenance records a
    PET and no CT), for the venvs where the run itself cannot start."""
    from LNStagingLib.candidates.from_pet import pet_candidates

    detection = pet_candidates(pet)
    found = sitk.GetArrayFromImage(detection.labels)
    labels = np.zeros(found.shape, np.uint16)
    candidates = []
    for cid, lesion in enumerate(sorted(detection.candidates, key=lambda lesion: -lesion.suv_peak), start=1):
        labels[found == lesion.id] = cid
        candidates.append(Candidate(id=cid, centroid_lps=lesion.centroid_lps, volume_ml=lesion.mtv_ml,
                                    suv_max=lesion.suv_max, suv_peak=lesion.suv_peak, source="pet"))
    gtv = sitk.GetImageFromArray(labels)
    gtv.CopyInformation(pet)
    models = {stage: {"id": f"demo-{stage}", "applied": False, "reason": NO_CT + " (run with --ct to apply it)"}
              for stage in ("seg", "cls", "identification", "patient")}
    results = Results(gtv_ln=gtv, candidates=candidates, ranking="suv_peak", models=models,
                      patient=PatientResult(operating_point={"basis": "suv_peak", "threshold": 2.5}),
                      notes=[f"PET candidates from SUV rules ({detection.threshold_rule}): {len(candidates)} lesion(s)"],
                      provenance={"inputs": {"pet": {"path": "pet.nrrd"}}})
    results.rank_candidates()
    results.write(folder)
    return folder


@pytest.mark.skipif(not CAN_RUN, reason="`lnstaging run` (the module's child process) needs PyTorch and pydicom, "
                                        "which the module installs in Slicer; this venv lacks one")
def test_apply_without_a_ct_runs_lnstaging_without_ct_and_reviews_on_the_pet(logic, pet_node, mrml,  # noqa: F811
                                                                             data_dir, tmp_path):
    module, logic = logic
    assert logic.inputsProblem(None, pet_node) == ""  # no CT: a PET-only run, not a refusal
    assert "None for a PET-only run" in logic.inputsProblem(pet_node, pet_node)
    run = logic.startAnalysis(None, pet_node)
    assert "--ct" not in run.argv and run.argv[run.argv.index("--pet") + 1] == str(run.workDir / "pet.nrrd")
    assert logic.notes[0] == module.PET_ONLY_NOTE
    wait_for(logic, run)
    review = logic.finishAnalysis()
    assert not (run.workDir / "pet.nrrd").exists()  # the input copy is removed
    check_review_on_the_pet(module, logic, review, pet_node, mrml, data_dir, tmp_path)


def test_apply_without_a_ct_on_a_stand_in_child_reviews_on_the_pet(logic, pet_node, mrml, data_dir,  # noqa: F811
                                                                   tmp_path, monkeypatch):
    module, logic = logic
    prebuilt = pet_only_results(qin_pet_image(data_dir), tmp_path / "prebuilt")
    seen = {}

    def stand_in(python, out_dir, ct, pet, *args, **kwargs):
        seen["ct"], seen["pet"] = ct, Path(pet)
        copy = "import shutil, sys; shutil.copytree(sys.argv[1], sys.argv[2])"
        return [sys.executable, "-c", copy, str(prebuilt), str(out_dir)]

    monkeypatch.setattr(module.process, "run_argv", stand_in)
    run = logic.startAnalysis(None, pet_node)
    assert seen["ct"] is None and seen["pet"] == run.workDir / "pet.nrrd"
    assert logic.notes[0] == module.PET_ONLY_NOTE
    wait_for(logic, run)
    review = logic.finishAnalysis()
    check_review_on_the_pet(module, logic, review, pet_node, mrml, data_dir, tmp_path)


def check_review_on_the_pet(module, logic, review, pet_node, mrml, data_dir, tmp_path):  # noqa: F811
    assert review.ct is pet_node and review.pet is pet_node and review.pet_only and logic.reviewAvailable

    # the run: every model recorded as not applied (no CT), ranked by SUVpeak, on the PET's own grid
    results = review.results
    assert results.ranking == "suv_peak" and not results.applied_models()
    assert set(results.not_applied_models()) == {"seg", "cls", "identification", "patient"}
    assert same_grid(results.gtv_ln, qin_pet_image(data_dir)) and len(results.candidates) >= 5

    # the PET is the background, inverted grey in SUV; no PET foreground over itself
    display = pet_node.GetDisplayNode()
    assert display.GetColorNodeID() == "vtkMRMLColorTableNodeInvertedGrey"
    assert (display.GetWindowLevelMin(), display.GetWindowLevelMax()) == pytest.approx((0.0, PET_ONLY_SUV_MAX))
    for composite in volumes_composites(mrml.scene):
        assert composite.GetBackgroundVolumeID() == pet_node.GetID() and not composite.GetForegroundVolumeID()

    # the contours are where the run put them: read back through the PET's non-identity grid, nothing changed; and
    # they follow the PET's registration transform
    assert review.read_edits() == {"changed": [], "removed": [], "added": []}
    for node in (review.segmentation, review.markups):
        assert node.GetTransformNodeID() == pet_node.GetTransformNodeID()

    # the module's status says what ran, from Results
    lines = logic.whatRan()
    assert "ranked by SUVpeak" in lines[0] and "PET-only run (no CT)" in lines[0]
    assert lines[0].startswith(f"{len(results.candidates)} candidates")
    models = [line for line in lines if line.startswith("Model ")]
    assert len(models) == 4 and all("not applied" in line and NO_CT in line for line in models)
    assert any(line.startswith("Ran: PET candidates from SUV rules") for line in lines)
    assert not any(word in " ".join(lines) for word in ("p(metastasis)", "FROC", "false positives"))

    # the operating point is an SUVpeak: the slider reaches past every candidate, no FP-per-patient mode
    control = logic.thresholdControl()
    peaks = [c.suv_peak for c in results.candidates]
    assert control["label"] == "SUVpeak threshold:" and control["fpAvailable"] is False
    assert max(peaks) <= control["maximum"] <= module.SUV_THRESHOLD_MAX and control["step"] == 0.1
    review.set_operating_point(threshold=control["maximum"])
    assert len(review.visible_ids()) == sum(p >= control["maximum"] for p in peaks) <= 1  # the end hides the rest
    review.set_operating_point(threshold=2.5)
    assert len(review.visible_ids()) == sum(p >= 2.5 for p in peaks)

    # RTSTRUCT export and re-scoring refused in one line each
    assert logic.exportProblem() == module.PET_ONLY_EXPORT
    with pytest.raises(ExportError) as refused:
        logic.export(tmp_path / "export")
    assert str(refused.value) == module.PET_ONLY_EXPORT and "\n" not in str(refused.value)
    assert not (tmp_path / "export").exists()
    with pytest.raises(LNStagingError, match="this run had no CT"):
        logic.setRescoreModel("demo-cls")
    assert logic.rescoreModel == ""

    # the report: the PET alone (no CT), written from the saved review
    review.set_review(results.candidates[0].id, "accepted")
    report = logic.writeReport()
    assert "PET only, no CT given" in report.read_text()

    # the saved review is shown again on the same PET; a CT, or another PET, is refused in one line
    saved = report.parent
    again = logic.loadResults(saved, None, pet_node)
    assert again.pet_only and again.results.candidate(results.candidates[0].id).review == "accepted"
    other = volumes.add_volume(mrml.scene, qin_pet_image(data_dir)[2:, :, :], "another PET")
    with pytest.raises(LNStagingError, match="set the CT to None"):
        logic.loadResults(saved, other, pet_node)
    with pytest.raises(LNStagingError, match="not on the grid of the PET-only run"):
        logic.loadResults(saved, None, other)
    assert logic.review is again  # a refused load keeps the review on screen


def volumes_composites(scene):
    from LNStagingLib.scene import views

    composites = views.composite_nodes(scene)
    assert composites
    return composites


class FakeQt:
    """A Qt widget as the panel uses it: properties set as attributes, blockSignals, appendPlainText."""

    def __init__(self, **properties):
        self.lines = []
        self.__dict__.update(properties)

    def blockSignals(self, blocked):
        self.blocked = blocked

    def appendPlainText(self, line):
        self.lines.append(line)


def test_the_panel_shows_what_ran_the_suv_slider_and_a_disabled_export(widget_module, module, pet_node, data_dir,
                                                                        tmp_path):
    """The widget's part (fake Qt, the real logic and review): Apply is enabled without a CT, the Review section's
    first line and the log say what ran, the slider is an SUVpeak one without an FP-per-patient mode, and Export is
    disabled with the one-line reason (its tooltip restored on a PET/CT review)."""
    widget, seen = widget_module
    logic = module.logic.LNStagingLogic()
    panel = widget.LNStagingWidget.__new__(widget.LNStagingWidget)
    panel.logic, panel._exportText, panel._exportToolTip = logic, "Export RTSTRUCT...", "RTSTRUCT on the planning CT"
    panel._parameterNode = types.SimpleNamespace(ct=None, pet=pet_node, threshold=0.5, fpPerPatient=2.0)
    panel.ui = types.SimpleNamespace(
        applyButton=FakeQt(enabled=False, toolTip=""), whatRanLabel=FakeQt(text=""), logTextEdit=FakeQt(),
        exportButton=FakeQt(enabled=True, toolTip="", text="Export RTSTRUCT..."), thresholdSliderLabel=FakeQt(text="Probability threshold:"),
        thresholdSlider=FakeQt(decimals=2, singleStep=0.01, maximum=1.0, value=0.5, enabled=True),
        operatingModeComboBox=FakeQt(enabled=True, currentIndex=0), fpSlider=FakeQt(value=2.0, enabled=False))
    panel.updateApplyButton()
    assert panel.ui.applyButton.enabled and "PET alone" in panel.ui.applyButton.toolTip
    review = logic.loadResults(pet_only_results(qin_pet_image(data_dir), tmp_path / "run"), None, pet_node)
    panel._showWhatRan()
    panel._showOperatingPoint(review)
    assert panel.ui.whatRanLabel.text.splitlines() == logic.whatRan() == panel.ui.logTextEdit.lines
    assert "ranked by SUVpeak" in seen.status[-1]
    assert not panel.ui.exportButton.enabled and panel.ui.exportButton.toolTip == module.logic.PET_ONLY_EXPORT
    assert panel.ui.exportButton.text == "Export RTSTRUCT..."  # a PET from a file: no DICOM for a SEG either
    slider = panel.ui.thresholdSlider
    assert panel.ui.thresholdSliderLabel.text == "SUVpeak threshold:" and (slider.decimals, slider.singleStep) == (1, 0.1)
    assert slider.value == 2.5 == panel._parameterNode.threshold and slider.maximum >= 2.5
    assert not panel.ui.operatingModeComboBox.enabled and not slider.blocked


def test_a_pet_only_review_of_a_dicom_pet_exports_a_seg_on_that_pet_series(module, mrml, data_dir, tmp_path,  # noqa: F811
                                                                           monkeypatch):
    """The raw STS_001 PET DICOM loaded as Slicer's DICOM module loads it (Bq/ml; the module reviews its SUV copy): a
    PET-only review's Export writes a DICOM SEG on that PET series (the library's writer on the database's files, as
    `lnstaging export seg --results`), with the accepted nodes only."""
    pytest.importorskip("pydicom", reason="reading DICOM needs pydicom (shipped with Slicer)")
    pytest.importorskip("highdicom", reason="a DICOM SEG needs highdicom (a module dependency)")
    import pydicom

    from slicer_dicom import DicomIndex, load_like_dicom_module

    from LNStagingLib.export.seg import require_seg_support

    try:
        require_seg_support()
    except ExportError as refused:  # Slicer 5.10's pydicom 2.4: test_slicer_packages.py checks that sentence
        pytest.skip(str(refused))
    raw_pet = data_dir / "mirp_sts_raw_pet" / "STS_001" / "FDG_PET" / "image"
    pet_node = load_like_dicom_module(mrml.scene, raw_pet, "PET")
    monkeypatch.setattr(slicer, "dicomDatabase", DicomIndex(raw_pet), raising=False)
    logic = module.logic.LNStagingLogic()
    shown = logic.suvPetNode(pet_node)  # the SUV copy Apply writes for the run, on the node's grid
    review = logic.loadResults(pet_only_results(volumes.image_from_volume(shown), tmp_path / "run"), None, pet_node)
    assert review.ct is shown and review.pet_only
    assert logic.exportProblem() == "" and logic.exportRoute() == "petseg"
    accepted, rejected = review.results.candidates[0], review.results.candidates[1]
    review.accept(accepted.id)
    review.reject(rejected.id)  # the others stay pending: none of them leaves

    message = logic.export(tmp_path / "seg")

    seg_path = tmp_path / "seg" / "SEG_LNStaging.dcm"
    assert str(seg_path) in message and not (tmp_path / "seg" / "RS_LNStaging.dcm").exists()
    seg = pydicom.dcmread(seg_path)
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(raw_pet.iterdir())]
    assert seg.Modality == "SEG" and [s.SegmentLabel for s in seg.SegmentSequence] == [accepted.name]
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == headers[0].SeriesInstanceUID
    assert seg.FrameOfReferenceUID == headers[0].FrameOfReferenceUID
    referenced = {item.ReferencedSOPInstanceUID for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced and referenced <= {str(h.SOPInstanceUID) for h in headers}
    voxels = int(np.count_nonzero(sitk.GetArrayViewFromImage(review.results.gtv_ln) == accepted.id))
    assert int(np.count_nonzero(seg.pixel_array)) == voxels, "the SEG does not hold the accepted node's voxels"


def test_dicom_refusals_name_the_pet_of_a_pet_only_review():
    """The series a refusal names is the one the review reads: the PET of a PET-only case, not 'the CT'."""
    from LNStagingLib.errors import ExportError
    from LNStagingLib.scene.dicom_source import UNKNOWN_UID, DicomOrigin, series_files

    class Database:  # ctkDICOMDatabase's one method the module uses: this one has lost every file
        def fileForInstance(self, uid):
            return ""

    without_uids = DicomOrigin("1.2.3", (UNKNOWN_UID,), "1.2.4")
    with pytest.raises(ExportError, match=r"^The PET's DICOM files have no SOP Instance UID.*Export the PET again"):
        series_files(without_uids, Database(), what="PET")
    gone = DicomOrigin("1.2.3", ("1.2.3.1", "1.2.3.2"), "1.2.4")
    with pytest.raises(ExportError, match=r"^2 of the PET's 2 DICOM files .*import the PET series"):
        series_files(gone, Database(), what="PET")
    with pytest.raises(ExportError, match=r"^2 of the CT's 2 DICOM files"):  # the planning CT by default
        series_files(gone, Database())
