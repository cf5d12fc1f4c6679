"""LNStagingLogic: runs the analysis in a child process and puts results into the scene. No GUI dialogs here
(they break headless use and tests): problems are raised as LNStagingError with a message the widget shows."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Optional

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

from LNStagingLib.errors import ExportError, LNStagingError
from LNStagingLib.inference.rescore_record import rescore_summary, rescored_changes
from LNStagingLib.results import Results
from LNStagingLib.scene import review_state, rt_export
from LNStagingLib.scene.review import ReviewScene, remove_review_nodes

from . import gpu, process


def python_slicer() -> str:
    """The PythonSlicer launcher (Slicer's Python with Slicer's environment)."""
    return shutil.which("PythonSlicer") or sys.executable


class LNStagingLogic(ScriptedLoadableModuleLogic):
    def __init__(self):
        super().__init__()
        self.child: Optional[process.ChildProcess] = None
        self.workDir: Optional[Path] = None
        self.review: Optional[ReviewScene] = None
        self.rescoreModel = ""  # re-scoring model (issue 19): "" none, a catalogue id or a weights file
        self.rescoringEnabled = True
        self.rescoreNote = ""  # why re-scoring is off for the review on screen, when it could not start

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
            import logging

            logging.warning(f"LNStaging: the model catalogue could not be read ({error})")
            return []

    def importWeights(self, path: str, modelId: str) -> Path:
        return self.catalogue().import_weights(path, modelId)

    @staticmethod
    def cudaAvailable() -> bool:
        return gpu.torch_cuda_available()

    @staticmethod
    def gpuDescription() -> str:
        """One line for the panel: the CUDA device and its memory, or why there is none."""
        return gpu.describe()

    # ---- running ----------------------------------------------------------------------------------------------
    def modelsSpec(self, modelId: Optional[str]) -> str:
        """The CLI's --models spec for a model chosen in the list ('default' when none is chosen)."""
        if not modelId:
            return "default"
        entry = self.catalogue().get(modelId)
        return f"{entry.task}={entry.id}"

    def writeInputs(self, ctNode, petNode, organsNode=None, tumourSegmentation=None, tumourSegmentId="") -> dict:
        """Save the input nodes in a fresh work folder for the child process: CT/PET as NRRD, the organ
        segmentation as .seg.nrrd (the CLI maps it by segment name), the tumour segment as a label map."""
        self.workDir = Path(tempfile.mkdtemp(prefix="LNStaging-"))
        files = {"ct": self.workDir / "ct.nrrd", "pet": self.workDir / "pet.nrrd"}
        exportCopy(ctNode, files["ct"])
        exportCopy(petNode, files["pet"])
        if organsNode is not None:
            files["organs"] = self.workDir / "organs.seg.nrrd"
            exportCopy(organsNode, files["organs"])
        if tumourSegmentation is not None and tumourSegmentId:
            files["tumor"] = self._exportSegmentLabelmap(tumourSegmentation, tumourSegmentId, ctNode, "tumor")
        return files

    def _exportSegmentLabelmap(self, segmentationNode, segmentId, ctNode, name) -> Path:
        """One segment as a 0/1 label map on the CT grid."""
        labelmap = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", f"LNStaging_{name}")
        try:
            slicer.modules.segmentations.logic().ExportSegmentsToLabelmapNode(
                segmentationNode, [segmentId], labelmap, ctNode)
            path = self.workDir / f"{name}.nrrd"
            exportCopy(labelmap, path)
            return path
        finally:
            slicer.mrmlScene.RemoveNode(labelmap)

    def startRun(self, files: dict, modelId: Optional[str], device: str) -> process.ChildProcess:
        out = self.workDir / "results"
        argv = process.run_argv(python_slicer(), out, files["ct"], files["pet"], files.get("organs"),
                                files.get("tumor"), self.modelsSpec(modelId), device, organ_mapping="slicer")
        self.child = process.ChildProcess(argv, env=process.child_environment())
        return self.child

    def finishRun(self) -> Path:
        """After the child ended: the results folder, or LNStagingError with the reason."""
        child, self.child = self.child, None
        code = child.wait()
        try:
            (self.workDir / "lnstaging.log").write_text("\n".join(child.output) + "\n")
        except OSError:
            pass  # the log is a convenience; the results decide success
        if child.cancelled or code != 0:
            raise LNStagingError(process.failure_message("\n".join(child.output), code if not child.cancelled else 130))
        return self.workDir / "results"

    def cancel(self) -> None:
        if self.child is not None:
            self.child.cancel()

    def runBlocking(self, ctNode, petNode, modelId=None, device="cpu", onLine: Callable[[str], None] = print) -> Path:
        """For the self-test and scripts: run and wait, forwarding output lines."""
        self.startRun(self.writeInputs(ctNode, petNode), modelId, device)
        while self.child.returncode is None:
            for line in self.child.poll():
                onLine(line)
            slicer.app.processEvents()
        return self.finishRun()

    # ---- review -----------------------------------------------------------------------------------------------
    def loadResults(self, folder, ctNode, petNode=None, froc=()) -> ReviewScene:
        """Results of a run (or a saved review) into the scene, over the given CT/PET."""
        folder = Path(folder)
        self.review = None
        remove_review_nodes(slicer.mrmlScene)  # Apply or Load again replaces the previous review's nodes
        if (folder / review_state.REVIEW_FILE).is_file():
            self.review = review_state.restore_review(slicer.mrmlScene, folder, ctNode, petNode)
        else:
            results = Results.read(folder)
            self.review = ReviewScene.show(slicer.mrmlScene, results, ctNode, petNode,
                                           froc=froc or self.validationFroc(results))
        self._placeUnderStudy(ctNode)
        try:
            self._applyRescoreModel()
        except LNStagingError as error:  # the review stays usable, with its original probabilities
            self.rescoreNote = f"Re-scoring is off for this review: {error}"
        return self.review

    def validationFroc(self, results) -> list:
        """(fp_per_patient, threshold) pairs of the classifier's validation FROC: from the run's provenance
        ("froc"), else from the catalogue entry's metrics["froc"] of a model named in provenance["models"]."""
        if results.provenance.get("froc"):
            return [tuple(p) for p in results.provenance["froc"]]
        try:
            catalogue = self.catalogue()
        except LNStagingError:
            return []
        for modelId in results.provenance.get("models", {}) or {}:
            entry = catalogue.entries.get(modelId)
            if entry is not None and entry.metrics.get("froc"):
                return [tuple(p) for p in entry.metrics["froc"]]
        return []

    def _placeUnderStudy(self, ctNode) -> None:
        """Put the new nodes beside the CT in the subject hierarchy (under its study)."""
        hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
        parent = hierarchy.GetItemParent(hierarchy.GetItemByDataNode(ctNode))
        for node in (self.review.attention, self.review.segmentation, self.review.table, self.review.markups):
            if node is not None:
                hierarchy.SetItemParent(hierarchy.GetItemByDataNode(node), parent)

    # ---- re-scoring from decisions (issue 19) -------------------------------------------------------------------
    def rescoreModelIds(self) -> list[str]:
        """The catalogue's cls models trained with the review state as input; empty (never an exception)."""
        try:
            return self.catalogue().rescore_model_ids()
        except (LNStagingError, ImportError, OSError) as error:
            import logging

            logging.warning(f"LNStaging: the re-scoring models could not be listed ({error})")
            return []

    def setRescoreModel(self, model: str) -> str:
        """Re-score with ``model`` ("" none, a catalogue id, or a weights file) on the review on screen and on every
        review loaded later. A model that cannot re-score raises LNStagingError and leaves the originals shown.
        Returns the status line."""
        self.rescoreModel = str(model or "")
        try:
            self._applyRescoreModel()
        except LNStagingError:
            self.rescoreModel = ""
            raise
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

    def _applyRescoreModel(self) -> None:
        """(Re)build the review's rescorer from the chosen model (the CNN runs once over the candidates); with no
        model, show the original probabilities."""
        self.rescoreNote = ""
        if self.review is None:
            return
        if not self.rescoreModel:
            self.review.stop_rescoring()
            return
        from LNStagingLib.models.catalogue import resolve_model_file

        try:
            path, sha256 = resolve_model_file(self.rescoreModel, "cls")
            name = self.rescoreModel if sha256 is not None else path.name
            self.review.start_rescoring(path, sha256, name, enabled=self.rescoringEnabled)
        except LNStagingError:
            self.review.stop_rescoring()
            raise

    def saveReview(self, folder) -> Path:
        return review_state.save_review(self.review, folder)

    def writeReport(self, resultsFolder) -> Path:
        """The one-page reviewed report (the same library function as the browser review and `lnstaging report`):
        the review is saved into RESULTS/review/ first, then report.html is written there from it."""
        if self.review is None:
            raise LNStagingError("Load or compute results first: there is nothing to report.")
        return review_state.write_review_report(self.review, resultsFolder)

    def pendingNodeNames(self) -> list[str]:
        """Unreviewed nodes, for the widget's confirmation before they are included in an export."""
        return rt_export.pending_names(self.review.results)

    def export(self, outFolder, ctDicomFolder: Optional[str] = None, includePending: bool = False) -> str:
        """RTSTRUCT of the reviewed nodes (accepted; pending too only with includePending; never rejected):
        SlicerRT's exporter when installed, else the library's exporter against the CT's DICOM folder."""
        if self.review is None:
            raise ExportError("Load or compute results first: there is nothing to export.")
        self.review.read_edits()
        results = self.review.results
        rescored = rescore_summary(results)  # the probabilities were re-scored from the decisions: say so
        if hasattr(slicer.modules, "dicomrtimportexport"):
            import DicomRtImportExportPlugin

            plugin = DicomRtImportExportPlugin.DicomRtImportExportPluginClass()
            names = rt_export.export_with_slicerrt(slicer.mrmlScene, self.review, outFolder, plugin, includePending)
            return f"{outFolder} ({len(names)} ROIs: {', '.join(names)})" + (f"\n{rescored}" if rescored else "")
        if not ctDicomFolder:
            raise ExportError("SlicerRT is not installed: give the CT's DICOM folder so the RTSTRUCT can reference it.")
        from LNStagingLib.export.exporter import export_label_map

        out = Path(outFolder) / "RS_LNStaging.dcm"
        export_label_map(results.gtv_ln, ctDicomFolder, out, kind="rtstruct", candidates=results.candidates,
                         rescored_ids=set(rescored_changes(results)),
                         **rt_export.review_rule_kwargs(export_label_map, includePending))
        return str(out) + (f"\n{rescored}" if rescored else "")

    # ---- dependencies -----------------------------------------------------------------------------------------
    @staticmethod
    def missingDependencies() -> list[str]:
        from . import dependencies

        missing = dependencies.missing(dependencies.read_requirements())
        try:
            import torch  # noqa: F401
        except ImportError:
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
        except ImportError:
            import PyTorchUtils

            if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False) is None:
                raise LNStagingError("PyTorch could not be installed: install it from the PyTorch module, then retry.")
            restart = True
        todo = dependencies.missing(dependencies.read_requirements())
        if todo:
            restart = dependencies.install(todo) or restart
        return restart


def exportCopy(node, path: Path) -> None:
    """Write a node to a file for the child process without touching the node's storage node (saveNode would
    re-point the user's own storage node, and so the next Save, at our temporary folder)."""
    if not slicer.util.exportNode(node, str(path)):
        raise LNStagingError(f"{node.GetName()} could not be written to {path.parent}: check the free disk space.")
