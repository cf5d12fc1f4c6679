"""A case under review in a scene: show Results, jump, operating point, accept/reject, edits read back.

``ReviewScene`` only holds the nodes and the Results; every rendering comes from Results, so the table, the
segments and the markups cannot disagree with what is saved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import SimpleITK as sitk

from ..inference.rescore_record import rescoring_status_line, restore_original_probabilities
from ..io.resample import same_grid
from ..progress import Progress
from ..results import REVIEW_STATES, Results
from ..review_log import last_events, new_event
from . import markups, segments, table, views, volumes

# Attribute on every node a review adds (attention, GTV_LN, table, markups): a new Apply or Load replaces them
# instead of piling up a second GTV_LN, even when the previous review came from a saved scene.
ROLE_ATTRIBUTE = "LNStaging.Role"


def remove_review_nodes(scene) -> int:
    """Remove the nodes of an earlier review (those carrying ROLE_ATTRIBUTE); returns how many."""
    doomed = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]
    doomed = [node for node in doomed if node is not None and node.GetAttribute(ROLE_ATTRIBUTE)]
    for node in doomed:
        scene.RemoveNode(node)
    return len(doomed)


def threshold_for_fp_per_patient(froc: Sequence[Sequence[float]], fp_per_patient: float) -> float:
    """Probability threshold reaching ``fp_per_patient`` on the model's validation FROC.

    ``froc`` holds (fp_per_patient, threshold) pairs; the threshold is interpolated linearly in FP/patient and
    clamped at the ends (fewer FP than the curve's minimum gives its highest threshold).
    """
    points = np.asarray(froc, dtype=float)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) == 0:
        raise ValueError("the FROC table must be (fp_per_patient, threshold) pairs")
    points = points[np.argsort(points[:, 0])]
    return float(np.interp(float(fp_per_patient), points[:, 0], points[:, 1]))


def visible_candidate_ids(results: Results, threshold: float, show_rejected: bool = False) -> set[int]:
    """Accepted candidates always show; pending ones at or above the threshold (a probability, or an SUVpeak when
    the run ranks by SUV: Results.ranking_value); rejected ones only on request."""
    visible = set()
    for c in results.candidates:
        value = results.ranking_value(c)
        if c.review == "accepted":
            visible.add(c.id)
        elif c.review == "rejected":
            if show_rejected:
                visible.add(c.id)
        elif value is None or value >= threshold:
            visible.add(c.id)
    return visible


@dataclass
class ReviewScene:
    scene: object
    results: Results
    ct: object
    pet: Optional[object] = None
    attention: Optional[object] = None
    segmentation: Optional[object] = None
    table: Optional[object] = None
    markups: Optional[object] = None
    threshold: float = 0.0
    show_rejected: bool = False
    froc: list = field(default_factory=list)
    rescorer: Optional[object] = None  # inference.rescore.Rescorer: decisions re-score the pending nodes (issue 19)
    reviewer: str = ""  # who decides (a name the reviewer gives; saved with each decision, never logged)
    # Each accept/reject/reset and contour edit, in order: {"at": UTC ISO time, "candidate": id, "action":
    # "accepted" | "rejected" | "pending" | "edited" | "erased", "by": reviewer when given}; saved in review.json
    events: list = field(default_factory=list)

    @property
    def pet_only(self) -> bool:
        """A review of a PET-only run (``lnstaging run`` without --ct): its background is the PET, not a CT."""
        return volumes.is_pet_background(self.ct)

    # ---- building -------------------------------------------------------------------------------------------
    @classmethod
    def show(cls, scene, results: Results, ct_node, pet_node=None, froc: Sequence = (), overlay: str = "pet",
             overlay_opacity: float = 0.5, pet_suv_max: float = 10.0,
             progress: Optional[Progress] = None) -> "ReviewScene":
        """Put ``results`` into ``scene`` over an already loaded CT (and PET): attention volume, GTV_LN segments,
        candidate table and centroid markups; CT in the background, PET or attention as the foreground.
        ``progress`` is told before each node is built (MRML: on the caller's thread) and may raise Cancelled
        there; the caller removes the nodes already added."""
        progress = progress or Progress()
        review = cls(scene, results, ct_node, pet_node, froc=[tuple(p) for p in froc])
        if results.attention is not None:
            progress.step(0.0, "attention map")
            review.attention = volumes.add_volume(scene, results.attention, "LNStaging attention")
        if results.gtv_ln is not None:
            progress.step(0.25, "GTV_LN segments")
            review.segmentation = segments.add_candidate_segments(scene, results, ct_node)
        progress.step(0.75, "candidate table")
        review.table = table.add_candidate_table(scene, results)
        progress.step(0.85, "centroids")
        review.markups = markups.add_centroid_markups(scene, results)
        progress.step(0.95, "views")
        volumes.show_ct(ct_node)  # the user's display settings change only once nothing can be cancelled
        if pet_node is not None and pet_node is not ct_node:  # a PET-only review's PET is its background
            volumes.show_pet(pet_node, pet_suv_max)
        if review.attention is not None:
            volumes.show_attention(review.attention)
        point = results.patient.operating_point or {}
        value = point.get("threshold", 0.0)  # null (not computed or not finite) -> NaN: a GUI replaces it, saying so
        review.threshold = float(value) if isinstance(value, (int, float)) else float("nan")
        views.ensure_slice_views(scene)
        review.set_overlay(overlay, overlay_opacity)
        review.refresh()
        review.tag_nodes()
        return review

    def tag_nodes(self) -> None:
        """Mark the nodes this review added (see ROLE_ATTRIBUTE); the CT and PET are the user's and stay unmarked."""
        for role in ("attention", "segmentation", "table", "markups"):
            node = getattr(self, role)
            if node is not None:
                node.SetAttribute(ROLE_ATTRIBUTE, role)

    def set_overlay(self, which: str = "pet", opacity: Optional[float] = None) -> None:
        """Foreground layer: 'pet', 'attention' or 'none'; CT stays the background (a PET-only review: the PET; when
        the PET node is that background itself, as in the Slicer module, 'pet' adds no foreground over it)."""
        pet = None if self.pet is self.ct else self.pet
        foreground = {"pet": pet, "attention": self.attention}.get(which)
        views.set_layers(self.scene, background=self.ct, foreground=foreground, foreground_opacity=opacity)
        if which == "none":
            for composite in views.composite_nodes(self.scene):
                composite.SetForegroundVolumeID(None)

    # ---- review actions -------------------------------------------------------------------------------------
    def jump_to(self, candidate_id: int) -> tuple[float, float, float]:
        return views.jump_to_candidate(self.scene, self.results.candidate(candidate_id))

    def set_operating_point(self, threshold: Optional[float] = None, fp_per_patient: Optional[float] = None) -> float:
        """Set a probability threshold, or FP/patient on the FROC table; returns the threshold used."""
        if fp_per_patient is not None:
            if not self.froc or not self.results.ranks_by_probability:
                raise ValueError("this model has no validation FROC table: set a probability threshold instead")
            threshold = threshold_for_fp_per_patient(self.froc, fp_per_patient)
            self.results.patient.operating_point = {"basis": "probability", "threshold": threshold,
                                                    "fp_per_patient": float(fp_per_patient)}
        elif threshold is not None:  # in the run's basis: a probability, or an SUVpeak (Results.ranking_basis)
            self.results.patient.operating_point = {"basis": self.results.ranking_basis["kind"],
                                                    "threshold": float(threshold)}
        else:
            raise ValueError("give a threshold or an FP-per-patient value")
        self.threshold = float(threshold)
        self.refresh()
        return self.threshold

    def operating_point(self) -> dict:
        """What a GUI shows for this review: {"mode": "threshold" | "fp_per_patient", "threshold", "fp_per_patient"}.

        A restored review keeps its saved point; a GUI sets its controls from this (signals blocked) instead of
        pushing its slider defaults back into the review."""
        fp = (self.results.patient.operating_point or {}).get("fp_per_patient")
        by_fp = fp is not None and bool(self.froc)
        return {"mode": "fp_per_patient" if by_fp else "threshold", "threshold": float(self.threshold),
                "fp_per_patient": float(fp) if by_fp else None}

    def set_show_rejected(self, show: bool) -> None:
        self.show_rejected = bool(show)
        self.refresh()

    def set_review(self, candidate_id: int, state: str, reviewer: Optional[str] = None) -> None:
        """Decide one candidate; ``reviewer``: who decided (the client's name on a shared server), else
        self.reviewer."""
        if state not in REVIEW_STATES:
            raise ValueError(f"review state must be one of {REVIEW_STATES}")
        candidate = self.results.candidate(candidate_id)
        if candidate.review != state:
            self.record(candidate_id, state, reviewer)
        candidate.review = state
        self.apply_rescoring()
        self.refresh()

    def record(self, candidate_id: int, action: str, reviewer: Optional[str] = None) -> dict:
        """Note one decision or edit with its UTC time and the reviewer's name (when one was given)."""
        event = new_event(candidate_id, action, self.reviewer if reviewer is None else reviewer)
        self.events.append(event)
        return event

    def last_events(self) -> dict[int, dict]:
        """The latest decision or edit per candidate id."""
        return last_events(self.events)

    def apply_rescoring(self) -> None:
        """Re-score the pending candidates from the decisions (no-op without a rescorer); refresh() shows them.

        When contour edits added or removed candidates since the graph was built, its CNN pass runs again first
        (seconds, only then), so a decision after such an edit re-scores every candidate on screen."""
        if self.rescorer is None:
            return
        if not self.rescorer.graph.matches(self.results):
            from ..inference.rescore import ReviewGraph

            ct, pet = self._images()
            self.rescorer.graph = ReviewGraph.from_results(self.rescorer.graph.model, self.results, ct, pet)
        self.rescorer.apply(self.results)

    def _images(self):
        """CT and PET of this review as SimpleITK images (the PET None when there is none)."""
        pet = volumes.image_in_frame(self.pet, self.ct) if self.pet is not None else None  # a registered PET
        return volumes.image_from_volume(self.ct), pet

    def set_rescoring(self, enabled: bool) -> None:
        """Switch re-scoring on or off (off: every candidate shows its original probability)."""
        if self.rescorer is not None:
            self.rescorer.enabled = bool(enabled)
            self.apply_rescoring()
            self.refresh()

    def start_rescoring(self, checkpoint, expected_sha256: Optional[str] = None, name: str = "",
                        enabled: bool = True) -> None:
        """Re-score from decisions with a review-state model (file; sha256 checked when given): its CNN runs once
        over the candidates on this review's CT and PET, then every decision re-runs only the graph head."""
        from ..inference.rescore import rescorer_from_checkpoint

        ct, pet = self.rescoring_images()
        self.use_rescorer(rescorer_from_checkpoint(checkpoint, self.results, ct, pet, expected_sha256, name, enabled))

    def rescoring_images(self):
        """CT and PET as SimpleITK images for a rescorer's CNN pass (read from the scene: on the scene's thread;
        the pass itself may then run on another)."""
        return self._images()

    def use_rescorer(self, rescorer) -> None:
        """Re-score from decisions with a rescorer built for this review's Results (its CNN pass done)."""
        self.rescorer = rescorer
        self.apply_rescoring()
        self.refresh()

    def stop_rescoring(self) -> None:
        """No re-scoring model any more: every candidate shows its original probability (also after a restored
        review whose probabilities were re-scored)."""
        self.rescorer = None
        if self.results.provenance.get("rescore"):
            restore_original_probabilities(self.results, self.results.provenance["rescore"].get("model", ""))
        self.refresh()

    def rescoring_status(self) -> str:
        """One line for a status bar: what the last decision re-scored and by how much, or why nothing was."""
        seconds = self.rescorer.seconds if self.rescorer is not None else None
        return rescoring_status_line(self.results, seconds)

    def accept(self, candidate_id: int) -> None:
        self.set_review(candidate_id, "accepted")

    def reject(self, candidate_id: int) -> None:
        self.set_review(candidate_id, "rejected")

    def visible_ids(self) -> set[int]:
        return visible_candidate_ids(self.results, self.threshold, self.show_rejected)

    def refresh(self) -> None:
        """Re-render table, segment and control point visibility from Results."""
        visible = self.visible_ids()
        if self.table is not None:
            table.update_candidate_table(self.table, self.results)
        if self.segmentation is not None:
            segments.set_visible_candidates(self.segmentation, visible)
            segments.recolor(self.segmentation, self.results)  # the decision styles
        if self.markups is not None:
            markups.set_visible_candidates(self.markups, visible)

    def read_edits(self, pet_suv: Optional[sitk.Image] = None, progress: Optional[Progress] = None) -> dict:
        """Pull the user's segment edits into Results, then re-render (new candidates get a row and a point).
        ``progress`` as in segments.read_edits: a Cancelled read changes nothing."""
        if self.segmentation is None:
            return {"changed": [], "removed": [], "added": []}
        if pet_suv is None and self.pet is not None:
            pet_suv = volumes.image_in_frame(self.pet, self.ct)  # the results are in the CT's frame
            if not same_grid(pet_suv, self.results.gtv_ln):
                pet_suv = None  # PET not on the CT grid: keep the SUVmax measured by the pipeline
        report = segments.read_edits(self.segmentation, self.ct, self.results, pet_suv, progress)
        for cid in report["changed"] + report["added"]:
            self.record(cid, "edited")
        for cid in report["removed"]:
            self.record(cid, "erased")
        markups.update_centroid_markups(self.markups, self.results)
        self.refresh()
        return report

