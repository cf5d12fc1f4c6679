"""LNStagingLogic: every flow of the panel (apply, poll, cancel, finish, close scene, load, save, export, report),
so that the widget only connects Qt signals to it and shows what it returns or raises. No GUI dialogs here (they
break headless use and tests): problems are raised as LNStagingError with one sentence the widget shows;
``Cancelled`` is not an error. Tested on slicer-core with MRML events (Testing/test_slicer_flows.py)."""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import SimpleITK as sitk
import vtk

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

from LNStagingLib.errors import Cancelled, ExportError, LNStagingError
from LNStagingLib.progress import Progress
from LNStagingLib.inference import rescore_record
from LNStagingLib.inference.rescore_record import rescore_summary, rescored_changes
from LNStagingLib.io import case_inputs
from LNStagingLib.io.resample import same_grid
from LNStagingLib.results import Results
from LNStagingLib.scene import dicom_source, review_state, rt_export, volumes
from LNStagingLib.scene.review import ROLE_ATTRIBUTE, ReviewScene

from . import background, gpu, process

KILL_AFTER_SECONDS = 5.0
PET_ONLY_NOTE = ("No CT selected: a PET-only run (candidates from the PET's SUV rules, ranked by SUVpeak; no model "
                 "runs, each reads the CT). The results are on the PET's grid.")
PET_ONLY_EXPORT = ("This review is of a PET-only run (no CT): an RTSTRUCT needs the planning CT; select the planning CT "
                   "with this PET, press Apply again and export that review (or load the PET from DICOM for a SEG).")
SUV_THRESHOLD_MAX = 100.0  # the slider's ceiling in SUVpeak (parameters.threshold accepts up to this)
PET_ONLY_RESCORING = f"Re-scoring is off for this review: {rescore_record.NO_CT_REASON}"
SUV_OF_ATTRIBUTE = "LNStaging.SuvOf"  # on the SUV copy of a DICOM PET: the ID of the Bq/ml node it was made from  # after Cancel, the child's process group is killed if it has not stopped by then


def python_slicer() -> str:
    """The PythonSlicer launcher (Slicer's Python with Slicer's environment)."""
    return shutil.which("PythonSlicer") or sys.executable


def dicomDatabase():
    """Slicer's DICOM database (None before the DICOM module opened one, and on slicer-core)."""
    return getattr(slicer, "dicomDatabase", None)


class AnalysisRun:
    """One Apply: the CT (None: a PET-only run) and PET it was started on (the results attach to them, whatever is
    selected when it ends), its work folder, the thread writing the input copies, then the child process."""

    def __init__(self, ctNode, petNode, workDir: Path, images: dict, argv: list[str]):
        self.ct, self.pet, self.workDir, self.argv = ctNode, petNode, workDir, argv
        self.child: Optional[process.ChildProcess] = None
        self.cancelledAt: Optional[float] = None
        self.writeError: Optional[BaseException] = None
        self.writer = threading.Thread(target=self._writeInputs, args=(images,), daemon=True)
        self.writer.start()

    def _writeInputs(self, images: dict) -> None:
        """Off the GUI thread: the images were copied out of the scene already; writing them takes the time."""
        try:
            for path, image in images.items():
                sitk.WriteImage(image, str(path), useCompression=False)
        except BaseException as error:  # reported on the GUI thread by finish()
            self.writeError = error

    def poll(self) -> list[str]:
        """New output lines; starts the child once the inputs are written (not after Cancel)."""
        if self.child is None:
            if self.writer.is_alive() or self.writeError is not None or self.cancelledAt is not None:
                return []
            self.child = process.ChildProcess(self.argv, env=process.child_environment())
            return [" ".join(map(str, self.argv))]
        if self.cancelledAt is not None and time.monotonic() - self.cancelledAt > KILL_AFTER_SECONDS:
            self.child.kill()
        return self.child.poll()

    @property
    def finished(self) -> bool:
        if self.child is None:
            return not self.writer.is_alive() and (self.writeError is not None or self.cancelledAt is not None)
        return self.child.returncode is not None

    def cancel(self) -> None:
        """Ask the run to stop; never blocks the GUI (the timer kills it after KILL_AFTER_SECONDS)."""
        if self.cancelledAt is None:
            self.cancelledAt = time.monotonic()
        if self.child is not None:
            self.child.cancel(wait=False)

    def removeInputs(self) -> None:
        for name in ("ct.nrrd", "pet.nrrd", "organs.seg.nrrd", "tumor.nrrd"):
            (self.workDir / name).unlink(missing_ok=True)


class LNStagingLogic(ScriptedLoadableModuleLogic):
    def __init__(self):
        super().__init__()
        self.run: Optional[AnalysisRun] = None
        self.review: Optional[ReviewScene] = None
        self.resultsFolder: Optional[Path] = None  # where "Report..." saves the review and writes report.html
        self.workDirs: list[Path] = []  # temporary folders of earlier runs, removed by cleanup()
        self.rescoreModel = ""  # re-scoring model (issue 19): "" none, a catalogue id or a weights file
        self.rescoringEnabled = True
        self.rescoreNote = ""  # why re-scoring is off for the review on screen, when it could not start
        self.notes: list[str] = []  # what the last Apply decided on the user's behalf (SUV conversion, ...)
        self._sceneObservers: list[tuple] = []

    # ---- scene events ---------------------------------------------------------------------------------------------
    def observeScene(self, scene=None) -> None:
        """Follow Close Scene: the review goes, a run in progress is told its nodes are gone."""
        scene = scene or slicer.mrmlScene
        self.stopObservingScene()
        tag = scene.AddObserver(scene.StartCloseEvent, lambda caller, event: self.onSceneClosed())
        self._sceneObservers.append((scene, tag))

    def stopObservingScene(self) -> None:
        for scene, tag in self._sceneObservers:
            scene.RemoveObserver(tag)
        self._sceneObservers = []

    def onSceneClosed(self) -> None:
        """Close Scene removes every node: there is no review any more (Save, Export, Report refuse with a
        sentence instead of failing on removed nodes)."""
        self.review = None
        self.resultsFolder = None

    @property
    def reviewAvailable(self) -> bool:
        return self.review is not None and self.review.ct is not None and self.review.ct.GetScene() is not None

    def requireReview(self, action: str) -> ReviewScene:
        if not self.reviewAvailable:
            self.review = None
            raise LNStagingError(f"There is no review to {action}: run the analysis or load a results folder first.")
        return self.review

    # ---- models ---------------------------------------------------------------------------------------------
    @staticmethod
    def catalogue():
        from LNStagingLib.models.catalogue import Catalogue

        return Catalogue.read()

    def modelIds(self) -> list[str]:
        """The catalogue's model ids; empty (never an exception) so the panel always builds."""
        try:
            return sorted(self.catalogue().entries)
        except (LNStagingError, ImportError, OSError) as error:
            logging.warning(f"LNStaging: the model catalogue could not be read ({error})")
            return []

    def importWeights(self, path: str, modelId: str) -> Path:
        if not modelId:
            raise LNStagingError("Choose the model these weights belong to in the Model list first.")
        return self.catalogue().import_weights(path, modelId)

    @staticmethod
    def cudaAvailable() -> bool:
        return gpu.torch_cuda_available()

    @staticmethod
    def gpuDescription() -> str:
        """One line for the panel: the CUDA device and its memory, or why there is none."""
        return gpu.describe()

    def modelsSpec(self, modelId: Optional[str]) -> str:
        """The CLI's --models spec for a model chosen in the list ('default' when none is chosen)."""
        if not modelId:
            return "default"
        entry = self.catalogue().get(modelId)
        return f"{entry.task}={entry.id}"

    # ---- inputs: in the CT's frame, PET in SUV --------------------------------------------------------------------
    @staticmethod
    def inputsProblem(ctNode, petNode) -> str:
        """Why Apply cannot start ("" when it can): shown as the Apply button's tooltip. No CT: a PET-only run."""
        if petNode is None:
            return "Select the PET (loaded from DICOM it is converted to SUV here)."
        if ctNode is petNode:
            return "The CT and the PET are the same volume: select the planning CT, or None for a PET-only run."
        return ""

    def checkFramesOfReference(self, ctNode, petNode) -> None:
        """CT and PET from DICOM with different Frames of Reference are not in one space unless the PET was
        registered (placed under a transform): refuse that case instead of analysing misaligned images."""
        scene = ctNode.GetScene()
        ct, pet = dicom_source.dicom_origin(scene, ctNode), dicom_source.dicom_origin(scene, petNode)
        if ct is None or pet is None or not ct.frame_of_reference_uid or not pet.frame_of_reference_uid:
            return
        moved = petNode.GetParentTransformNode() is not ctNode.GetParentTransformNode()
        if ct.frame_of_reference_uid != pet.frame_of_reference_uid and not moved:
            raise LNStagingError("The CT and the PET have different DICOM Frames of Reference (they were not acquired "
                                 "in one space): register the PET to the CT (a transform in the Data module), or "
                                 "select the PET acquired with this CT.")

    def petSuvImage(self, petNode) -> sitk.Image:
        """The PET in SUVbw on its own grid: converted from the series' DICOM files with the library's SUV code
        when it came from DICOM (Slicer loads DICOM PET in Bq/ml), else the voxels as they are (taken as SUV, as
        the command line does; Bq/ml is refused by the analysis)."""
        origin = dicom_source.dicom_origin(petNode.GetScene(), petNode)
        if origin is None or dicomDatabase() is None:
            self._asIs(petNode)
            return volumes.image_from_volume(petNode)
        from LNStagingLib.io.dicom_series import read_dicom_series
        from LNStagingLib.io.suv import pet_to_suv

        files = dicom_source.series_files(origin, dicomDatabase(), what="PET")
        series = read_dicom_series(files, series_uid=origin.series_instance_uid, what="PET")
        suv, factor = pet_to_suv(series)
        self.notes.append(f"PET converted to SUV from its DICOM tags: {factor.describe()}")
        # the series' own geometry is the node's (both from the same files), so the node's frame applies
        return resampleOntoNode(suv, petNode)

    def suvPetNode(self, petNode):
        """The PET node to analyse and review: ``petNode`` itself, or for a DICOM PET (Bq/ml in Slicer) its SUV copy
        "<name> (SUVbw)" on the same grid and under the same transform (made once, refreshed on the next Apply), so
        that the display window, the SUVmax of edited nodes and the report are in SUV too."""
        scene = petNode.GetScene()
        if petNode.GetAttribute(SUV_OF_ATTRIBUTE) or dicom_source.dicom_origin(scene, petNode) is None:
            return petNode if petNode.GetAttribute(SUV_OF_ATTRIBUTE) else self._asIs(petNode)
        if dicomDatabase() is None:
            return self._asIs(petNode)
        suv = self.petSuvImage(petNode)
        nodes = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]
        node = next((n for n in nodes if n.GetAttribute(SUV_OF_ATTRIBUTE) == petNode.GetID()), None)
        if node is None:
            node = volumes.add_volume(scene, suv, f"{petNode.GetName()} (SUVbw)")
            node.SetAttribute(SUV_OF_ATTRIBUTE, petNode.GetID())
        else:
            volumes.update_volume(node, suv)
        node.SetAndObserveTransformNodeID(petNode.GetTransformNodeID())
        self.notes.append(f"The review shows the PET in SUV as '{node.GetName()}'.")
        return node

    def _asIs(self, petNode):
        self.notes.append(f"{petNode.GetName()} did not come from the DICOM database: its values are taken as SUV "
                          "(load the PET from DICOM to have it converted).")
        return petNode

    def inputImages(self, workDir: Path, ctNode, petNode) -> dict:
        """The CT (its own frame) and the PET (in SUV, in the CT's frame through both parent transforms); without a
        CT, the PET alone in its own frame (the results then follow the PET's parent transform)."""
        if ctNode is None:
            return {workDir / "pet.nrrd": volumes.image_from_volume(petNode)}
        self.checkFramesOfReference(ctNode, petNode)
        return {workDir / "ct.nrrd": volumes.image_from_volume(ctNode),
                workDir / "pet.nrrd": volumes.image_in_frame(petNode, ctNode)}

    def _exportSegmentLabelmap(self, segmentationNode, segmentId, ctNode, path: Path) -> Path:
        """One segment as a 0/1 label map on the CT grid (a PET-only run: the PET's); the temporary nodes (and colour
        table) are removed."""
        scene = ctNode.GetScene()
        with volumes.temporary_nodes(scene):
            labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "LNStaging_tumor")
            if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                    segmentationNode, [segmentId], labelmap, ctNode):
                raise LNStagingError("The tumour segment could not be rasterised on the CT grid.")
            sitk.WriteImage(volumes.image_from_volume(labelmap), str(path), useCompression=True)
        return path

    # ---- running ----------------------------------------------------------------------------------------------
    def startAnalysis(self, ctNode, petNode, organsNode=None, tumourSegmentation=None, tumourSegmentId="",
                      modelId: Optional[str] = None, device: str = "cpu") -> AnalysisRun:
        """Copy the inputs out of the scene (GUI thread, fast), write them and start the child (background).
        ``ctNode`` None: a PET-only run (``lnstaging run`` without --ct) on the PET's grid."""
        if self.run is not None:
            raise LNStagingError("An analysis is running: wait for it or cancel it first.")
        problem = self.inputsProblem(ctNode, petNode)
        if problem:
            raise LNStagingError(problem)
        if device == "cuda" and not self.cudaAvailable():
            raise LNStagingError("No usable GPU was found (PyTorch reports no CUDA device): choose CPU.")
        self.notes = []
        if ctNode is not None:
            self.checkFramesOfReference(ctNode, petNode)
            volumes.matrix_to_frame(petNode, ctNode)  # a transform that cannot be applied is refused before any work
        else:
            self.notes.append(PET_ONLY_NOTE)
        petNode = self.suvPetNode(petNode)
        reference = ctNode if ctNode is not None else petNode  # the grid and frame of the results
        workDir = Path(tempfile.mkdtemp(prefix="LNStaging-"))
        try:
            images = self.inputImages(workDir, ctNode, petNode)
            files = {"organs": None, "tumor": None}
            if organsNode is not None:
                if organsNode.GetParentTransformNode() is not reference.GetParentTransformNode():
                    raise LNStagingError(f"The organ segmentation is under another transform than the "
                                         f"{'CT' if ctNode is not None else 'PET'}: harden both transforms or place "
                                         "them under the same one.")
                files["organs"] = workDir / "organs.seg.nrrd"
                exportCopy(organsNode, files["organs"])
            if tumourSegmentation is not None and tumourSegmentId:
                files["tumor"] = self._exportSegmentLabelmap(tumourSegmentation, tumourSegmentId, reference,
                                                             workDir / "tumor.nrrd")
            ct = workDir / "ct.nrrd" if ctNode is not None else None
            argv = process.run_argv(python_slicer(), workDir / "results", ct, workDir / "pet.nrrd",
                                    files["organs"], files["tumor"], self.modelsSpec(modelId), device,
                                    organ_mapping="slicer")
        except BaseException:
            shutil.rmtree(workDir, ignore_errors=True)
            raise
        self.run = AnalysisRun(ctNode, petNode, workDir, images, argv)
        return self.run

    def pollAnalysis(self) -> list[str]:
        return self.run.poll() if self.run is not None else []

    @property
    def analysisFinished(self) -> bool:
        return self.run is not None and self.run.finished

    def cancel(self) -> None:
        if self.run is not None:
            self.run.cancel()

    def finishAnalysis(self, progress: Optional[Progress] = None) -> ReviewScene:
        """After the run ended: its results shown over the CT/PET it was started on (``progress`` as in
        loadResults). Raises Cancelled after Cancel (not an error), LNStagingError with the reason otherwise; the
        input copies are removed either way."""
        run, self.run = self.run, None
        output = run.child.output if run.child is not None else []
        try:
            (run.workDir / "lnstaging.log").write_text("\n".join(output) + "\n")
        except OSError:
            pass  # the log is a convenience; the results decide success
        run.removeInputs()
        if run.cancelledAt is not None:
            shutil.rmtree(run.workDir, ignore_errors=True)
            raise Cancelled("Cancelled: no results were written.")
        if run.writeError is not None:
            shutil.rmtree(run.workDir, ignore_errors=True)
            raise LNStagingError(f"The input copies could not be written to {run.workDir.parent} ({run.writeError}): "
                                 "check the free disk space.")
        code = run.child.wait()
        if code != 0:
            shutil.rmtree(run.workDir, ignore_errors=True)
            raise LNStagingError(process.failure_message("\n".join(output), code))
        results = run.workDir / "results"
        self.workDirs.append(run.workDir)
        if any(node is not None and node.GetScene() is None for node in (run.ct, run.pet)):
            raise LNStagingError(f"The scene was closed (or the CT or PET removed) during the analysis. The results "
                                 f"are in {results}: load the CT and PET again, then open that folder with "
                                 "Load results folder...")
        try:
            return self.loadResults(results, run.ct, run.pet, progress=progress)
        except Cancelled:
            raise Cancelled(f"Cancelled: the results were not shown. They are in {results} (Load results "
                            "folder... shows them).") from None

    def runBlocking(self, ctNode, petNode, modelId=None, device="cpu", onLine: Callable[[str], None] = print):
        """For the self-test and scripts: run and wait, forwarding output lines."""
        self.startAnalysis(ctNode, petNode, modelId=modelId, device=device)
        while not self.analysisFinished:
            for line in self.pollAnalysis():
                onLine(line)
            slicer.app.processEvents()
            time.sleep(0.05)
        for line in self.pollAnalysis():
            onLine(line)
        return self.finishAnalysis()

    def cleanup(self) -> None:
        """Module closed or reloaded: stop a run, forget the scene, remove the temporary folders."""
        if self.run is not None:
            self.run.cancel()
            if self.run.child is not None:
                self.run.child.kill()
            shutil.rmtree(self.run.workDir, ignore_errors=True)
            self.run = None
        self.stopObservingScene()
        for folder in self.workDirs:
            shutil.rmtree(folder, ignore_errors=True)
        self.workDirs = []

    # ---- review -----------------------------------------------------------------------------------------------
    def loadResults(self, folder, ctNode, petNode=None, froc=(), progress: Optional[Progress] = None) -> ReviewScene:
        """Results of a run (or a saved review) into the scene, over the given CT/PET. The review on screen is
        replaced only once the new one is built: a folder that fails to load, or Cancel on ``progress``, leaves it
        as it was. The files are read and the re-scoring CNN runs in a worker thread; the nodes are built here
        (MRML: the GUI thread), with ``progress`` told before each. A PET-only run's results are shown on the PET
        (``ctNode`` None), which becomes the background (volumes.mark_pet_background)."""
        folder = Path(folder)
        petOnly = case_inputs.is_pet_only_run(folder)
        self.checkReviewInputs(petOnly, ctNode, petNode)
        progress = progress or Progress()
        scene = (petNode if petOnly else ctNode).GetScene()
        saved = (folder / review_state.REVIEW_FILE).is_file()
        read = review_state.read_saved_review if saved else Results.read
        loaded = background.inWorkerThread(lambda _: read(folder), progress.sub(0.0, 0.3), "reading the results")
        if petNode is not None:
            petNode = self.suvPetNode(petNode)  # a DICOM PET is reviewed in SUV, as after Apply
        if petOnly:
            if not same_grid(volumes.image_from_volume(petNode), loaded[0].gtv_ln if saved else loaded.gtv_ln):
                raise LNStagingError(f"The selected PET is not on the grid of the PET-only run in {folder}: select "
                                     "the PET it was run on, then load it.")
            ctNode = volumes.mark_pet_background(petNode)  # shown by ReviewScene as the background, SUV in grey
        before = {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}
        building = progress.sub(0.3, 0.6)
        try:
            if saved:
                review = review_state.restore_review(scene, folder, ctNode, petNode, loaded, building)
            else:
                review = ReviewScene.show(scene, loaded, ctNode, petNode, froc=froc or self.validationFroc(loaded),
                                          progress=building)
            rescorer, note = self._rescorerFor(review, progress.sub(0.6, 1.0))
        except BaseException:
            for node in addedNodes(scene, before):
                scene.RemoveNode(node)
            raise
        for node in [n for n in reviewNodes(scene) if n.GetID() in before]:  # the previous review's nodes
            scene.RemoveNode(node)
        self.review, self.resultsFolder = review, folder
        self._placeBesideCt(review.ct)
        self._useRescorer(rescorer)
        self.rescoreNote = note
        return self.review

    @staticmethod
    def checkReviewInputs(petOnly: bool, ctNode, petNode) -> None:
        """The volumes a results folder is shown on: the planning CT for a PET/CT run, the PET alone (no CT) for a
        PET-only run, whose nodes are on the PET's grid."""
        if petOnly:
            if petNode is None or petNode.GetScene() is None:
                raise LNStagingError("These results are of a PET-only run (no CT): select the PET it was run on, "
                                     "then load them.")
            if ctNode is not None:
                raise LNStagingError("These results are of a PET-only run (no CT): their nodes are on the PET's grid; "
                                     "set the CT to None and select the PET it was run on, then load them.")
        elif ctNode is None or ctNode.GetScene() is None:
            raise LNStagingError("Select the planning CT the results were computed on, then load them.")

    def whatRan(self) -> list[str]:
        """The module's status of the review on screen, from its Results (the lines of the CLI summary): how the
        candidates are ranked, each model applied or not and why, each step run or skipped."""
        results = self.requireReview("describe").results
        first = f"{len(results.candidates)} candidates, {results.ranking_text}"
        if self.review.pet_only:
            first += "; PET-only run (no CT): shown on the PET"
        return [first + "."] + results.what_ran()

    def thresholdControl(self) -> dict:
        """The operating-point slider for the review on screen, in the run's ranking basis, with the browser
        review's range (web/page_text.threshold_range): a probability (0 to 1; FP per patient when the classifier's
        FROC exists), or an SUVpeak (0 to the highest candidate's, rounded up) when no classifier ran."""
        from LNStagingLib.web.page_text import threshold_range

        review = self.requireReview("show")
        _, maximum, step = threshold_range(review.results)
        if review.results.ranks_by_probability:
            return {"label": "Probability threshold:", "maximum": maximum, "step": step, "decimals": 2,
                    "fpAvailable": bool(review.froc)}
        return {"label": "SUVpeak threshold:", "maximum": min(maximum, SUV_THRESHOLD_MAX), "step": step,
                "decimals": 1, "fpAvailable": False}

    def validationFroc(self, results) -> list:
        """(fp_per_patient, threshold) pairs of the classifier's validation FROC: from the run's provenance
        ("froc"), else from the catalogue entry's metrics["froc"] of the classifier the run applied (none when no
        classifier ran: a FROC figure belongs only to the model that produced the probabilities)."""
        if results.provenance.get("froc"):
            return [tuple(p) for p in results.provenance["froc"]]
        classifier = results.applied_models().get("cls")
        if classifier is None:
            return []
        try:
            catalogue = self.catalogue()
        except (LNStagingError, ImportError, OSError):
            return []
        entry = catalogue.entries.get(classifier.get("id", ""))
        if entry is not None and entry.metrics.get("froc"):
            return [tuple(p) for p in entry.metrics["froc"]]
        return []

    def _placeBesideCt(self, ctNode) -> None:
        """The new nodes under the CT's study in the subject hierarchy and under the CT's parent transform: the
        results are in the CT's own frame (the inputs were written in it), so they move with the CT."""
        hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(ctNode.GetScene())
        parent = hierarchy.GetItemParent(rt_export.subject_item(hierarchy, ctNode))
        transformId = ctNode.GetTransformNodeID()
        for node in (self.review.attention, self.review.segmentation, self.review.table, self.review.markups):
            if node is None:
                continue
            hierarchy.SetItemParent(rt_export.subject_item(hierarchy, node), parent)
            if node.IsA("vtkMRMLTransformableNode"):
                node.SetAndObserveTransformNodeID(transformId)

    # ---- re-scoring from decisions (issue 19) -------------------------------------------------------------------
    def rescoreModelIds(self) -> list[str]:
        """The catalogue's cls models trained with the review state as input; empty (never an exception)."""
        try:
            return self.catalogue().rescore_model_ids()
        except (LNStagingError, ImportError, OSError) as error:
            logging.warning(f"LNStaging: the re-scoring models could not be listed ({error})")
            return []

    def setRescoreModel(self, model: str, progress: Optional[Progress] = None) -> str:
        """Re-score with ``model`` ("" none, a catalogue id, or a weights file) on the review on screen and on every
        review loaded later. A model that cannot re-score raises LNStagingError and leaves the originals shown;
        Cancel on ``progress`` (during the CNN pass) leaves the previous choice and the review as they were.
        Returns the status line."""
        previous, self.rescoreModel = self.rescoreModel, str(model or "")
        if self.review is None:
            return self.rescoringStatus()
        try:
            rescorer, note = self._rescorerFor(self.review, progress, failure="raise")
        except Cancelled:
            self.rescoreModel = previous
            raise
        except LNStagingError:
            self.rescoreModel, self.rescoreNote = "", ""
            self._useRescorer(None)
            raise
        self._useRescorer(rescorer)
        self.rescoreNote = note
        return self.rescoringStatus()

    def setRescoring(self, enabled: bool) -> str:
        """Switch re-scoring on or off (off: every candidate shows its original probability). Returns the status."""
        self.rescoringEnabled = bool(enabled)
        if self.review is not None and self.review.rescorer is not None:
            self.review.set_rescoring(self.rescoringEnabled)
        return self.rescoringStatus()

    def rescoringStatus(self) -> str:
        """One line for the panel and the status bar: what the decisions moved, or why nothing is re-scored."""
        if self.review is None:
            return ""
        if self.rescoreNote:
            return self.rescoreNote
        if self.review.rescorer is None:
            return "" if not self.rescoreModel else "Re-scoring model chosen: it applies to the next review."
        return self.review.rescoring_status()

    def _rescorerFor(self, review: ReviewScene, progress: Optional[Progress] = None, failure: str = "note"):
        """(rescorer or None, note) for ``review`` from the chosen model. The CT/PET images are read from the scene
        here; the CNN pass over the candidates runs in a worker thread while ``progress`` is drawn (Cancel:
        Cancelled, nothing changed). A model that cannot re-score (missing or broken PyTorch included) is raised
        as LNStagingError with failure="raise", else returned as the note "Re-scoring is off ...". """
        if not self.rescoreModel:
            return None, ""
        if review.pet_only:
            if failure == "raise":
                raise LNStagingError(PET_ONLY_RESCORING)
            return None, PET_ONLY_RESCORING
        from LNStagingLib.models.catalogue import resolve_model_file

        try:
            path, sha256 = resolve_model_file(self.rescoreModel, "cls")
            name = self.rescoreModel if sha256 is not None else path.name
            ct, pet = review.rescoring_images()

            def cnnPass(_):
                from LNStagingLib.inference.rescore import rescorer_from_checkpoint

                return rescorer_from_checkpoint(path, review.results, ct, pet, sha256, name, self.rescoringEnabled)

            return background.inWorkerThread(cnnPass, progress, "re-scoring: CNN pass over the candidates"), ""
        except Cancelled:
            raise
        except (ImportError, OSError, LNStagingError) as error:
            if isinstance(error, (ImportError, OSError)):  # torch or one of its libraries failed to load
                error = LNStagingError(f"PyTorch cannot be loaded ({type(error).__name__}: {error}).")
            if failure == "raise":
                raise error from None
            return None, f"Re-scoring is off for this review: {error}"

    def _useRescorer(self, rescorer) -> None:
        """Show the review re-scored by ``rescorer``, or (None) with its original probabilities."""
        if self.review is None:
            return
        if rescorer is None:
            self.review.stop_rescoring()
        else:
            self.review.use_rescorer(rescorer)

    def saveReview(self, folder, progress: Optional[Progress] = None) -> Path:
        """The review folder; the contour edits are read back first, told to ``progress`` (Cancel: nothing written,
        nothing changed)."""
        return review_state.save_review(self.requireReview("save"), folder, progress=progress)

    def writeReport(self, resultsFolder=None, progress: Optional[Progress] = None) -> Path:
        """The one-page reviewed report (the same library function as the browser review and `lnstaging report`):
        the review is saved into RESULTS/review/ first, then report.html is written there from it."""
        self.requireReview("report")
        resultsFolder = resultsFolder or self.resultsFolder
        if not resultsFolder:
            raise LNStagingError("Choose the results folder of this case for the report.")
        return review_state.write_review_report(self.review, resultsFolder, progress=progress)

    def pendingNodeNames(self) -> list[str]:
        """Unreviewed nodes, for the widget's confirmation before they are included in an export."""
        return rt_export.pending_names(self.requireReview("export").results)

    def exportProblem(self) -> str:
        """Why Export is disabled for the review on screen ("" when it can run): a PET-only run has no planning CT
        for an RTSTRUCT, and a SEG needs the PET's own DICOM files (petDicomOrigin)."""
        if self.reviewAvailable and self.review.pet_only and self.petDicomOrigin() is None:
            return PET_ONLY_EXPORT
        return ""

    def petDicomOrigin(self):
        """The DICOM series a PET-only review's PET was loaded from (its SUV copy: the Bq/ml node's), when the DICOM
        database can give its files; else None."""
        pet = self.review.ct
        scene = pet.GetScene()
        source = scene.GetNodeByID(pet.GetAttribute(SUV_OF_ATTRIBUTE)) if pet.GetAttribute(SUV_OF_ATTRIBUTE) else pet
        origin = dicom_source.dicom_origin(scene, source) if source is not None else None
        return origin if origin is not None and dicomDatabase() is not None else None

    def exportRoute(self) -> str:
        """How Export writes the RTSTRUCT: "dicom" (the library's writer on the CT's own DICOM files, found in the
        DICOM database: it attaches to the planning CT), "slicerrt" (the CT did not come from DICOM: SlicerRT
        writes its own CT series with it) or "folder" (neither: the user gives the CT's DICOM folder). A PET-only
        review: "petseg" (a DICOM SEG on the PET's own DICOM series, as `lnstaging export seg --results`), or refused
        (exportProblem)."""
        review = self.requireReview("export")
        problem = self.exportProblem()
        if problem:
            raise ExportError(problem)
        if review.pet_only:
            return "petseg"
        if dicom_source.dicom_origin(review.ct.GetScene(), review.ct) is not None and dicomDatabase() is not None:
            return "dicom"
        if hasattr(slicer.modules, "dicomrtimportexport"):
            return "slicerrt"
        return "folder"

    def export(self, outFolder, ctDicomFolder: Optional[str] = None, includePending: bool = False,
               progress: Optional[Progress] = None) -> str:
        """RTSTRUCT of the reviewed nodes (accepted; pending too only with includePending; never rejected); a
        PET-only review: a DICOM SEG on the PET's DICOM series. Returns what was written, for the widget's message. ``progress`` (the library's) is told how far the
        writer is and can cancel it (Cancelled; the file is written atomically, so nothing is left)."""
        review = self.requireReview("export")
        route = self.exportRoute()
        progress = progress or Progress()
        review.read_edits(progress=progress.sub(0.0, 0.3))
        progress = progress.sub(0.3, 1.0)
        results = review.results
        rescored = rescore_summary(results)  # the probabilities were re-scored from the decisions: say so
        tail = f"\n{rescored}" if rescored else ""
        if route == "slicerrt":
            import DicomRtImportExportPlugin

            plugin = DicomRtImportExportPlugin.DicomRtImportExportPluginClass()
            names = rt_export.export_with_slicerrt(review.ct.GetScene(), review, outFolder, plugin, includePending)
            return (f"{outFolder} ({len(names)} ROIs: {', '.join(names)}). The CT was not loaded from DICOM, so "
                    "SlicerRT wrote a new CT series with the RTSTRUCT: import both into the planning system." + tail)
        seriesUid, kind = None, "seg" if route == "petseg" else "rtstruct"
        if route in ("dicom", "petseg"):
            origin = self.petDicomOrigin() if route == "petseg" else dicom_source.dicom_origin(review.ct.GetScene(),
                                                                                                review.ct)
            ctDicom = dicom_source.series_files(origin, dicomDatabase(), what="PET" if route == "petseg" else "CT")
            seriesUid = origin.series_instance_uid
        elif ctDicomFolder:
            ctDicom = ctDicomFolder
        else:
            raise ExportError("The CT was not loaded from DICOM and SlicerRT is not installed: give the CT's DICOM "
                              "folder so the RTSTRUCT can reference it.")
        from LNStagingLib.export.exporter import export_label_map

        name = "SEG_LNStaging.dcm" if kind == "seg" else "RS_LNStaging.dcm"
        summary = export_label_map(results.gtv_ln, ctDicom, Path(outFolder) / name, kind=kind,
                                   candidates=results.candidates, series_uid=seriesUid, resample=True,
                                   progress=progress,
                                   rescored_ids=set(rescored_changes(results)),
                                   **rt_export.review_rule_kwargs(export_label_map, includePending))
        return "\n".join(summary.lines()) + tail

    # ---- dependencies -----------------------------------------------------------------------------------------
    @staticmethod
    def missingDependencies() -> list[str]:
        from . import dependencies

        missing = dependencies.missing(dependencies.read_requirements())
        try:
            import torch  # noqa: F401
        except gpu.BROKEN_TORCH:
            missing.append("torch (PyTorch extension)")
        return missing

    @staticmethod
    def installDependencies() -> bool:
        """Install what is missing (the widget asked the user first). True when the caller should offer a restart
        (Slicer 5.12's pip_ensure asks about restarting itself)."""
        from . import dependencies

        restart = False
        try:
            import torch  # noqa: F401
        except gpu.BROKEN_TORCH:
            import PyTorchUtils

            if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False) is None:
                raise LNStagingError("PyTorch could not be installed: install it from the PyTorch module, then retry.")
            restart = True
        todo = dependencies.missing(dependencies.read_requirements())
        if todo:
            restart = dependencies.install(todo) or restart
        return restart


def reviewNodes(scene) -> list:
    nodes = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]
    return [n for n in nodes if n is not None and n.GetAttribute(ROLE_ATTRIBUTE)]


def addedNodes(scene, before: set) -> list:
    nodes = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]
    return [n for n in nodes if n is not None and n.GetID() not in before]


def resampleOntoNode(image: sitk.Image, node) -> sitk.Image:
    """``image`` (same physical space as ``node``'s own frame) on exactly the node's voxel grid: a DICOM series
    read by the library and by Slicer's DICOM module is one grid, possibly with the slice order reversed."""
    reference = volumes.image_from_volume(node)
    return sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0.0, sitk.sitkFloat32)


def exportCopy(node, path: Path) -> None:
    """Write a node to a file for the child process without touching the node's storage node (saveNode would
    re-point the user's own storage node, and so the next Save, at our temporary folder)."""
    if not slicer.util.exportNode(node, str(path)):
        raise LNStagingError(f"{node.GetName()} could not be written to {path.parent}: check the free disk space.")


def vtkModifiedEvent():
    return vtk.vtkCommand.ModifiedEvent
