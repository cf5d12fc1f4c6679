"""Triage at the speed of a keyboard (issue 26): the next pending node, and rejecting every pending node below the
operating point at once, with one undo. A ReviewSession mixin (web/session.py holds the rest); the keys are in
web/keyboard.py. Each rejected node is recorded as a decision of the reviewer who asked (review.json "events")."""

from __future__ import annotations

from typing import Optional

from ..errors import LNStagingError


class Triage:
    """Mixin of ReviewSession: needs review, selected_id, ranked_candidates(), select(), set_review(), save()."""

    _bulk_rejected: list = []  # ids the last bulk reject changed (its undo puts them back to pending)

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
