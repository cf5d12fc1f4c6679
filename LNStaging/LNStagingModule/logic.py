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

from LNStagingLib.errors import LNStagingError, ModelError
from LNStagingLib.results import Results
from LNStagingLib.scene import review_state, volumes
from LNStagingLib.scene.review import ReviewScene

from . import process


def python_slicer() -> str:
    """The PythonSlicer launcher (Slicer's Python with Slicer's environment)."""
    return shutil.which("PythonSlicer") or sys.executable


class LNStagingLogic(ScriptedLoadableModuleLogic):
    def __init__(self):
        super().__init__()
        self.child: Optional[process.ChildProcess] = None
        self.workDir: Optional[Path] = None
        self.review: Optional[ReviewScene] = None

    # ---- models ---------------------------------------------------------------------------------------------
    @staticmethod
    def catalogue():
        from LNStagingLib.models.catalogue import Catalogue

        return Catalogue.read()

    def modelIds(self) -> list[str]:
        try:
            return sorted(self.catalogue().entries)
        except ModelError:
            return []

    def importWeights(self, path: str, modelId: str) -> Path:
        return self.catalogue().import_weights(path, modelId)

    @staticmethod
    def cudaAvailable() -> bool:
        try:
            import torch

            return bool(torch.cuda.is_available())
        except ImportError:
            return False

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
        slicer.util.saveNode(ctNode, str(files["ct"]))
        slicer.util.saveNode(petNode, str(files["pet"]))
        if organsNode is not None:
            files["organs"] = self.workDir / "organs.seg.nrrd"
            slicer.util.saveNode(organsNode, str(files["organs"]))
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
            slicer.util.saveNode(labelmap, str(path))
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
        if (folder / review_state.REVIEW_FILE).is_file():
            self.review = review_state.restore_review(slicer.mrmlScene, folder, ctNode, petNode)
        else:
            results = Results.read(folder)
            self.review = ReviewScene.show(slicer.mrmlScene, results, ctNode, petNode,
                                           froc=froc or self.validationFroc(results))
        self._placeUnderStudy(ctNode)
        return self.review

    def validationFroc(self, results) -> list:
        """(fp_per_patient, threshold) pairs of the classifier's validation FROC: from the run's provenance
        ("froc"), else from the catalogue entry's metrics["froc"] of a model named in provenance["models"]."""
        if results.provenance.get("froc"):
            return [tuple(p) for p in results.provenance["froc"]]
        try:
            catalogue = self.catalogue()
        except ModelError:
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

    def saveReview(self, folder) -> Path:
        return review_state.save_review(self.review, folder)

    def export(self, outFolder, ctDicomFolder: Optional[str] = None) -> str:
        """RTSTRUCT of the reviewed nodes: SlicerRT's exporter when installed, else the library's exporter."""
        self.review.read_edits()
        if hasattr(slicer.modules, "dicomrtimportexport"):
            return self._exportWithSlicerRT(outFolder)
        if not ctDicomFolder:
            raise LNStagingError("SlicerRT is not installed: give the CT's DICOM folder so the RTSTRUCT can reference it.")
        from LNStagingLib.export.exporter import export_label_map

        out = Path(outFolder) / "RS_LNStaging.dcm"
        export_label_map(self.review.results.gtv_ln, ctDicomFolder, out, kind="rtstruct",
                         candidates=self.review.results.candidates)
        return str(out)

    def _exportWithSlicerRT(self, outFolder) -> str:
        """Pass only the CT and the segmentation (with rejected candidates removed) to SlicerRT's plugin."""
        import DicomRtImportExportPlugin

        segmentation = self.review.segmentation
        rejected = [c.name for c in self.review.results.candidates if c.review == "rejected"]
        exportNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "GTVn")
        exportNode.Copy(segmentation)
        for name in rejected:
            exportNode.GetSegmentation().RemoveSegment(name)
        hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
        study = hierarchy.GetItemParent(hierarchy.GetItemByDataNode(self.review.ct))
        hierarchy.SetItemParent(hierarchy.GetItemByDataNode(exportNode), study)
        try:
            plugin = DicomRtImportExportPlugin.DicomRtImportExportPluginClass()
            exportables = plugin.examineForExport(hierarchy.GetItemByDataNode(exportNode))
            if not exportables:
                raise LNStagingError("SlicerRT cannot export this segmentation: load the CT from DICOM first.")
            for exportable in exportables:
                exportable.directory = str(outFolder)
            message = plugin.export(exportables)
            if message:
                raise LNStagingError(f"SlicerRT export failed: {message}")
        finally:
            slicer.mrmlScene.RemoveNode(exportNode)
        return str(outFolder)

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
    def installDependencies() -> None:
        """Install what is missing; the widget asked the user first."""
        from . import dependencies

        try:
            import torch  # noqa: F401
        except ImportError:
            import PyTorchUtils

            if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False) is None:
                raise LNStagingError("PyTorch could not be installed: install it from the PyTorch module, then retry.")
        todo = dependencies.missing(dependencies.read_requirements())
        if todo:
            dependencies.install(todo)
