"""One reviewer's session on the server: the case in the scene, the review actions, saving as it happens.

The scene is filled through LNStagingLib.scene (the same code path as the Slicer module); the contour editing uses
trame-slicer's SegmentationEditor (Slicer's segment editor logic: paint, erase, undo). Every decision is saved at
once and every contour edit right after the stroke, with the scene adapter's ``save_review`` into CASE/review/, so
a closed tab or a killed server loses nothing and the next start restores the same state. No trame UI here: the
app (web/app.py) binds this to the page; tests and the status endpoint read ``status()``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import SimpleITK as sitk
import vtk

from ..errors import LNStagingError
from ..results import Results
from ..scene import review_autosave, review_state, segments, views, volumes
from ..scene.coordinates import lps_to_ras
from ..scene.review import ReviewScene
from ..scene.setup import register_converter_rules
from . import validation
from .cases import ReviewCase

log = logging.getLogger(__name__)

OVERLAYS = validation.OVERLAYS
TOOLS = validation.TOOLS
VIEW_NAMES = {"Red": "axial", "Green": "coronal", "Yellow": "sagittal"}
SEGMENT_FILL_OPACITY = 0.3  # the outline carries the contour; a light fill shows the probability colour
RTSTRUCT_NAME = "RS_LNStaging.dcm"
EDIT_SAVE_DELAY_S = 0.05  # after a stroke: long enough to draw it first, short enough that a kill loses nothing


class ReviewSession:
    """The cases of a review and the one case open in ``slicer_app.scene``."""

    def __init__(self, slicer_app, cases: list[ReviewCase], on_change: Optional[Callable[[], None]] = None):
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
        self._nodes: list = []
        self.undo_stack = UndoStack()
        self.editor = slicer_app.segmentation_editor
        self.editor.set_undo_stack(self.undo_stack)
        self.editor.segmentation_modified.connect(self._on_segmentation_modified)
        self._loading = False
        self._edits_pending = False
        self._save_scheduled = False

    # ---- opening a case ------------------------------------------------------------------------------------
    def open_case(self, case_id: str) -> None:
        """Load the CT (shown first: trame-slicer 2.0 hides the CT under the segment fill otherwise), the PET, and
        the saved review if there is one, else the run's results."""
        case_id = validation.case_id(case_id, self.cases)
        self.close_case()
        case = self.cases[case_id]
        self._loading = True
        try:
            ct_node = volumes.load_volume_file(self.scene, case.ct, "CT")
            self._nodes.append(ct_node)
            volumes.show_ct(ct_node)
            views.set_layers(self.scene, background=ct_node)  # background before the segmentation (quirk)
            pet_node = None
            if case.pet is not None:
                pet_node = volumes.load_volume_file(self.scene, case.pet, "PET")
                self._nodes.append(pet_node)
            if case.has_saved_review():
                review = review_state.restore_review(self.scene, case.review_dir, ct_node, pet_node)
            else:
                review = ReviewScene.show(self.scene, Results.read(case.results_dir), ct_node, pet_node,
                                          froc=case_froc(case))
            self.review, self.case = review, case
            note = self._replace_unusable_threshold()
            self._nodes += [n for n in (review.attention, review.segmentation, review.table, review.markups) if n]
            self._style_segmentation()
            self.set_overlay(self.overlay if (self.overlay != "attention" or review.attention) else "pet")
            for view in self.app.view_manager.get_slice_views():
                view.fit_view_to_content()
            if review.segmentation is not None and review.segmentation.GetSegmentation().GetNumberOfSegments():
                self.editor.set_active_segmentation(review.segmentation, ct_node)
            self.undo_stack.clear()
            ranked = self.ranked_candidates()
            self.selected_id = None
            if ranked:
                self.select(ranked[0].id)
        finally:
            self._loading = False
        if not case.has_saved_review():
            self.save()  # the review folder exists from the first moment: restarting shows the same state
        elif note:
            self.save(edits=False)  # the replaced operating point, so NaN is not read again
        self.last_error = note or ""
        self.on_change()

    def _replace_unusable_threshold(self) -> Optional[str]:
        """A saved operating point that is not a number in [0, 1] (NaN from an old run or review.json) is replaced,
        saying so: NaN never reaches the page, where it restarted a save at every push."""
        point = self.review.results.patient.operating_point or {}
        value, note = validation.usable_threshold(self.review.threshold, point.get("threshold"))
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
        self.undo_stack.clear()

    def _style_segmentation(self) -> None:
        if self.review.segmentation is None:
            return
        display = self.review.segmentation.GetDisplayNode()
        display.SetVisibility2DFill(True)
        display.SetVisibility2DOutline(True)
        display.SetOpacity2DFill(SEGMENT_FILL_OPACITY)
        display.SetOpacity2DOutline(1.0)
        display.SetSliceIntersectionThickness(2)

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
        self.selected_id = int(candidate_id)
        if self.review.segmentation is not None and self.editor.active_segmentation is not None:
            segment_id = segments.segment_id_for(self.review.segmentation, self.selected_id)
            if segment_id:
                self.editor.set_active_segment_id(segment_id)
        self.on_change()
        return ras

    def set_review(self, candidate_id: int, state: str) -> None:
        candidate_id, state = self._candidate_id(candidate_id), validation.review_state(state)
        self.review.set_review(candidate_id, state)
        self.save(edits=False)

    def set_threshold(self, threshold: float) -> None:
        threshold = validation.threshold(threshold)
        self.review.set_operating_point(threshold=threshold)
        self.save(edits=False)

    def set_show_rejected(self, show: bool) -> None:
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

    # ---- contour editing ------------------------------------------------------------------------------------
    def set_tool(self, tool: str, brush_mm: Optional[float] = None) -> None:
        """'paint' or 'erase' the selected candidate's segment with a brush of ``brush_mm`` (mm), or 'none'."""
        from trame_slicer.segmentation import (BrushDiameterMode, SegmentationEffectErase,
                                               SegmentationEffectNoTool, SegmentationEffectPaint)

        tool = validation.tool(tool)
        if brush_mm is not None:
            self.brush_mm = validation.brush_mm(brush_mm)
        if self.editor.active_segmentation is None:
            tool = "none"
        effect_type = {"none": SegmentationEffectNoTool, "paint": SegmentationEffectPaint,
                       "erase": SegmentationEffectErase}[tool]
        effect = self.editor.set_active_effect_type(effect_type)
        if tool != "none" and effect is not None:
            effect.set_brush_diameter(self.brush_mm, BrushDiameterMode.Absolute)
            effect.set_use_sphere_brush(False)
        self.tool = tool

    def undo(self) -> None:
        if self.undo_stack.can_undo():
            self.undo_stack.undo()

    def redo(self) -> None:
        if self.undo_stack.can_redo():
            self.undo_stack.redo()

    def _on_segmentation_modified(self, *_args) -> None:
        """A stroke, an undo or a redo: save right after the event (coalesced, so the stroke is drawn first)."""
        if self._loading or self.review is None:
            return
        self._edits_pending = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.save()
            return
        if not self._save_scheduled:
            self._save_scheduled = True
            loop.call_later(EDIT_SAVE_DELAY_S, self._scheduled_save)

    def _scheduled_save(self) -> None:
        self._save_scheduled = False
        try:
            self.flush()
        except Exception as error:  # shown on the page; the edit stays pending and is saved with the next change
            log.exception("saving the review failed")
            self.last_error = f"Saving failed ({type(error).__name__}: {error})"
            self.on_change()

    def flush(self) -> None:
        if self._edits_pending:
            self.save()

    # ---- saving and export ----------------------------------------------------------------------------------
    def save(self, edits: bool = True) -> Path:
        """Write the review folder: after a decision only its small files; after an edit (``edits``) the edits are
        read back and the segmentation and GTV_LN written too (scene.review_autosave; save_review the first time)."""
        if self.review is None:
            raise LNStagingError("No case is open.")
        start = time.perf_counter()
        self._loading = True  # reading edits back renames/removes segments: not a user edit
        try:
            if edits or self._edits_pending:
                review_autosave.save_edits(self.review, self.case.review_dir)
            else:
                review_autosave.save_decisions(self.review, self.case.review_dir)
        finally:
            self._loading = False
        self._edits_pending = False
        self.last_error = ""
        self.saved_at = time.time()
        self.save_seconds = time.perf_counter() - start
        if self.selected_id is not None and self.selected_id not in {c.id for c in self.review.results.candidates}:
            self.selected_id = None  # its segment was erased to nothing
        self.on_change()
        return self.case.review_dir

    def export_rtstruct(self) -> Path:
        """The reviewed nodes (all but rejected) as an RTSTRUCT on the CT DICOM series, into CASE/export/."""
        from ..export.exporter import export_results

        reason = self.case.export_disabled_reason()
        if reason:
            raise LNStagingError(reason)
        self.save()
        summary = export_results(self.review.results, self.case.ct_dicom, self.case.export_dir / RTSTRUCT_NAME)
        self.last_export = summary.path
        self.on_change()
        return summary.path

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
            height = view.render_window().GetSize()[1]
            out[VIEW_NAMES[node.GetName()]] = {"xy": [round(x, 1), round(height - 1 - y, 1)],
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
            "slice_offsets": self.slice_offsets(),
            "threshold": self.review.threshold,
            "show_rejected": self.review.show_rejected,
            "overlay": self.overlay,
            "overlay_opacity": self.overlay_opacity,
            "tool": self.tool,
            "can_undo": bool(self.undo_stack.can_undo()),
            "visible_ids": sorted(self.review.visible_ids()),
            "decisions": {str(c.id): c.review for c in results.candidates},
            "voxels": {str(k): v for k, v in self.voxel_counts().items()},
            "patient_probability": results.patient.metastasis_probability,
            "saved_at": self.saved_at,
            "save_seconds": self.save_seconds,
            "review_dir": str(self.case.review_dir),
            "export_disabled_reason": self.case.export_disabled_reason(),
            "last_export": str(self.last_export) if self.last_export else None,
            "edits_pending": self._edits_pending,
            "last_error": self.last_error,
        }


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
