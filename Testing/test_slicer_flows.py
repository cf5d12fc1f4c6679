"""The module's flows (issue 27, point 5 and after) through LNStagingLogic on slicer-core, with real MRML events:
Close Scene during a run, Save/Export/Report after Close Scene, Load without a CT, results attached to the CT/PET
the run started on, a failed load that keeps the review on screen, Cancel (not an error, never blocking), the
temporary folders, no node left behind by Save/Export/Report, and registered (transformed) inputs.

The child process is real (a Python process started and polled by the logic as in Slicer); it writes the scene
fixtures' results instead of running the models. The CT is the real TotalSegmentator CT of scene_fixtures (axes
permuted and flipped: non-identity direction)."""

from __future__ import annotations

import contextlib
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")

from scene_fixtures import import_module_logic, make_case, mrml  # noqa: E402,F401  (pytest fixture)

from LNStagingLib.errors import Cancelled, GeometryError, LNStagingError  # noqa: E402
from LNStagingLib.scene import volumes  # noqa: E402
from LNStagingLib.scene.review import ROLE_ATTRIBUTE  # noqa: E402

TESTING = Path(__file__).resolve().parent

FAKE_CHILD = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {testing!r})
    out, release = Path(sys.argv[1]), Path(sys.argv[2])
    print("PROGRESS 0.1000 waiting", flush=True)
    deadline = time.time() + 60
    while not release.exists() and time.time() < deadline:
        time.sleep(0.05)
    if release.read_text() == "fail":
        print("lnstaging run: error: the PET looks like Bq/ml", flush=True)
        raise SystemExit(2)
    from scene_fixtures import make_case
    make_case()[2].write(out)
    print("PROGRESS 1.0000 done", flush=True)
''')

STUBBORN_CHILD = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('started', flush=True)\ntime.sleep(60)\n"


@pytest.fixture
def module(monkeypatch, mrml, tmp_path):  # noqa: F811
    """LNStagingModule.logic as Slicer loads it (the scripted-module base class stubbed, slicer.mrmlScene the
    fixture's scene) with the analysis child replaced by FAKE_CHILD; ``release(text)`` lets the child go on."""
    logic = import_module_logic(monkeypatch, mrml.scene)
    from LNStagingModule import process

    script = tmp_path / "fake_child.py"
    script.write_text(FAKE_CHILD.format(testing=str(TESTING)))
    gate = tmp_path / "release"
    seen = {}

    def fake_argv(python, out_dir, ct, pet, *args, **kwargs):
        seen["ct"], seen["pet"] = Path(ct), Path(pet)
        return [sys.executable, str(script), str(out_dir), str(gate)]

    monkeypatch.setattr(process, "run_argv", fake_argv)
    ns = types.SimpleNamespace(logic=logic, process=process, scene=mrml.scene, gate=gate, inputs=seen,
                               release=lambda text="ok": gate.write_text(text))
    yield ns
    sys.modules.pop("LNStagingModule.logic", None)


@pytest.fixture
def nodes(mrml):  # noqa: F811
    ct, pet, _ = make_case()
    return volumes.add_volume(mrml.scene, ct, "CT"), volumes.add_volume(mrml.scene, pet, "PET")


def wait(logic, timeout=60.0):
    lines, deadline = [], time.time() + timeout
    while not logic.analysisFinished:
        lines += logic.pollAnalysis()
        assert time.time() < deadline, "the run did not finish"
        time.sleep(0.05)
    return lines + logic.pollAnalysis()


def review_node_count(scene) -> int:
    return sum(1 for i in range(scene.GetNumberOfNodes()) if scene.GetNthNode(i).GetAttribute(ROLE_ATTRIBUTE))


def test_a_run_shows_its_results_and_removes_its_input_copies(module, nodes):
    ct, pet = nodes
    logic = module.logic.LNStagingLogic()
    run = logic.startAnalysis(ct, pet)
    module.release()
    lines = wait(logic)
    assert any(line.startswith("PROGRESS 1.0000") for line in lines)
    assert module.inputs["ct"].parent == run.workDir
    review = logic.finishAnalysis()
    assert review.ct is ct and review.pet is pet and logic.reviewAvailable
    assert [c.id for c in review.results.candidates] == [1, 2, 3, 4]
    assert not (run.workDir / "ct.nrrd").exists() and not (run.workDir / "pet.nrrd").exists()
    assert (run.workDir / "results" / "candidates.json").is_file()
    logic.cleanup()
    assert not run.workDir.exists()  # no temporary folder outlives the module


def test_close_scene_during_a_run_ends_with_a_sentence_not_an_attribute_error(module, nodes, mrml):  # noqa: F811
    ct, pet = nodes
    logic = module.logic.LNStagingLogic()
    logic.observeScene(mrml.scene)
    logic.startAnalysis(ct, pet)
    mrml.scene.Clear(False)  # File > Close Scene: StartCloseEvent, every node removed
    module.release()
    wait(logic)
    with pytest.raises(LNStagingError, match="scene was closed") as raised:
        logic.finishAnalysis()
    assert type(raised.value) is LNStagingError
    folder = Path(str(raised.value).split("results are in ")[1].split(":")[0])
    assert (folder / "candidates.json").is_file()  # the results are kept for Load results folder
    assert logic.run is None and not logic.reviewAvailable
    logic.cleanup()


def test_after_close_scene_save_export_and_report_refuse_with_a_sentence(module, nodes, mrml, tmp_path):  # noqa: F811
    ct, pet = nodes
    logic = module.logic.LNStagingLogic()
    logic.observeScene(mrml.scene)
    folder = tmp_path / "run"
    make_case()[2].write(folder)
    logic.loadResults(folder, ct, pet)
    assert logic.reviewAvailable
    mrml.scene.Clear(False)
    assert logic.review is None and not logic.reviewAvailable  # the widget disables the Review section on this
    for action, call in (("save", lambda: logic.saveReview(tmp_path / "review")),
                         ("report", lambda: logic.writeReport(folder)),
                         ("export", lambda: logic.export(tmp_path / "rt")),
                         ("export", logic.exportRoute)):
        with pytest.raises(LNStagingError, match=f"no review to {action}"):
            call()
    assert not (tmp_path / "review").exists() and not (tmp_path / "rt").exists()


def test_load_results_without_a_ct_is_refused(module, tmp_path):
    logic = module.logic.LNStagingLogic()
    make_case()[2].write(tmp_path / "run")
    with pytest.raises(LNStagingError, match="Select the planning CT"):
        logic.loadResults(tmp_path / "run", None, None)


def test_results_attach_to_the_ct_and_pet_the_run_started_on(module, nodes, mrml):  # noqa: F811
    ct, pet = nodes
    logic = module.logic.LNStagingLogic()
    logic.startAnalysis(ct, pet)
    other_ct, other_pet, _ = make_case()  # the user loads and selects another CT/PET while the run goes on
    volumes.add_volume(mrml.scene, other_ct, "CT 2")
    volumes.add_volume(mrml.scene, other_pet, "PET 2")
    with pytest.raises(LNStagingError, match="analysis is running"):
        logic.startAnalysis(ct, pet)  # one run at a time
    module.release()
    wait(logic)
    review = logic.finishAnalysis()
    assert review.ct is ct and review.pet is pet
    logic.cleanup()


def test_a_failed_load_keeps_the_review_and_its_unsaved_decisions(module, nodes, mrml, tmp_path):  # noqa: F811
    ct, pet = nodes
    logic = module.logic.LNStagingLogic()
    make_case()[2].write(tmp_path / "run")
    review = logic.loadResults(tmp_path / "run", ct, pet)
    broken = logic.saveReview(tmp_path / "saved")  # a saved review whose segmentation file is then damaged: it
    (broken / "GTV_LN.seg.nrrd").write_bytes(b"")  # fails after attention, table, markups exist
    review.accept(2)  # not saved
    before = mrml.scene.GetNumberOfNodes()
    with pytest.raises(LNStagingError, match="damaged"):
        logic.loadResults(broken, ct, pet)
    assert logic.review is review and review.results.candidate(2).review == "accepted"
    assert mrml.scene.GetNumberOfNodes() == before  # nothing removed, nothing half-added
    assert review.segmentation.GetScene() is mrml.scene and review_node_count(mrml.scene) == 4
    logic.loadResults(tmp_path / "run", ct, pet)  # a good load replaces the previous review's nodes
    assert review_node_count(mrml.scene) == 4 and review.segmentation.GetScene() is None


def test_a_failed_run_is_one_sentence_and_leaves_no_folder(module, nodes):
    ct, pet = nodes
    logic = module.logic.LNStagingLogic()
    run = logic.startAnalysis(ct, pet)
    module.release("fail")
    wait(logic)
    with pytest.raises(LNStagingError, match="^the PET looks like Bq/ml$"):
        logic.finishAnalysis()
    assert not run.workDir.exists()


def test_cancel_returns_at_once_is_not_an_error_and_kills_a_stubborn_child(module, nodes, monkeypatch, tmp_path):
    ct, pet = nodes
    stubborn = tmp_path / "stubborn.py"
    stubborn.write_text(STUBBORN_CHILD)
    monkeypatch.setattr(module.process, "run_argv", lambda *a, **k: [sys.executable, str(stubborn)])
    monkeypatch.setattr(module.logic, "KILL_AFTER_SECONDS", 1.0)
    logic = module.logic.LNStagingLogic()
    run = logic.startAnalysis(ct, pet)
    deadline = time.time() + 30
    while "started" not in (run.child.output if run.child else []):
        logic.pollAnalysis()
        assert time.time() < deadline
        time.sleep(0.05)
    start = time.perf_counter()
    logic.cancel()
    assert time.perf_counter() - start < 0.5  # the GUI thread is not blocked
    wait(logic, timeout=20)  # SIGTERM ignored: killed by the poll after KILL_AFTER_SECONDS
    with pytest.raises(Cancelled):
        logic.finishAnalysis()
    assert not run.workDir.exists()


def test_save_export_and_report_leave_no_node_behind(module, nodes, mrml, tmp_path):  # noqa: F811
    """ExportSegmentsToLabelmapNode adds a colour table and a display node to the scene: none may stay."""
    ct, pet = nodes
    logic = module.logic.LNStagingLogic()
    make_case()[2].write(tmp_path / "run")
    review = logic.loadResults(tmp_path / "run", ct, pet)
    review.accept(1)
    before = {mrml.scene.GetNthNode(i).GetID() for i in range(mrml.scene.GetNumberOfNodes())}
    logic.saveReview(tmp_path / "review")
    logic.writeReport(tmp_path / "run")
    review.read_edits()  # what Export does first
    after = {mrml.scene.GetNthNode(i).GetID() for i in range(mrml.scene.GetNumberOfNodes())}
    assert after == before, sorted(after - before)


def test_a_registered_pet_is_written_in_the_cts_frame_and_results_follow_the_ct(module, nodes, mrml, tmp_path):  # noqa: F811
    ct, pet = nodes
    shift_ras = np.array([12.0, -7.5, 4.0])
    transform = mrml.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "PET to CT")
    matrix = np.eye(4)
    matrix[:3, 3] = shift_ras
    transform.SetMatrixTransformToParent(volumes.vtk_matrix(matrix))
    pet.SetAndObserveTransformNodeID(transform.GetID())
    logic = module.logic.LNStagingLogic()
    run = logic.startAnalysis(ct, pet)
    run.writer.join(30)
    written = sitk.ReadImage(str(run.workDir / "pet.nrrd"))
    own = volumes.image_from_volume(pet)
    expected_origin = np.array(own.GetOrigin()) + shift_ras * [-1, -1, 1]  # RAS shift seen in LPS
    assert np.allclose(written.GetOrigin(), expected_origin, atol=1e-4)
    assert np.allclose(written.GetDirection(), own.GetDirection())
    assert np.array_equal(sitk.GetArrayViewFromImage(written), sitk.GetArrayViewFromImage(own))
    ct_written = sitk.ReadImage(str(run.workDir / "ct.nrrd"))
    assert np.allclose(ct_written.GetOrigin(), volumes.image_from_volume(ct).GetOrigin())
    module.release()
    wait(logic)
    ct_transform = mrml.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "CT moved")
    ct.SetAndObserveTransformNodeID(ct_transform.GetID())
    review = logic.finishAnalysis()
    for node in (review.segmentation, review.markups, review.attention):
        assert node.GetTransformNodeID() == ct_transform.GetID()  # the results are in the CT's frame
    logic.cleanup()


def test_a_warping_or_scaling_transform_is_refused_before_anything_runs(module, nodes, mrml):  # noqa: F811
    ct, pet = nodes
    scaling = mrml.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "scaling")
    scaling.SetMatrixTransformToParent(volumes.vtk_matrix(np.diag([1.1, 1.0, 1.0, 1.0])))
    pet.SetAndObserveTransformNodeID(scaling.GetID())
    logic = module.logic.LNStagingLogic()
    with pytest.raises(GeometryError, match="Harden transform"):
        logic.startAnalysis(ct, pet)
    warp = mrml.scene.AddNewNodeByClass("vtkMRMLGridTransformNode", "warp")
    pet.SetAndObserveTransformNodeID(warp.GetID())
    with pytest.raises(GeometryError, match="non-linear"):
        logic.startAnalysis(ct, pet)
    assert logic.run is None


# ---- long work with progress (issue 27, point 11): files and the CNN pass in a worker, MRML on the GUI thread ----

def recording_progress(cancel_at: str = ""):
    """A library Progress recording (fraction, message, thread) of each report, as the widget's dialog receives
    them; it presses Cancel when a message contains ``cancel_at``."""
    from LNStagingLib.progress import Progress

    calls, progress = [], Progress()

    def callback(fraction, message):
        calls.append((fraction, message, threading.current_thread()))
        if cancel_at and cancel_at in message:
            progress.cancel()

    progress.callback = callback
    return progress, calls


def first_index(calls, text):
    return next(i for i, (_, message, _) in enumerate(calls) if text in message)


def scene_state(scene):
    return sorted((scene.GetNthNode(i).GetID(), scene.GetNthNode(i).GetName()) for i in range(scene.GetNumberOfNodes()))


def test_load_reports_progress_in_order_on_the_gui_thread_and_reads_the_files_in_a_worker(module, nodes, tmp_path,
                                                                                           monkeypatch):
    from LNStagingLib.results import Results

    ct, pet = nodes
    make_case()[2].write(tmp_path / "run")
    readers, read = [], Results.read
    monkeypatch.setattr(Results, "read", classmethod(
        lambda cls, folder: (readers.append(threading.current_thread()), read(folder))[1]))
    logic = module.logic.LNStagingLogic()
    progress, calls = recording_progress()
    review = logic.loadResults(tmp_path / "run", ct, pet, progress=progress)
    assert [c.id for c in review.results.candidates] == [1, 2, 3, 4]
    assert readers and all(thread is not threading.main_thread() for thread in readers)  # NIfTI/JSON off the GUI
    assert {thread for _, _, thread in calls} == {threading.main_thread()}  # the dialog is only drawn from the GUI
    order = [first_index(calls, text) for text in ("reading the results", "attention map", "GTV_LN segments",
                                                   "candidate table", "centroids", "views")]
    assert order == sorted(order)
    fractions = [fraction for fraction, _, _ in calls]
    assert fractions == sorted(fractions) and 0.0 <= fractions[0] and fractions[-1] <= 1.0


@pytest.mark.parametrize("cancel_at", ["reading the results", "GTV_LN segments", "centroids"])
@pytest.mark.parametrize("saved", [False, True], ids=["run", "saved review"])
def test_cancel_while_loading_leaves_the_scene_and_the_review_unchanged(module, nodes, mrml, tmp_path,  # noqa: F811
                                                                        cancel_at, saved):
    ct, pet = nodes
    logic = module.logic.LNStagingLogic()
    make_case()[2].write(tmp_path / "run")
    review = logic.loadResults(tmp_path / "run", ct, pet)
    folder = logic.saveReview(tmp_path / "saved") if saved else tmp_path / "run"
    review.accept(2)  # an unsaved decision
    before = scene_state(mrml.scene)
    progress, calls = recording_progress(cancel_at)
    with pytest.raises(Cancelled):
        logic.loadResults(folder, ct, pet, progress=progress)
    assert any(cancel_at in message for _, message, _ in calls)
    assert scene_state(mrml.scene) == before  # nothing added, nothing of the review on screen removed
    assert logic.review is review and logic.resultsFolder == tmp_path / "run"
    assert review.results.candidate(2).review == "accepted" and review.segmentation.GetScene() is mrml.scene


@pytest.fixture
def blocking_cnn(monkeypatch):
    """The re-scoring CNN pass replaced by one that blocks until released (a CNN forward pass cannot be
    interrupted): which thread it ran on, and ``release()``."""
    from LNStagingLib.inference import rescore
    from LNStagingLib.models import catalogue

    gate, threads = threading.Event(), []

    def cnn_pass(path, results, ct, pet, *args, **kwargs):
        threads.append(threading.current_thread())
        gate.wait(30)
        raise AssertionError("the CNN pass should have been dropped after Cancel")

    monkeypatch.setattr(rescore, "rescorer_from_checkpoint", cnn_pass)
    monkeypatch.setattr(catalogue, "resolve_model_file", lambda model, task: (Path(model), None))
    yield types.SimpleNamespace(threads=threads, release=gate.set)
    gate.set()


def test_cancel_during_the_rescoring_cnn_pass_returns_at_once_and_changes_nothing(module, nodes, mrml, tmp_path,  # noqa: F811
                                                                                  blocking_cnn):
    ct, pet = nodes
    logic = module.logic.LNStagingLogic()
    make_case()[2].write(tmp_path / "run")
    review = logic.loadResults(tmp_path / "run", ct, pet)
    probabilities = {c.id: c.probability for c in review.results.candidates}
    before = scene_state(mrml.scene)

    progress, calls = recording_progress()
    cancel_after = time.perf_counter() + 0.3  # Cancel pressed while the CNN pass is running
    progress.callback = lambda fraction, message: (calls.append((fraction, message)),
                                                   time.perf_counter() > cancel_after and progress.cancel())
    start = time.perf_counter()
    with pytest.raises(Cancelled):
        logic.setRescoreModel(str(tmp_path / "review_model.pt"), progress)
    assert time.perf_counter() - start < 5.0  # the GUI thread did not wait for the (30 s) pass
    assert blocking_cnn.threads and blocking_cnn.threads[0] is not threading.main_thread()
    assert len(calls) >= 3 and all("re-scoring" in message for _, message in calls)  # drawn while it ran
    assert logic.rescoreModel == "" and review.rescorer is None and logic.review is review
    assert {c.id: c.probability for c in review.results.candidates} == probabilities
    assert scene_state(mrml.scene) == before

    logic.rescoreModel = str(tmp_path / "review_model.pt")  # a saved choice: the next Load runs the pass too
    progress, calls = recording_progress("re-scoring")
    with pytest.raises(Cancelled):
        logic.loadResults(tmp_path / "run", ct, pet, progress=progress)
    assert scene_state(mrml.scene) == before and logic.review is review


def paint_edits(review):
    """GTVn_01 grown by a block and a user segment added, as a Segment Editor stroke would."""
    from LNStagingLib.scene import segments

    painted = segments.array_from_segment(review.segmentation, "GTVn_01", review.ct)
    z, y, x = np.argwhere(painted)[0]
    painted[z:z + 2, y - 3:y - 1, x:x + 2] = 1
    segments.update_segment_from_array(review.segmentation, "GTVn_01", painted, review.ct)
    new = np.zeros_like(painted)
    new[2:4, 40:43, 5:8] = 1
    user = review.segmentation.GetSegmentation().AddEmptySegment("", "my node")
    segments.update_segment_from_array(review.segmentation, user, new, review.ct)
    return user


def review_snapshot(review):
    from LNStagingLib.scene import segments

    segmentation = review.segmentation.GetSegmentation()
    return ([(c.id, c.volume_ml, tuple(c.centroid_lps), c.review) for c in review.results.candidates],
            sitk.GetArrayFromImage(review.results.gtv_ln).tobytes(),
            sorted((sid, segmentation.GetSegment(sid).GetName()) for sid in segmentation.GetSegmentIDs()),
            segments.candidate_ids_by_segment(review.segmentation), list(review.events))


def test_cancel_while_reading_edits_back_changes_and_writes_nothing(module, nodes, mrml, tmp_path,  # noqa: F811
                                                                   monkeypatch):
    ct, pet = nodes
    monkeypatch.setattr(slicer, "modules", types.SimpleNamespace(), raising=False)  # no SlicerRT: the folder route
    logic = module.logic.LNStagingLogic()
    make_case()[2].write(tmp_path / "run")
    review = logic.loadResults(tmp_path / "run", ct, pet)
    paint_edits(review)
    before, nodes_before = review_snapshot(review), scene_state(mrml.scene)
    for action in (lambda p: logic.saveReview(tmp_path / "review", p),
                   lambda p: logic.writeReport(tmp_path / "run", p),
                   lambda p: logic.export(tmp_path / "rt", str(tmp_path), False, p)):
        progress, calls = recording_progress("measuring the edited nodes")
        with pytest.raises(Cancelled):
            action(progress)
        assert first_index(calls, "reading the contours") < first_index(calls, "measuring the edited nodes")
        assert review_snapshot(review) == before and scene_state(mrml.scene) == nodes_before
    assert not (tmp_path / "review").exists() and not (tmp_path / "run" / "review").exists()
    assert not (tmp_path / "rt").exists() or not list((tmp_path / "rt").iterdir())

    progress, calls = recording_progress()
    logic.saveReview(tmp_path / "review", progress)  # not cancelled: the edits are read back and saved
    assert [c.id for c in review.results.candidates] == [1, 2, 3, 4, 5]
    fractions = [fraction for fraction, _, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert (tmp_path / "review" / "review.json").is_file()


@pytest.fixture
def widget_module(module, monkeypatch):
    """LNStagingModule.widget on fake Qt (Qt is application only): its progress dialog and Cancel handling."""
    qt = types.ModuleType("qt")
    qt.Qt = types.SimpleNamespace(WindowModal=1)
    monkeypatch.setitem(sys.modules, "qt", qt)
    base = sys.modules["slicer.ScriptedLoadableModule"]
    base.ScriptedLoadableModuleWidget = type("ScriptedLoadableModuleWidget", (), {})
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper, wrapper.WithinRange = (lambda cls: cls), (lambda low, high: (low, high))
    monkeypatch.setitem(sys.modules, "slicer.parameterNodeWrapper", wrapper)
    seen = types.SimpleNamespace(status=[], errors=[], dialogs=[], events=0)

    def dialog(**kwargs):
        # createProgressDialog sets each keyword the QProgressDialog has and silently drops the others: these are
        # QProgressDialog's own properties (and QWidget's windowTitle, windowModality)
        assert set(kwargs) <= {"windowTitle", "labelText", "maximum", "windowModality", "autoClose", "autoReset"}
        made = types.SimpleNamespace(wasCanceled=False, value=0, closed=False, **kwargs)
        made.close = lambda: setattr(made, "closed", True)
        seen.dialogs.append(made)
        return made

    def process_events():
        seen.events += 1

    monkeypatch.setattr(slicer.util, "createProgressDialog", dialog)
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(processEvents=process_events), raising=False)
    monkeypatch.setattr(slicer.util, "showStatusMessage", lambda text, duration=0: seen.status.append(text))
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, **kwargs: seen.errors.append(text))
    monkeypatch.setattr(slicer.util, "WaitCursor", contextlib.nullcontext)
    for name in ("LNStagingModule.widget", "LNStagingModule.parameters"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    from LNStagingModule import widget

    yield widget, seen
    for name in ("LNStagingModule.widget", "LNStagingModule.parameters"):
        sys.modules.pop(name, None)


def test_the_widget_draws_progress_and_cancel_is_a_status_line_not_an_error(widget_module, module, nodes, mrml,  # noqa: F811
                                                                            tmp_path):
    widget, seen = widget_module
    ct, pet = nodes
    logic = module.logic.LNStagingLogic()
    make_case()[2].write(tmp_path / "run")
    review = widget.withProgress("Loading the results", "The results could not be shown.",
                                 lambda progress: logic.loadResults(tmp_path / "run", ct, pet, progress=progress))
    assert review is logic.review and seen.errors == [] and seen.events > 0
    (dialog,) = seen.dialogs
    assert dialog.closed and dialog.windowModality == 1 and dialog.autoClose is False and dialog.value > 0
    before = scene_state(mrml.scene)

    def press_cancel(progress):
        seen.dialogs[-1].wasCanceled = True  # the user presses Cancel in the dialog
        return logic.loadResults(tmp_path / "run", ct, pet, progress=progress)

    assert widget.withProgress("Loading the results", "The results could not be shown.", press_cancel) is None
    assert seen.errors == [] and seen.status and seen.status[-1].startswith("Cancelled")
    assert seen.dialogs[-1].closed and scene_state(mrml.scene) == before and logic.review is review

    def fail(progress):
        raise LNStagingError("The folder has no candidates.json.")

    assert widget.withProgress("Loading the results", "The results could not be shown.", fail) is None
    assert seen.errors == ["The results could not be shown.\n\nThe folder has no candidates.json."]
