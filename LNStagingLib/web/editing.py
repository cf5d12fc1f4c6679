"""Contour correction in the review session: paint and erase on the selected node only, undo/redo, and saving each
stroke at once (the ReviewSession mixin for editing; web/session.py holds the rest).

Safe by default (issue 26): a paint stroke changes only the selected node. Slicer's segment editor would otherwise
overwrite every segment under the brush, silently taking voxels from a neighbour (an accepted node, which is then
exported changed); here the editable area is "outside all other segments" unless the reviewer asks to take voxels
from other nodes (``set_take_from_others``). After each save the session records which nodes changed and by how many
voxels (``last_edit``), and the page says so. The page shows "saving..." from the stroke until it is on disk
(``edits_pending``); the save starts EDIT_SAVE_DELAY_S after the stroke (time to draw it first).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Optional

from ..scene import review_autosave
from . import validation

log = logging.getLogger(__name__)

EDIT_SAVE_DELAY_S = 0.05  # after a stroke: long enough to draw it first, short enough that a kill loses nothing


class ContourEditing:
    """Mixin of ReviewSession: needs editor, undo_stack, review, tool, brush_mm, save(), on_change."""

    take_from_others = False  # paint may take voxels from other nodes (explicit; off by default)
    last_edit: dict = {}  # candidate id -> voxel change of the last saved edit (the page lists it)
    _voxels_before: dict = {}
    _stroke_saved = False  # the segmentation of the pending edit is on disk already (save_edits skips it)
    _stroke_at = 0.0
    stroke_durable_s: Optional[float] = None  # seconds from the last stroke applied to its segmentation on disk
    _released_at: Optional[float] = None  # wall time (epoch) the last mouse-up reached the server
    stroke_times: dict = {}  # wall times (epoch) of the last stroke: mouse-up received, applied, on disk

    def _observe_mouse_release(self) -> None:
        """Note when each mouse-up reaches the server: a stroke's clock starts there (status.json stroke_times; the
        browser test compares it with the page's own mouse-up)."""
        from vtkmodules.vtkCommonCore import vtkCommand

        for view in self.app.view_manager.get_slice_views():
            view.interactor().AddObserver(vtkCommand.LeftButtonReleaseEvent, self._on_mouse_release, 100.0)

    def _on_mouse_release(self, *_args) -> None:
        self._released_at = time.time()

    def set_tool(self, tool: str, brush_mm: Optional[float] = None) -> None:
        """'paint' or 'erase' the selected candidate's segment with a brush of ``brush_mm`` (mm), or 'none'."""
        from trame_slicer.segmentation import (BrushDiameterMode, SegmentationEffectErase,
                                               SegmentationEffectNoTool, SegmentationEffectPaint)

        tool = validation.tool(tool)
        if tool != "none":
            self._refuse_if_read_only("contour editing")
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
        self._apply_editable_area()
        self.tool = tool

    def set_take_from_others(self, take: bool) -> None:
        """Let paint take voxels from other nodes (the page then lists which and how many), or not (default)."""
        self._refuse_if_read_only("contour editing")
        self.take_from_others = validation.flag(take, "take voxels from other nodes")
        self._apply_editable_area()

    def _apply_editable_area(self) -> None:
        from trame_slicer.segmentation import SegmentationEditableAreaMode, SegmentationOverwriteMode

        if self.editor.active_segmentation is None:
            return
        if self.take_from_others:
            self.editor.set_editable_area(SegmentationEditableAreaMode.EVERYWHERE)
            self.editor.set_overwrite_mode(SegmentationOverwriteMode.OVERWRITE_ALL)
        else:  # outside every other segment (visible or hidden): no other node loses a voxel
            self.editor.set_editable_area(SegmentationEditableAreaMode.OUTSIDE_ALL_SEGMENTS)
            self.editor.set_overwrite_mode(SegmentationOverwriteMode.ALLOW_OVERLAP)

    def undo(self) -> None:
        self._refuse_if_read_only("undo")
        if self.undo_stack.can_undo():
            self.undo_stack.undo()

    def redo(self) -> None:
        self._refuse_if_read_only("redo")
        if self.undo_stack.can_redo():
            self.undo_stack.redo()

    def _on_segmentation_modified(self, *_args) -> None:
        """A stroke, an undo or a redo: "saving..." at once, the save right after the event (coalesced, so the
        stroke is drawn first)."""
        if self._loading or self.review is None or self.read_only:  # read-only: no tool edits, nothing to save
            return
        first = not self._edits_pending
        self._edits_pending = True
        self._stroke_saved = False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.save()
            return
        if first:
            self._stroke_at = time.perf_counter()
            self.stroke_times = {"released": self._released_at, "applied": time.time()}
            self._save_stroke()  # now, before the renders the stroke queued: durable first
            self.on_change()  # the page shows "saving..." until save() clears it
        if not self._save_scheduled:
            self._save_scheduled = True
            loop.call_later(EDIT_SAVE_DELAY_S, self._scheduled_save)

    def _save_stroke(self) -> None:
        """The segmentation alone, at once: the stroke survives a kill from here (scene/review_autosave.py)."""
        if self.review is None or not self._edits_pending:
            return
        try:
            with self.clock.measure("save stroke"):
                self._stroke_saved = review_autosave.save_segmentation(self.review, self.case.review_dir)
            if self._stroke_saved:  # from the edit reaching the scene to its segmentation on disk (status.json)
                self.stroke_durable_s = round(time.perf_counter() - self._stroke_at, 4)
                self.stroke_times["durable"] = time.time()
        except Exception:  # the full save that follows writes it again, or shows its error
            log.exception("saving the stroke failed")

    def _scheduled_save(self) -> None:
        self._save_scheduled = False
        try:
            self.flush()
        except Exception as error:  # shown on the page; the edit stays pending and is saved with the next change
            log.exception("saving the review failed")
            self.last_error = f"Saving failed ({type(error).__name__}: {error})"
            self.on_change()

    def stroke_status(self) -> dict:
        """status.json: seconds from the stroke applied to on disk, and the wall times of its steps."""
        return {"stroke_durable_s": self.stroke_durable_s, "stroke_times": dict(self.stroke_times)}

    def status_saving(self) -> bool:
        """True from a stroke until it is on disk (the page shows "saving...")."""
        return bool(self._edits_pending or self._save_scheduled)

    def flush(self) -> None:
        if self._edits_pending:
            self.save()

    def _note_voxel_changes(self) -> None:
        """After an edit was saved: which nodes changed by how many voxels since the previous save."""
        now = self.voxel_counts()
        before = self._voxels_before or now
        ids = set(before) | set(now)
        self.last_edit = {i: now.get(i, 0) - before.get(i, 0) for i in sorted(ids)
                          if now.get(i, 0) != before.get(i, 0)}
        self._voxels_before = now

    def edit_text(self) -> str:
        """The last edit in words: 'GTVn_04 +120 voxels; also changed: GTVn_02 -43 voxels'."""
        if not self.last_edit:
            return ""
        selected = self.selected_id
        parts = [f"GTVn_{i:02d} {d:+d} voxels" for i, d in self.last_edit.items() if i == selected]
        others = [f"GTVn_{i:02d} {d:+d} voxels" for i, d in self.last_edit.items() if i != selected]
        text = "Last edit: " + (", ".join(parts) or "no change to the selected node")
        return text + (f"; other nodes changed: {', '.join(others)}" if others else "")
