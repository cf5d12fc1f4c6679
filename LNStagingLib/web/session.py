"""One reviewer's session on the server: the case in the scene, the review actions, saving as it happens.

The scene is filled through LNStagingLib.scene (the same code path as the Slicer module); the contour editing uses
trame-slicer's SegmentationEditor (Slicer's segment editor logic: paint, erase, undo). Every decision is saved at
once and every contour edit right after the stroke, with the scene adapter's ``save_review`` into CASE/review/, so
a closed tab or a killed server loses nothing and the next start restores the same state. No trame UI here: the
app (web/app.py) binds this to the page; tests and the status endpoint read ``status()``.

Re-scoring (issue 19): with ``rescore_model`` (a stage-2 checkpoint trained with --reveal-labels), every accept or
reject re-scores the pending candidates through inference/rescore.py's Rescorer (the same call the Slicer module
uses); ``set_rescoring(False)`` shows the original probabilities again. The saved review records it.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import SimpleITK as sitk
import vtk

from ..errors import LNStagingError
from ..inference import rescore_record
from ..results import Results
from ..scene import review_autosave, review_state, segments, views, volumes
from ..scene.coordinates import lps_to_ras
from ..scene.review import ReviewScene
from ..scene.setup import register_converter_rules
from . import validation
from .cases import ReviewCase
from .downloads import RTSTRUCT_NAME, SEG_NAME, export_seg_beside
from .editing import ContourEditing
from .triage import Triage
from .timing import Clock

log = logging.getLogger(__name__)

OVERLAYS = validation.OVERLAYS
TOOLS = validation.TOOLS
VIEW_NAMES = {"Red": "axial", "Green": "coronal", "Yellow": "sagittal"}
SEGMENT_FILL_OPACITY = 1.0  # the segmentation-wide fill; each decision scales it (decision_style.py)
# CT window presets (width, level) in HU, as on planning workstations
CT_PRESETS = {"soft tissue": (400.0, 40.0), "mediastinum": (350.0, 50.0), "lung": (1500.0, -600.0),
              "bone": (1800.0, 400.0)}
PET_SUV_WINDOW = (2.0, 10.0)  # below SUV 2 transparent: background uptake does not tint the soft tissue
MARKER_NAME = "Selected candidate"
MARKER_DIAMETER_MM = 20.0  # the rays reach beyond a node of the usual size
MARKER_COLOUR = (0.0, 1.0, 1.0)  # cyan: distinct from the heat map and the probability colours


class ReadOnlyReviewError(LNStagingError):
    """A change asked of a review served with --read-only."""


class ReviewSession(ContourEditing, Triage):
    """The cases of a review and the one case open in ``slicer_app.scene``."""

    def __init__(self, slicer_app, cases: list[ReviewCase], on_change: Optional[Callable[[], None]] = None,
                 rescore_model: Optional[Path] = None, clock: Optional[Clock] = None, reviewer: str = "",
                 read_only: bool = False):
        from undo_stack import UndoStack

        register_converter_rules()
        self.app = slicer_app
        self.scene = slicer_app.scene
        self.cases = {c.case_id: c for c in cases}
        self.case: Optional[ReviewCase] = None
        self.review: Optional[ReviewScene] = None
        self.selected_id: Optional[int] = None
        self.overlay = "pet"
        self.overlay_opacity = 0.5
        self.tool = "none"
        self.brush_mm = 6.0
        self.saved_at: Optional[float] = None
        self.save_seconds: Optional[float] = None
        self.last_error = ""
        self.last_export: Optional[Path] = None
        self.on_change = on_change or (lambda: None)
        self.clock = clock or Clock()  # the time of each save (status.json "timings" through the app)
        self.reviewer = reviewer  # given at start (--reviewer): replaces the name saved with a review
        self._nodes: list = []
        self.undo_stack = UndoStack()
        self.editor = slicer_app.segmentation_editor
        self.editor.set_undo_stack(self.undo_stack)
        self.editor.segmentation_modified.connect(self._on_segmentation_modified)
        self._observe_mouse_release()
        self._loading = self._edits_pending = self._save_scheduled = False
        self._export_state = ("none", "")
        self.ct_preset = "soft tissue"
        self.pet_window = PET_SUV_WINDOW
        self._marker = None
        self._arrays: dict = {}
        self.rescore_model = Path(rescore_model) if rescore_model else None
        self.rescorer = None  # inference.rescore.Rescorer of the open case, when a review-state model is given
        self.rescoring_enabled = True
        self.read_only = read_only  # --read-only: shows the review, refuses every change, writes nothing

    # ---- opening a case ------------------------------------------------------------------------------------
    def open_case(self, case_id: str) -> None:
        """Load the CT (shown first: trame-slicer 2.0 hides the CT under the segment fill otherwise), the PET, and
        the saved review if there is one, else the run's results."""
        case_id = validation.case_id(case_id, self.cases)
        self.close_case()
        case = self.cases[case_id]
        self._loading = True
        try:
            ct_image, pet_image = case.load_images()  # files or DICOM folders, as the run read them
            if ct_image is None:  # a PET-only run: the PET is the background the contours are drawn over
                ct_node = volumes.add_pet_background(self.scene, pet_image)
            else:
                ct_node = volumes.add_volume(self.scene, ct_image, "CT")
            self._nodes.append(ct_node)
            volumes.show_ct(ct_node)
            views.set_layers(self.scene, background=ct_node)  # background before the segmentation (quirk)
            pet_node = None
            if pet_image is not None:
                pet_node = volumes.add_volume(self.scene, pet_image, "PET")
                self._nodes.append(pet_node)
            if case.has_saved_review():
                review = review_state.restore_review(self.scene, case.review_dir, ct_node, pet_node)
            else:
                review = ReviewScene.show(self.scene, Results.read(case.results_dir), ct_node, pet_node,
                                          froc=case_froc(case))
            self.review, self.case = review, case
            if self.reviewer:
                review.reviewer = self.reviewer
            note = self._replace_unusable_threshold()
            self._nodes += [n for n in (review.attention, review.segmentation, review.table, review.markups) if n]
            self._style_segmentation()
            self._style_decisions()
            self._add_marker()
            self.set_ct_preset(self.ct_preset)
            if pet_node is not None:
                self.set_pet_window(*self.pet_window)
            self.set_overlay("none" if case.pet_only else  # the PET background already shows the uptake
                             self.overlay if (self.overlay != "attention" or review.attention) else "pet")
            for view in self.app.view_manager.get_slice_views():
                view.fit_view_to_content()
            if review.segmentation is not None and review.segmentation.GetSegmentation().GetNumberOfSegments():
                self.editor.set_active_segmentation(review.segmentation, ct_node)
            self.undo_stack.clear()
            self._voxels_before, self.last_edit = self.voxel_counts(), {}  # the next edit's changes count from here
            note = self._start_rescoring(case) or note
            ranked = self.ranked_candidates()
            self.selected_id = None
            if ranked:
                self.select(ranked[0].id)
        finally:
            self._loading = False
        if self.read_only:
            pass  # nothing written: another server may own this folder
        elif not case.has_saved_review():
            self.save()  # the review folder exists from the first moment: restarting shows the same state
        elif note:
            self.save(edits=False)  # the replaced operating point, so NaN is not read again
        self.last_error = note or ""
        self.refresh_export_state()
        self.on_change()

    def _start_rescoring(self, case: ReviewCase) -> Optional[str]:
        """Run the review-state model's CNN over the case's candidates once (each decision then re-runs the graph
        head only) and apply the saved decisions. A failure leaves the review usable, without re-scoring."""
        self.rescorer = None
        if self.rescore_model is None or not self.review.results.candidates:
            return None
        if case.pet_only:
            return f"Re-scoring is off for this case: {rescore_record.NO_CT_REASON}"
        from ..inference.rescore import rescorer_from_checkpoint

        try:
            ct, pet = case.load_images()
            self.rescorer = rescorer_from_checkpoint(self.rescore_model, self.review.results, ct, pet,
                                                     enabled=self.rescoring_enabled)
        except LNStagingError as error:
            log.warning("case %s: re-scoring off: %s", case.case_id, error)
            return f"Re-scoring is off for this case: {error}"
        self.review.rescorer = self.rescorer  # the scene applies it on every decision (same path as Slicer)
        self.review.apply_rescoring()
        self.review.refresh()
        return None

    def set_rescoring(self, enabled: bool) -> None:
        """Switch re-scoring from decisions on or off (off: every candidate shows its original probability)."""
        self._refuse_if_read_only("switching re-scoring")
        self.rescoring_enabled = validation.flag(enabled, "the re-scoring switch")
        if self.rescorer is not None:
            self.review.set_rescoring(self.rescoring_enabled)
            self.save(edits=False)

    def _replace_unusable_threshold(self) -> Optional[str]:
        """A saved operating point that is not a number in [0, 1] (NaN from an old run or review.json) is replaced,
        saying so: NaN never reaches the page, where it restarted a save at every push."""
        point = self.review.results.patient.operating_point or {}
        value, note = validation.usable_threshold(self.review.threshold, point.get("threshold"),
                                                  basis=self.review.results.ranking)
        if note:
            log.warning("case %s: %s", self.case.case_id, note)
            self.review.set_operating_point(threshold=value)
        return note

    def close_case(self) -> None:
        if self.review is None:
            return
        self.flush()
        self.editor.deactivate_effect()
        for node in self._nodes:
            if node is not None and node.GetScene() is self.scene:
                self.scene.RemoveNode(node)
        self._nodes, self.review, self.case, self.selected_id = [], None, None, None
        self._marker, self._arrays, self.last_export = None, {}, None
        self.rescorer = None
        self.undo_stack.clear()

    def _style_segmentation(self) -> None:
        if self.review.segmentation is None:
            return
        display = self.review.segmentation.GetDisplayNode()
        display.SetVisibility2DFill(True)
        display.SetVisibility2DOutline(True)
        display.SetOpacity2DFill(SEGMENT_FILL_OPACITY)
        display.SetOpacity2DOutline(1.0)
        display.SetSliceIntersectionThickness(3)  # the thick outline of decision_style.py

    def _style_decisions(self) -> None:
        """Draw each node's decision (decision_style.py, through the scene adapter as in Slicer)."""
        if self.review is not None and self.review.segmentation is not None:
            segments.recolor(self.review.segmentation, self.review.results)

    def _add_marker(self) -> None:
        """A cyan star-burst (open centre) at the selected candidate, drawn even when the candidate is hidden by the operating point."""
        node = self.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", MARKER_NAME)
        node.CreateDefaultDisplayNodes()
        node.SetLocked(True)
        display = node.GetDisplayNode()
        display.SetSelectedColor(*MARKER_COLOUR)
        display.SetColor(*MARKER_COLOUR)
        display.SetGlyphType(display.StarBurst2D)
        display.SetFillVisibility(False)
        display.SetUseGlyphScale(False)
        display.SetGlyphSize(MARKER_DIAMETER_MM)
        display.SetLineThickness(0.3)
        display.SetTextScale(0.0)
        self._marker = node
        self._nodes.append(node)

    def _move_marker(self, ras) -> None:
        if self._marker is None:
            return
        self._marker.RemoveAllControlPoints()
        if ras is not None:
            self._marker.AddControlPoint(*ras, "")

    def marker_ras(self):
        if self._marker is None or self._marker.GetNumberOfControlPoints() == 0:
            return None
        point = [0.0, 0.0, 0.0]
        self._marker.GetNthControlPointPosition(0, point)
        return [round(v, 3) for v in point]

    # ---- the fused view ---------------------------------------------------------------------------------------
    def set_ct_preset(self, name: str) -> None:
        name = validation.ct_preset(name, CT_PRESETS)
        self.ct_preset = name
        if self.review is not None:
            volumes.show_ct(self.review.ct, CT_PRESETS[name])

    def set_pet_window(self, lower: float, upper: float) -> None:
        """PET heat map from SUV ``lower`` (transparent below) to ``upper``."""
        lower = validation.pet_suv(lower, "the lower PET SUV")
        upper = validation.pet_suv(upper, "the upper PET SUV")
        if not upper > lower >= 0:
            raise LNStagingError("The PET window needs 0 <= lower SUV < upper SUV.")
        self.pet_window = (lower, upper)
        if self.review is None or self.review.pet is None:
            return
        display = self.review.pet.GetDisplayNode()
        display.SetAutoWindowLevel(False)
        display.SetWindowLevelMinMax(lower, upper)
        display.SetApplyThreshold(True)
        display.SetLowerThreshold(lower)

    def ct_window(self) -> tuple[float, float]:
        display = self.review.ct.GetDisplayNode()
        return float(display.GetWindow()), float(display.GetLevel())

    def values_at(self, ras) -> dict:
        """HU, SUV and the candidate under a RAS point (None outside the images)."""
        out = {"hu": None, "suv": None, "candidate": None}
        if self.review is None:
            return out
        background = None if self.review.pet_only else self.review.ct  # a PET background has no HU
        for key, node in (("hu", background), ("suv", self.review.pet)):
            if node is None:
                continue
            array, ras_to_ijk = self._array(key, node)
            ijk = np.rint(ras_to_ijk @ np.array([*ras, 1.0]))[:3].astype(int)
            if np.all(ijk >= 0) and np.all(ijk < np.array(array.shape[::-1])):
                out[key] = float(array[ijk[2], ijk[1], ijk[0]])
        gtv = self.review.results.gtv_ln
        if gtv is not None:
            index = gtv.TransformPhysicalPointToIndex((-float(ras[0]), -float(ras[1]), float(ras[2])))
            if all(0 <= i < n for i, n in zip(index, gtv.GetSize())):
                value = int(gtv.GetPixel(index))
                out["candidate"] = value or None
        return out

    def _array(self, key: str, node):
        if key not in self._arrays:
            matrix = vtk.vtkMatrix4x4()
            node.GetRASToIJKMatrix(matrix)
            ras_to_ijk = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
            self._arrays[key] = (volumes.array_from_volume(node), ras_to_ijk)
        return self._arrays[key]

    def step_slice(self, steps: int, view_name: str = "Red") -> None:
        """Move one view (axial by default) by ``steps`` CT slices along its normal."""
        for node in views._nodes(self.scene, "vtkMRMLSliceNode"):
            if node.GetName() == view_name:
                node.SetSliceOffset(node.GetSliceOffset() + int(steps) * self._slice_step(node))

    def _slice_step(self, node) -> float:
        """The smallest move along the view's normal that reaches the next CT voxel (any CT direction)."""
        m = node.GetSliceToRAS()
        normal = np.array([m.GetElement(r, 2) for r in range(3)])
        normal /= np.linalg.norm(normal)
        ijk_to_ras = vtk.vtkMatrix4x4()
        self.review.ct.GetIJKToRASMatrix(ijk_to_ras)
        columns = np.array([[ijk_to_ras.GetElement(r, c) for r in range(3)] for c in range(3)])  # one per axis
        spacing = np.linalg.norm(columns, axis=1)
        per_mm = np.abs(columns @ normal) / spacing**2  # index change per mm along the normal, per axis
        return float(1.0 / per_mm.max())

    def toggle_overlay(self) -> None:
        self.set_overlay("none" if self.overlay != "none" else "pet")

    def step_candidate(self, delta: int) -> None:
        """Next (+1) or previous (-1) candidate in the list order (most probable first)."""
        ranked = [c.id for c in self.ranked_candidates()]
        if not ranked:
            return
        index = ranked.index(self.selected_id) + int(delta) if self.selected_id in ranked else 0
        self.select(ranked[min(max(index, 0), len(ranked) - 1)])

    # ---- review actions -------------------------------------------------------------------------------------
    def ranked_candidates(self) -> list:
        if self.review is None:
            return []
        self.review.results.rank_candidates()
        return sorted(self.review.results.candidates, key=lambda c: c.rank)

    def _candidate_id(self, candidate_id) -> int:
        if self.review is None:
            raise LNStagingError("No case is open.")
        return validation.candidate_id(candidate_id, (c.id for c in self.review.results.candidates))

    def select(self, candidate_id: int) -> tuple[float, float, float]:
        """Jump every view to the candidate and make its segment the one that paint/erase edit."""
        candidate_id = self._candidate_id(candidate_id)
        ras = self.review.jump_to(int(candidate_id))
        views.place_crosshair(self.scene, ras)  # the views are linked at the candidate
        self.selected_id = int(candidate_id)
        self._move_marker(ras)
        self._follow_zoom()  # zoomed to a node: the next one is shown the same way (web/triage.py)
        if self.review.segmentation is not None and self.editor.active_segmentation is not None:
            segment_id = segments.segment_id_for(self.review.segmentation, self.selected_id)
            if segment_id:
                self.editor.set_active_segment_id(segment_id)
        self.on_change()
        return ras

    def link_views(self, ras, view_name: Optional[str] = None) -> None:
        """Linked crosshair: a point clicked in one view (``view_name``: Red/Green/Yellow) moves the other views'
        slices through it and all three draw the crosshair there."""
        if self.review is None:
            raise LNStagingError("No case is open.")
        ras = [validation.coordinate(v) for v in ras]
        source = next((n for n in views._nodes(self.scene, "vtkMRMLSliceNode") if n.GetName() == view_name), None)
        views.link_views_at(self.scene, ras, source)
        self.on_change()

    def _refuse_if_read_only(self, what: str) -> None:
        if self.read_only:
            raise ReadOnlyReviewError(
                f"This review is read-only (--read-only): {what} is refused and nothing is saved. To change the "
                "review, use the server that owns this folder, or stop it and start 'lnstaging review' without "
                "--read-only.")

    def set_review(self, candidate_id: int, state: str, reviewer: Optional[str] = None) -> None:
        """A decision; ``reviewer``: the name typed in the browser that made it (several browsers may share one
        server: each decision is recorded under its own client's name), else the session's."""
        self._refuse_if_read_only("a decision")
        candidate_id, state = self._candidate_id(candidate_id), validation.review_state(state)
        reviewer = None if reviewer is None else validation.reviewer(reviewer)
        self.review.set_review(candidate_id, state, reviewer)  # re-scores the pending nodes when a rescorer is set
        self.save(edits=False)

    def set_reviewer(self, name: str) -> None:
        """The name saved with the decisions from now on (earlier ones keep theirs)."""
        self._refuse_if_read_only("setting the reviewer's name")
        name = validation.reviewer(name)
        if self.review is None:
            raise LNStagingError("No case is open.")
        self.reviewer = name
        self.review.reviewer = name
        self.save(edits=False)

    def set_threshold(self, threshold: float) -> None:
        self._refuse_if_read_only("changing the operating point")
        threshold = validation.threshold(threshold, self.review.results.ranking)
        self.review.set_operating_point(threshold=threshold)
        self.save(edits=False)

    def set_show_rejected(self, show: bool) -> None:
        self._refuse_if_read_only("showing or hiding rejected nodes")
        self.review.set_show_rejected(validation.flag(show))
        self.save(edits=False)

    def set_overlay(self, which: str, opacity: Optional[float] = None) -> None:
        which = validation.overlay(which)
        if opacity is not None:
            self.overlay_opacity = validation.opacity(opacity)
        self.overlay = which
        self.review.set_overlay(which, self.overlay_opacity)

    def set_overlay_opacity(self, opacity: float) -> None:
        self.overlay_opacity = validation.opacity(opacity)
        views.set_foreground_opacity(self.scene, self.overlay_opacity)

    # ---- saving and export ----------------------------------------------------------------------------------
    def save(self, edits: bool = True) -> Path:
        """Write the review folder: after a decision only its small files; after an edit (``edits``) the edits are
        read back and the segmentation and GTV_LN written too (scene.review_autosave; save_review the first time)."""
        if self.review is None:
            raise LNStagingError("No case is open.")
        self._refuse_if_read_only("saving")
        start = time.perf_counter()
        self._loading = True  # reading edits back renames/removes segments: not a user edit
        try:
            if edits or self._edits_pending:
                with self.clock.measure("save edits"):
                    review_autosave.save_edits(self.review, self.case.review_dir, self._stroke_saved)
                self._note_voxel_changes()
            else:
                with self.clock.measure("save decisions"):
                    review_autosave.save_decisions(self.review, self.case.review_dir)
        finally:
            self._loading = False
        self._edits_pending = self._stroke_saved = False
        self.last_error = ""
        self.saved_at = time.time()
        self.save_seconds = time.perf_counter() - start
        if self.selected_id is not None and self.selected_id not in {c.id for c in self.review.results.candidates}:
            self.selected_id = None  # its segment was erased to nothing
        self._style_decisions()
        self.refresh_export_state()
        self.on_change()
        return self.case.review_dir

    def export_rtstruct(self, include_pending: bool = False) -> Path:
        """The accepted nodes (and the pending ones when the reviewer chose so after seeing them listed) as an
        RTSTRUCT on the CT DICOM series (a PET-only run: a SEG on its PET DICOM series), into CASE/export/; the
        export record is saved with the review (export/review_rule.py: rejected never leaves; any later change
        marks the file out of date)."""
        from ..export.exporter import export_review

        self._refuse_if_read_only("export")
        reason = self.case.export_disabled_reason()
        if reason:
            raise LNStagingError(reason)
        self.save()
        reference, series_uid = self.case.export_reference()
        seg_only = self.case.export_kind == "seg"
        summary, _record = export_review(self.review.results, reference, self.case.export_dir / (
            SEG_NAME if seg_only else RTSTRUCT_NAME), self.case.review_dir, threshold=self.review.threshold,
            include_pending=include_pending, kind=self.case.export_kind, series_uid=series_uid)
        self.last_export, self.last_error = summary.path, "" if seg_only else export_seg_beside(  # the same nodes
            self.review.results, reference, self.case.export_dir, self.review.threshold, include_pending)
        self.refresh_export_state()
        self.on_change()
        return summary.path

    def write_report(self) -> Path:
        """report.html regenerated from the saved review (decisions, edits, export) into CASE/review/."""
        from ..report import write_reviewed_report

        if self.review is None:
            raise LNStagingError("No case is open.")
        self._refuse_if_read_only("writing the report")
        self.flush()
        ct, pet = self.case.load_images()
        return write_reviewed_report(self.case.results_dir, ct, pet, case_id=self.case.case_id,
                                     study_date=self.case.study_date())

    def pending_to_confirm(self) -> list[dict]:
        """The pending nodes a reviewer must see before including them in an export (most probable first)."""
        from ..export.review_rule import pending_to_confirm

        return pending_to_confirm(self.review.results.candidates, self.review.threshold) if self.review else []

    def export_state(self) -> tuple[str, str]:
        """('none' | 'current' | 'stale', the summary of the last export): is the exported file still the review?
        Recomputed after each save (hashing the label map), not on every page update."""
        return self._export_state

    def refresh_export_state(self) -> tuple[str, str]:
        from ..export.review_rule import export_state, read_record

        if self.review is None:
            self._export_state = ("none", "")
        else:
            record = read_record(self.case.review_dir)
            self._export_state = (export_state(self.case.review_dir, self.review.results),
                                  record.summary if record else "")
        return self._export_state

    # ---- what the page and the tests read -------------------------------------------------------------------
    def voxel_counts(self) -> dict[int, int]:
        if self.review is None or self.review.results.gtv_ln is None:
            return {}
        labels = sitk.GetArrayViewFromImage(self.review.results.gtv_ln)
        ids, counts = np.unique(labels[labels > 0], return_counts=True)
        return {int(i): int(n) for i, n in zip(ids, counts)}

    def slice_offsets(self) -> dict[str, float]:
        return {VIEW_NAMES.get(n.GetName(), n.GetName()): round(float(n.GetSliceOffset()), 3)
                for n in views._nodes(self.scene, "vtkMRMLSliceNode") if n.GetName() in VIEW_NAMES}

    def view_positions(self, ras) -> dict[str, dict]:
        """Where a RAS point is drawn in each slice view: view pixels from the top-left corner (for the page) and
        its distance from the slice plane in mm (0 when the view passes through it)."""
        out = {}
        for view in self.app.view_manager.get_slice_views():
            node = view.get_view_node()
            if node is None or node.GetName() not in VIEW_NAMES:
                continue
            xy_to_ras = vtk.vtkMatrix4x4()
            xy_to_ras.DeepCopy(node.GetXYToRAS())
            xy_to_ras.Invert()
            x, y, _, _ = xy_to_ras.MultiplyPoint((*ras, 1.0))
            slice_to_ras = node.GetSliceToRAS()
            normal = np.array([slice_to_ras.GetElement(r, 2) for r in range(3)])
            origin = np.array([slice_to_ras.GetElement(r, 3) for r in range(3)])
            distance = float(np.dot(np.asarray(ras) - origin, normal / np.linalg.norm(normal)))
            width, height = view.render_window().GetSize()
            out[VIEW_NAMES[node.GetName()]] = {"xy": [round(x, 1), round(height - 1 - y, 1)], "size": [width, height],
                                               "slice_size": list(node.GetDimensions()[:2]),
                                               "plane_distance_mm": round(distance, 4)}
        return out

    def status(self) -> dict:
        if self.review is None:
            return {"case": None, "cases": sorted(self.cases)}
        results = self.review.results
        selected = None
        if self.selected_id is not None and self.selected_id in {c.id for c in results.candidates}:
            c = results.candidate(self.selected_id)
            ras = lps_to_ras(c.centroid_lps)
            selected = {"id": c.id, "name": c.name, "centroid_ras": [round(v, 3) for v in ras],
                        "views": self.view_positions(ras)}
        return {
            "case": self.case.case_id,
            "cases": sorted(self.cases),
            "selected": selected,
            "marker_ras": self.marker_ras(),
            "crosshair_ras": views.crosshair_ras(self.scene),
            "ct_preset": self.ct_preset,
            "ct_window": self.ct_window(),
            "pet_window": list(self.pet_window),
            "slice_offsets": self.slice_offsets(),
            "threshold": self.review.threshold,
            "show_rejected": self.review.show_rejected,
            "overlay": self.overlay,
            "overlay_opacity": self.overlay_opacity,
            "tool": self.tool,
            "zoomed_to_node": self.zoomed_to_node,
            "can_undo": bool(self.undo_stack.can_undo()),
            "visible_ids": sorted(self.review.visible_ids()),
            "decisions": {str(c.id): c.review for c in results.candidates},
            "reviewer": self.review.reviewer,
            "events": list(self.review.events),
            "probabilities": {str(c.id): c.probability for c in results.candidates},
            "rescoring": self.rescoring_status(),
            "voxels": {str(k): v for k, v in self.voxel_counts().items()},
            "patient_probability": results.patient.metastasis_probability,
            "saved_at": self.saved_at,
            "save_seconds": self.save_seconds,
            "review_dir": str(self.case.review_dir),
            "export_disabled_reason": self.case.export_disabled_reason(),
            "last_export": str(self.last_export) if self.last_export else None,
            "export_state": self.export_state()[0],
            "edits_pending": self._edits_pending,
            "last_edit": {str(k): v for k, v in self.last_edit.items()},
            "take_from_others": self.take_from_others,
            "bulk_rejected": list(self._bulk_rejected),
            **self.stroke_status(),
            "read_only": self.read_only,
            "last_error": self.last_error,
        }

    def rescoring_status(self) -> dict:
        """Whether re-scoring is available and on, how long the last one took, and what moved by how much."""
        rescorer = self.rescorer
        if rescorer is None:
            return {"available": False, "enabled": self.rescoring_enabled}
        last = rescorer.last
        return {"available": True, "enabled": rescorer.enabled, "model": rescorer.model_name,
                "seconds": None if rescorer.seconds is None else round(rescorer.seconds, 4),
                "decisions": {} if last is None else {str(k): v for k, v in last.decisions.items()},
                "moved": {} if last is None else {str(k): round(v, 6) for k, v in last.moved.items()}}


def case_froc(case: ReviewCase) -> list:
    """(fp_per_patient, threshold) pairs of the classifier's validation FROC recorded in the run's provenance."""
    import json

    path = case.results_dir / "provenance.json"
    try:
        froc = json.loads(path.read_text()).get("froc") if path.is_file() else None
    except ValueError:
        froc = None
    if not isinstance(froc, list):
        return []
    pairs = [p for p in froc if isinstance(p, (list, tuple)) and len(p) == 2]
    # finite numbers only: a NaN here would make review.json unwritable (it is saved without NaN)
    return [tuple(float(v) for v in p) for p in pairs
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in p)]
