"""LNStagingWidget: a thin binding. It connects Qt signals to LNStagingLogic (which holds every flow and is tested
on slicer-core), shows what the logic returns and one dialog for what it raises. Dialogs live here, not in the
logic."""

from __future__ import annotations

import contextlib
import logging
import traceback

import qt
import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

from LNStagingLib.errors import Cancelled, LNStagingError
from LNStagingLib.scene import table

from . import process, reload
from .logic import LNStagingLogic, vtkModifiedEvent
from .parameters import LNStagingParameterNode

OPERATING_MODES = ("Probability threshold", "FP per patient")
OVERLAYS = (("PET", "pet"), ("Attention map", "attention"), ("None", "none"))
SHORTCUTS = (("Alt+A", "onAccept"), ("Alt+R", "onReject"), ("Alt+N", "onNext"), ("Alt+P", "onPrevious"))
SEGMENT_EDITOR_TAG = "LNStaging"  # singleton tag of the embedded Segment Editor's parameter node
SETTINGS = "LNStaging/"  # QSettings keys: device, model, folders/<purpose>


def settingValue(key, default=""):
    value = qt.QSettings().value(SETTINGS + key)
    return default if value is None else str(value)


def setSetting(key, value):
    qt.QSettings().setValue(SETTINGS + key, value)


@contextlib.contextmanager
def reportErrors(context):
    """One dialog per failure, never a re-raise (slicer.util.tryWithErrorDisplay re-raises: a second dialog or a
    console traceback). A user mistake (LNStagingError) is one sentence; anything else also gets the traceback in
    the dialog's details and the log."""
    try:
        with slicer.util.WaitCursor():
            yield
    except LNStagingError as error:
        slicer.util.errorDisplay(f"{context}\n\n{error}")
    except Exception as error:  # a bug: show it, keep Slicer running
        logging.exception(context)
        slicer.util.errorDisplay(f"{context}\n\n{type(error).__name__}: {error}", detailedText=traceback.format_exc())


@contextlib.contextmanager
def progressDialog(title):
    """A library Progress drawn in Slicer's progress dialog; its Cancel button cancels the step."""
    from LNStagingLib.progress import Progress

    # window-modal: the panel cannot change the review while a worker thread reads it; no auto close/reset at 100 %
    # (a flow reports several phases)
    dialog = slicer.util.createProgressDialog(windowTitle=f"LNStaging - {title}", labelText=title, maximum=100,
                                              windowModality=qt.Qt.WindowModal, autoClose=False, autoReset=False)
    progress = Progress()

    def update(fraction, message):
        if dialog.wasCanceled:
            progress.cancel()
        dialog.value = int(fraction * 100)
        dialog.labelText = message or title
        slicer.app.processEvents()

    progress.callback = update
    try:
        yield progress
    finally:
        dialog.close()


def withProgress(title, context, call):
    """``call(progress)`` under a progress dialog: its result, or None after Cancel (a status line, never a dialog)
    or a failure (one dialog, see reportErrors)."""
    with reportErrors(context):
        with progressDialog(title) as progress:
            try:
                return call(progress)
            except Cancelled as cancelled:
                slicer.util.showStatusMessage(str(cancelled), 5000)
    return None


class LNStagingWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._guiConnection = None
        self._timer = qt.QTimer()
        self._timer.setInterval(200)
        self._timer.connect("timeout()", self.onPoll)
        self._shortcuts = []

    # ---- set-up -----------------------------------------------------------------------------------------------
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/LNStaging.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        # restored after a PET-only review (Export disabled, or "Export SEG..." on the PET's DICOM series)
        self._exportText, self._exportToolTip = self.ui.exportButton.text, self.ui.exportButton.toolTip
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = LNStagingLogic()

        self.ui.modelComboBox.addItem("Default models (catalogue)", "")
        for modelId in self.logic.modelIds():  # never raises: the panel builds before torch is installed
            self.ui.modelComboBox.addItem(modelId, modelId)
        self.ui.deviceComboBox.addItem("CPU", "cpu")
        self.ui.deviceComboBox.addItem("GPU (CUDA)", "cuda")
        self._selectComboData(self.ui.modelComboBox, settingValue("model"))
        self._selectComboData(self.ui.deviceComboBox, settingValue("device", "cpu"))
        self.ui.gpuLabel.text = self.logic.gpuDescription()
        self.ui.operatingModeComboBox.addItems(list(OPERATING_MODES))
        for text, key in OVERLAYS:
            self.ui.overlayComboBox.addItem(text, key)
        self._selectSegmentEditorNode()

        self.ui.modelComboBox.connect("currentIndexChanged(int)",
                                      lambda i: setSetting("model", self.ui.modelComboBox.currentData or ""))
        self.ui.deviceComboBox.connect("currentIndexChanged(int)",
                                       lambda i: setSetting("device", self.ui.deviceComboBox.currentData))
        self.ui.applyButton.connect("clicked(bool)", self.onApply)
        self.ui.importWeightsButton.connect("clicked(bool)", self.onImportWeights)
        self.ui.loadResultsButton.connect("clicked(bool)", self.onLoadResults)
        self.ui.candidateTableView.connect("selectionChanged()", self.onTableSelection)
        self.ui.acceptButton.connect("clicked(bool)", self.onAccept)
        self.ui.rejectButton.connect("clicked(bool)", self.onReject)
        self.ui.nextButton.connect("clicked(bool)", self.onNext)
        self.ui.previousButton.connect("clicked(bool)", self.onPrevious)
        self.ui.operatingModeComboBox.connect("currentIndexChanged(int)", self.onOperatingPoint)
        self.ui.thresholdSlider.connect("valueChanged(double)", self.onOperatingPoint)
        self.ui.fpSlider.connect("valueChanged(double)", self.onOperatingPoint)
        self.ui.overlayComboBox.connect("currentIndexChanged(int)", self.onOverlay)
        self.ui.opacitySlider.connect("valueChanged(double)", self.onOverlay)
        self.ui.showRejectedCheckBox.connect("toggled(bool)", self.onShowRejected)
        self.logic.rescoreModel = settingValue("rescoreModel")  # applied (and the list filled) when a review is shown
        self.ui.rescoreModelComboBox.connect("currentIndexChanged(int)", self.onRescoreModel)
        self.ui.rescoreFileButton.connect("clicked(bool)", self.onRescoreFile)
        self.ui.rescoreCheckBox.connect("toggled(bool)", self.onRescoring)
        self.ui.saveReviewButton.connect("clicked(bool)", self.onSaveReview)
        self.ui.restoreReviewButton.connect("clicked(bool)", self.onLoadResults)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)
        self.ui.reportButton.connect("clicked(bool)", self.onReport)

        self.logic.observeScene(slicer.mrmlScene)  # Close Scene: the logic drops the review first
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        # Alt+A/R/N/P: made once per widget (not per enter), enabled only while the module is shown, removed in
        # cleanup() so a Reload leaves no shortcut bound to the old widget (duplicates make Qt call neither).
        for keys, slot in SHORTCUTS:
            shortcut = qt.QShortcut(qt.QKeySequence(keys), slicer.util.mainWindow())
            shortcut.enabled = False
            shortcut.connect("activated()", getattr(self, slot))
            self._shortcuts.append(shortcut)
        self.initializeParameterNode()
        self._showReviewAvailable()

    def cleanup(self):
        """Module unloaded or reloaded: no timer, shortcut, observer or child process may outlive this widget."""
        self._timer.stop()
        self.removeObservers()
        self.logic.cleanup()
        self._disconnectGui()
        for shortcut in self._shortcuts:
            shortcut.setParent(None)
        self._shortcuts = []

    def onReload(self):
        """Developer mode: reload the library and the module package too (not only LNStaging.py)."""
        reload.forget_library_modules()
        ScriptedLoadableModuleWidget.onReload(self)

    def enter(self):
        self._selectSegmentEditorNode()
        self.initializeParameterNode()
        for shortcut in self._shortcuts:
            shortcut.enabled = True

    def exit(self):
        self.ui.segmentEditorWidget.setActiveEffect(None)  # a paint brush must not stay active in other modules
        self.ui.segmentEditorWidget.removeViewObservations()
        self._disconnectGui()
        for shortcut in self._shortcuts:
            shortcut.enabled = False

    def onSceneStartClose(self, caller, event):
        self.ui.segmentEditorWidget.setSegmentationNode(None)
        self.ui.segmentEditorWidget.removeViewObservations()
        self.ui.candidateTableView.setMRMLTableNode(None)
        self._showReviewAvailable()
        self._disconnectGui()

    def _showReviewAvailable(self):
        """The Review section is usable only while there is a review (not after Close Scene)."""
        self.ui.reviewCollapsibleButton.enabled = self.logic.reviewAvailable

    def onSceneEndClose(self, caller, event):
        self._selectSegmentEditorNode()  # Close Scene removed the editor's parameter node
        if self.parent.isEntered:
            self.initializeParameterNode()

    def _selectSegmentEditorNode(self):
        """The embedded editor's parameter node: one per scene (singleton), created when missing."""
        node = slicer.mrmlScene.GetSingletonNode(SEGMENT_EDITOR_TAG, "vtkMRMLSegmentEditorNode")
        if node is None:
            node = slicer.mrmlScene.CreateNodeByClass("vtkMRMLSegmentEditorNode")
            node.UnRegister(None)
            node.SetSingletonTag(SEGMENT_EDITOR_TAG)
            node = slicer.mrmlScene.AddNode(node)
        self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(node)

    @staticmethod
    def _selectComboData(comboBox, data):
        index = comboBox.findData(data)
        if index >= 0:
            comboBox.currentIndex = index

    def _folderDialog(self, purpose, title):
        """A folder dialog that starts in the folder last used for the same purpose (kept in QSettings)."""
        folder = qt.QFileDialog.getExistingDirectory(self.parent, title, settingValue(f"folders/{purpose}"))
        if folder:
            setSetting(f"folders/{purpose}", folder)
        return folder

    def initializeParameterNode(self):
        self._disconnectGui()
        self._parameterNode = LNStagingParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.ct and slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") > 1:
            # a first guess only with two volumes or more: a PET loaded alone is a PET-only run (CT: None)
            self._parameterNode.ct = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
        self._guiConnection = self._parameterNode.connectGui(self.ui)
        self.addObserver(self._parameterNode, vtkModifiedEvent(), self.updateApplyButton)
        self.updateApplyButton()

    def _disconnectGui(self):
        if self._parameterNode is not None:
            if self._guiConnection is not None:
                self._parameterNode.disconnectGui(self._guiConnection)
                self._guiConnection = None
            self.removeObserver(self._parameterNode, vtkModifiedEvent(), self.updateApplyButton)

    def updateApplyButton(self, caller=None, event=None):
        if self.logic.run is not None:
            return
        p = self._parameterNode
        reason = self.logic.inputsProblem(p.ct, p.pet) if p else "Select the PET."
        self.ui.applyButton.enabled = not reason
        done = ("Find, classify and contour lymph nodes on this PET/CT." if p and p.ct else
                "Find and contour lymph-node candidates on this PET alone (no CT: ranked by SUVpeak, no model runs).")
        self.ui.applyButton.toolTip = reason or done

    # ---- running: the logic's flow, polled by a timer ---------------------------------------------------------------
    def onApply(self):
        if self.logic.run is not None:  # the button reads "Cancel" while running: ask the run to stop, no dialog
            self.logic.cancel()
            self.ui.applyButton.text = "Cancelling..."
            self.ui.applyButton.enabled = False
            return
        if not self._ensureDependencies():
            return
        p = self._parameterNode
        started = False
        with reportErrors("The analysis could not start."):
            self.logic.startAnalysis(p.ct, p.pet, p.organs, self.ui.tumourSelector.currentNode(),
                                     self.ui.tumourSelector.currentSegmentID(),
                                     self.ui.modelComboBox.currentData or None, self.ui.deviceComboBox.currentData)
            started = True
        if not started:
            self.ui.gpuLabel.text = self.logic.gpuDescription()
            return
        self.ui.logTextEdit.clear()
        for note in self.logic.notes:
            self.ui.logTextEdit.appendPlainText(note)
        self.ui.progressBar.visible = True
        self.ui.progressBar.value = 0
        self.ui.progressBar.format = "%p% writing the inputs"
        self.ui.applyButton.text = "Cancel"
        self._timer.start()

    def onPoll(self):
        for line in self.logic.pollAnalysis():
            parsed = process.parse_progress(line)
            if parsed:
                self.ui.progressBar.value = int(parsed[0] * 100)
                self.ui.progressBar.format = f"%p% {parsed[1]}"
            else:
                self.ui.logTextEdit.appendPlainText(line)
        if not self.logic.analysisFinished:
            return
        self._timer.stop()
        self.ui.applyButton.text = "Apply"
        self.ui.progressBar.visible = False
        try:
            with slicer.util.WaitCursor(), progressDialog("Showing the results") as progress:
                review = self.logic.finishAnalysis(progress)
        except Cancelled as cancelled:  # not an error: a line in the log and the status bar
            self.ui.logTextEdit.appendPlainText(str(cancelled))
            slicer.util.showStatusMessage(str(cancelled), 5000)
        except LNStagingError as error:
            self.ui.logTextEdit.appendPlainText(str(error))
            slicer.util.errorDisplay(str(error))
        except Exception as error:  # a bug: one dialog with the traceback, Slicer keeps running
            logging.exception("LNStaging: showing the results failed")
            slicer.util.errorDisplay(f"The results could not be shown.\n\n{type(error).__name__}: {error}",
                                     detailedText=traceback.format_exc())
        else:
            self._bindReview(review)
        self.updateApplyButton()

    def _ensureDependencies(self) -> bool:
        missing = self.logic.missingDependencies()
        if not missing:
            return True
        if not slicer.util.confirmOkCancelDisplay(
                "LNStaging needs these Python packages, which will be downloaded and installed now "
                f"(Slicer's own numpy, SimpleITK, VTK and pydicom are not changed):\n\n{', '.join(missing)}"):
            return False
        restart = None
        with reportErrors("Installing the packages failed."):
            restart = self.logic.installDependencies()
        if restart is None:
            return False
        if restart and slicer.util.confirmYesNoDisplay(
                "The packages are installed. Restart Slicer now so that they load cleanly? (Recommended; the "
                "analysis can also run now, in its own process.)", windowTitle="LNStaging - Restart recommended"):
            slicer.util.restart()
            return False
        return True

    def onImportWeights(self):
        path = qt.QFileDialog.getOpenFileName(self.parent, "Weights file", settingValue("folders/weights"),
                                              "PyTorch weights (*.pt *.pth)")
        if path:
            setSetting("folders/weights", qt.QFileInfo(path).absolutePath())
            with reportErrors("The weights file was not imported."):
                target = self.logic.importWeights(path, self.ui.modelComboBox.currentData)
                slicer.util.infoDisplay(f"Imported and verified: {target}")

    # ---- review -----------------------------------------------------------------------------------------------
    def onLoadResults(self):
        folder = self._folderDialog("results", "Results or saved review folder")
        if not folder:
            return
        if self.logic.reviewAvailable and not slicer.util.confirmOkCancelDisplay(
                "The review on screen (GTV_LN, table, centroids) will be replaced. Contour edits and decisions "
                "not saved with Save review... are lost.", windowTitle="LNStaging - Replace the review"):
            return
        p = self._parameterNode
        self.logic.rescoringEnabled = self.ui.rescoreCheckBox.checked
        review = withProgress("Loading the results", "The results could not be shown.",
                              lambda progress: self.logic.loadResults(folder, p.ct, p.pet, progress=progress))
        if review is not None:
            self._bindReview(review)

    def _bindReview(self, review):
        """Show the review the logic built: table, editor, patient probability, operating point, overlay."""
        self._fillRescoreModels()  # weights imported meanwhile are listed now
        self._showRescoringStatus()
        self.ui.candidateTableView.setMRMLTableNode(review.table)
        self.ui.segmentEditorWidget.setSegmentationNode(review.segmentation)
        self.ui.segmentEditorWidget.setSourceVolumeNode(review.ct)
        probability = review.results.patient.metastasis_probability
        self.ui.patientProbabilityLabel.text = "-" if probability is None else f"{probability:.2f}"
        self._showWhatRan()
        self._showReviewAvailable()
        self._showOperatingPoint(review)  # the review's own (saved) operating point, not the slider default
        self.onOverlay()

    def _showWhatRan(self):
        """What ran, from the review's Results: in the panel, the log and the status bar; Export disabled with the
        reason when it cannot run (a PET-only run)."""
        lines = self.logic.whatRan()
        self.ui.whatRanLabel.text = "\n".join(lines)
        for line in lines:
            self.ui.logTextEdit.appendPlainText(line)
        slicer.util.showStatusMessage(lines[0], 5000)
        problem = self.logic.exportProblem()
        seg = self.logic.review.pet_only and not problem
        self.ui.exportButton.enabled = not problem
        self.ui.exportButton.text = "Export SEG..." if seg else self._exportText
        self.ui.exportButton.toolTip = problem or (
            "PET-only run (no planning CT, so no RTSTRUCT): a DICOM SEG on the PET's own DICOM series" if seg
            else self._exportToolTip)

    def _showOperatingPoint(self, review):
        """Show the review's own operating point (a restored review keeps its saved one). Signals are blocked so
        the slider defaults are never pushed back into the review; the parameter node gets the same values so its
        GUI binding does not reset the sliders later."""
        controls = review.operating_point()
        byFp = controls["mode"] == "fp_per_patient"
        slider = self.logic.thresholdControl()  # a probability, or an SUVpeak when no classifier ran
        widgets = (self.ui.operatingModeComboBox, self.ui.thresholdSlider, self.ui.fpSlider)
        for widget in widgets:
            widget.blockSignals(True)
        try:
            self.ui.thresholdSliderLabel.text = slider["label"]
            self.ui.thresholdSlider.decimals = slider["decimals"]
            self.ui.thresholdSlider.singleStep = slider["step"]
            self.ui.thresholdSlider.maximum = slider["maximum"]
            self.ui.operatingModeComboBox.enabled = slider["fpAvailable"]
            self.ui.operatingModeComboBox.currentIndex = 1 if byFp else 0
            self._parameterNode.threshold = controls["threshold"]
            self.ui.thresholdSlider.value = controls["threshold"]
            if byFp:
                self._parameterNode.fpPerPatient = controls["fp_per_patient"]
                self.ui.fpSlider.value = controls["fp_per_patient"]
        finally:
            for widget in widgets:
                widget.blockSignals(False)
        self.ui.fpSlider.enabled = byFp
        self.ui.thresholdSlider.enabled = not byFp

    # ---- re-scoring from decisions (issue 19): the logic and the scene adapter do the work ---------------------
    def _fillRescoreModels(self):
        """'None', the catalogue's re-scoring models and a chosen file; the logic's choice selected (no signal)."""
        combo = self.ui.rescoreModelComboBox
        combo.blockSignals(True)
        try:
            combo.clear()
            combo.addItem("None (original probabilities)", "")
            for modelId in self.logic.rescoreModelIds():
                combo.addItem(modelId, modelId)
            choice = self.logic.rescoreModel
            if choice and combo.findData(choice) < 0:
                combo.addItem(qt.QFileInfo(choice).fileName(), choice)  # a file chosen with File...
            self._selectComboData(combo, choice)
        finally:
            combo.blockSignals(False)

    def onRescoreModel(self, *args):
        self._setRescoreModel(self.ui.rescoreModelComboBox.currentData or "")

    def onRescoreFile(self):
        path = qt.QFileDialog.getOpenFileName(self.parent, "Re-scoring model (weights file)",
                                              settingValue("folders/weights"), "PyTorch weights (*.pt *.pth)")
        if path:
            setSetting("folders/weights", qt.QFileInfo(path).absolutePath())
            self._setRescoreModel(path)

    def _setRescoreModel(self, model):
        withProgress("Re-scoring: CNN pass over the candidates", "This model cannot re-score from review decisions.",
                     lambda progress: self.logic.setRescoreModel(model, progress))
        setSetting("rescoreModel", self.logic.rescoreModel)  # "" when the model was refused
        self._fillRescoreModels()
        self._showRescoringStatus()

    def onRescoring(self, enabled):
        self.logic.setRescoring(enabled)
        self._showRescoringStatus()

    def _showRescoringStatus(self):
        status = self.logic.rescoringStatus()
        self.ui.rescoreStatusLabel.text = status
        if status:
            slicer.util.showStatusMessage(status, 5000)

    def _currentCandidateId(self):
        review = self.logic.review
        if not self.logic.reviewAvailable:
            return None
        return table.candidate_id_at_row(review.table, self.ui.candidateTableView.currentIndex().row())

    def onTableSelection(self):
        candidateId = self._currentCandidateId()
        if candidateId is not None:
            self.logic.review.jump_to(candidateId)

    def _decide(self, state):
        candidateId = self._currentCandidateId()
        if candidateId is None:
            return
        row = self.ui.candidateTableView.currentIndex().row()
        self.logic.review.set_review(candidateId, state)  # re-scores the pending nodes when a model is chosen
        self._selectRow(min(row + 1, self.logic.review.table.GetNumberOfRows() - 1))
        self._showRescoringStatus()

    def onAccept(self):
        self._decide("accepted")

    def onReject(self):
        self._decide("rejected")

    def _selectRow(self, row):
        if self.logic.reviewAvailable and row >= 0:
            self.ui.candidateTableView.selectRow(row)

    def onNext(self):
        self._selectRow(self.ui.candidateTableView.currentIndex().row() + 1)

    def onPrevious(self):
        self._selectRow(max(self.ui.candidateTableView.currentIndex().row() - 1, 0))

    def onOperatingPoint(self, *args):
        review = self.logic.review
        byFp = self.ui.operatingModeComboBox.currentIndex == 1
        self.ui.fpSlider.enabled = byFp
        self.ui.thresholdSlider.enabled = not byFp
        if not self.logic.reviewAvailable:
            return
        if byFp and not review.froc:
            self.ui.operatingModeComboBox.currentIndex = 0
            slicer.util.warningDisplay("This model has no validation FROC table: use a probability threshold.")
            return
        if byFp:
            threshold = review.set_operating_point(fp_per_patient=self.ui.fpSlider.value)
            self.ui.thresholdSlider.blockSignals(True)
            self.ui.thresholdSlider.value = threshold
            self.ui.thresholdSlider.blockSignals(False)
        else:
            review.set_operating_point(threshold=self.ui.thresholdSlider.value)

    def onOverlay(self, *args):
        if self.logic.reviewAvailable:
            self.logic.review.set_overlay(self.ui.overlayComboBox.currentData, self.ui.opacitySlider.value)

    def onShowRejected(self, show):
        if self.logic.reviewAvailable:
            self.logic.review.set_show_rejected(show)

    def onSaveReview(self):
        folder = self._folderDialog("review", "Save the review into (a new sub-folder 'review')")
        if not folder:
            return
        saved = withProgress("Saving the review", "The review was not saved.",
                             lambda progress: self.logic.saveReview(qt.QDir(folder).filePath("review"), progress))
        if saved is not None:
            slicer.util.showStatusMessage(f"Review saved to {saved}", 5000)

    def onReport(self):
        """report.html from the review as it is now (saved into RESULTS/review/ first), opened in the browser."""
        folder = None
        if self.logic.reviewAvailable and not self.logic.resultsFolder:
            folder = self._folderDialog(
                "results", "Results folder of the case (the review and report.html go into its review/ sub-folder)")
            if not folder:
                return
        path = withProgress("Writing the report", "The report was not written.",
                            lambda progress: self.logic.writeReport(folder, progress))
        if path is not None:
            slicer.util.showStatusMessage(f"Report written to {path}", 5000)
            qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(path)))

    def onExport(self):
        out = None
        with reportErrors("The export failed."):
            route = self.logic.exportRoute()  # refuses with a sentence when there is no review
            includePending = self.ui.includePendingCheckBox.checked
            pending = self.logic.pendingNodeNames() if includePending else []
            if pending and not slicer.util.confirmOkCancelDisplay(
                    f"These {len(pending)} nodes have not been reviewed and will be exported as GTVn too:\n\n"
                    f"{', '.join(pending)}\n\nExport them with the accepted nodes?",
                    windowTitle="LNStaging - Export unreviewed nodes"):
                return
            ctDicom = None
            if route == "folder":
                ctDicom = self._folderDialog("ctDicom", "Folder of the CT's DICOM series")
                if not ctDicom:
                    return
            what = "SEG" if route == "petseg" else "RTSTRUCT"
            out = self._folderDialog("export", f"Write the {what} into")
        if out:  # reading the edits back, then the writer; Cancel: nothing written, a status line
            written = withProgress(f"Writing the {what}", "The export failed.",
                                   lambda progress: self.logic.export(out, ctDicom, includePending, progress))
            if written is not None:
                slicer.util.infoDisplay(f"Exported: {written}")
