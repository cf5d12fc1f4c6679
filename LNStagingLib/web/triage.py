"""Triage at the speed of a keyboard (issue 26): the next pending node, rejecting every pending node below the
operating point at once (with one undo), and zooming all three views to the selected node. A ReviewSession mixin (web/session.py holds the rest); the keys are in
web/keyboard.py. Each rejected node is recorded as a decision of the reviewer who asked (review.json "events")."""

from __future__ import annotations

import math
from typing import Optional

from ..errors import LNStagingError
from ..scene import views
from ..scene.coordinates import lps_to_ras

# Zoom to a node: ZOOM_NODE_DIAMETERS times the node's equivalent-sphere diameter across each view, at least
# ZOOM_MIN_FIELD_MM: the node and the structures beside it (vessels, the neighbouring nodes of its station).
ZOOM_NODE_DIAMETERS = 5.0
ZOOM_MIN_FIELD_MM = 40.0


class Triage:
    """Mixin of ReviewSession: needs review, selected_id, ranked_candidates(), select(), set_review(), save()."""

    _bulk_rejected: list = []  # ids the last bulk reject changed (its undo puts them back to pending)
    zoomed_to_node = False  # Z: every selected node is shown zoomed in all three views, until F fits the images

    def zoom_to_node(self) -> None:
        """Centre the axial, coronal and sagittal views on the selected node and zoom in on it; the following
        selections stay zoomed (reset_zoom ends it)."""
        if self.review is None or self.selected_id is None:
            return
        self.zoomed_to_node = True
        self._follow_zoom()
        self.on_change()

    def _follow_zoom(self) -> None:
        if not self.zoomed_to_node or self.selected_id is None:
            return
        candidate = self.review.results.candidate(self.selected_id)
        diameter = 2.0 * (3.0 * max(candidate.volume_ml or 0.0, 0.0) * 1000.0 / (4.0 * math.pi)) ** (1 / 3)
        views.zoom_to_ras(self.scene, lps_to_ras(candidate.centroid_lps),
                          max(ZOOM_MIN_FIELD_MM, ZOOM_NODE_DIAMETERS * diameter))

    def reset_zoom(self) -> None:
        """Fit the images in every view again (F); ends the zoom to nodes."""
        self.zoomed_to_node = False
        for view in self.app.view_manager.get_slice_views():
            view.fit_view_to_content()

    def next_pending(self) -> None:
        """Select the next pending node after the selected one in the list order (wrapping round)."""
        ranked = self.ranked_candidates()
        pending = [c.id for c in ranked if c.review == "pending"]
        if not pending:
            return
        order = [c.id for c in ranked]
        start = order.index(self.selected_id) + 1 if self.selected_id in order else 0
        after = [i for i in order[start:] + order[:start] if i in pending]
        self.select(after[0])

    def reject_below_operating_point(self, reviewer: Optional[str] = None) -> int:
        """Reject every pending node below the operating point (the hidden ones); returns how many."""
        self._refuse_if_read_only("a decision")
        if self.review is None:
            raise LNStagingError("No case is open.")
        results, threshold = self.review.results, self.review.threshold
        below = [c.id for c in results.candidates if c.review == "pending"
                 and (value := results.ranking_value(c)) is not None and value < threshold]
        for cid in below:
            self.review.set_review(cid, "rejected", reviewer)
        self._bulk_rejected = below
        if below:
            self.save(edits=False)
        return len(below)

    def undo_bulk_reject(self, reviewer: Optional[str] = None) -> int:
        """Put the nodes of the last bulk reject back to pending (those still rejected); returns how many."""
        self._refuse_if_read_only("a decision")
        restored = [cid for cid in self._bulk_rejected
                    if cid in {c.id for c in self.review.results.candidates}
                    and self.review.results.candidate(cid).review == "rejected"]
        for cid in restored:
            self.review.set_review(cid, "pending", reviewer)
        self._bulk_rejected = []
        if restored:
            self.save(edits=False)
        return len(restored)

    def below_operating_point(self) -> int:
        """How many pending nodes a bulk reject would reject now."""
        if self.review is None:
            return 0
        results, threshold = self.review.results, self.review.threshold
        return sum(1 for c in results.candidates if c.review == "pending"
                   and (value := results.ranking_value(c)) is not None and value < threshold)
