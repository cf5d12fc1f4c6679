"""Which reviewed nodes an export writes, and whether an exported file still matches the review.

One rule for every face (browser review, Slicer module, ``lnstaging export``):
  - a rejected node never leaves;
  - an accepted node always does;
  - a pending node (nobody decided) only when the user explicitly includes pending nodes: the browser and the
    Slicer module ask after listing them, the CLI needs ``--include-pending``.
A label map given without any candidate list carries no review at all: every label is exported, and the summary
says so.

After an export its record, ``export.json`` in the review folder, holds what was written (ROIs, counts) and a
fingerprint of the review (decisions and the label map). Any later decision or contour edit changes the
fingerprint: the export is then out of date, and a face must not hand out the old file until it is re-exported.
Pure Python (no MRML): the CLI reads the same review folder the faces write.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import SimpleITK as sitk

from ..inference.rescore_record import rescore_summary
from ..io.atomic import atomic_file
from ..results import Candidate, Results

RECORD_FILE = "export.json"
REVIEW_FILE = "review.json"
DESCRIPTION_LIMIT = 64  # DICOM LO (ROI Description, Segment Description)


def is_exported(review: str, include_pending: bool = False) -> bool:
    """The rule itself: accepted always, pending only when asked for, rejected never."""
    return review == "accepted" or (include_pending and review == "pending")


def hidden_ids(candidates: Iterable[Candidate], threshold: Optional[float]) -> set[int]:
    """Pending candidates below the operating point: never shown in the review unless jumped to."""
    if threshold is None:
        return set()
    return {c.id for c in candidates
            if c.review == "pending" and c.probability is not None and c.probability < float(threshold)}


@dataclass
class ExportCounts:
    """What an export wrote and what it left out, for the summary shown in green and saved with the review."""

    written: int
    accepted: int
    pending_written: int
    pending_left: int
    hidden_left: int  # of pending_left: below the operating point, never shown to the reviewer
    rejected: int

    def text(self, kind: str = "rtstruct") -> str:
        left = []
        if self.pending_left:
            hidden = f" ({self.hidden_left} hidden below the operating point)" if self.hidden_left else ""
            left.append(f"{self.pending_left} pending{hidden}")
        if self.rejected:
            left.append(f"{self.rejected} rejected")
        written = f"{self.written} ROI{'s' if self.written != 1 else ''} ({self.accepted} accepted"
        written += f", {self.pending_written} pending included)" if self.pending_written else ")"
        return (f"{kind.upper()} written: {written}" + (f"; not exported: {', '.join(left)}" if left else "") + ".")


def export_counts(candidates: list[Candidate], written_ids: Iterable[int], threshold: Optional[float]) -> ExportCounts:
    written = set(int(v) for v in written_ids)
    hidden = hidden_ids(candidates, threshold)
    pending = [c for c in candidates if c.review == "pending"]
    return ExportCounts(
        written=len(written),
        accepted=sum(c.review == "accepted" and c.id in written for c in candidates),
        pending_written=sum(c.id in written for c in pending),
        pending_left=sum(c.id not in written for c in pending),
        hidden_left=sum(c.id not in written and c.id in hidden for c in pending),
        rejected=sum(c.review == "rejected" for c in candidates))


def pending_to_confirm(candidates: list[Candidate], threshold: Optional[float]) -> list[dict]:
    """The pending nodes a user must see listed before choosing to include them (most probable first)."""
    hidden = hidden_ids(candidates, threshold)
    rows = [{"id": c.id, "name": c.name, "probability": c.probability, "hidden": c.id in hidden}
            for c in candidates if c.review == "pending"]
    return sorted(rows, key=lambda r: (-(r["probability"] if r["probability"] is not None else -1.0), r["id"]))


def fit_words(text: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """``text`` shortened to ``limit`` characters at a word boundary (never inside a word), '...' marking the cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    words, out = text.split(" "), ""
    for word in words:
        candidate = f"{out} {word}" if out else word
        if len(candidate) + 4 > limit:
            break
        out = candidate
    return (out.rstrip(",;:") + " ...") if out else text[:limit - 3] + "..."


# ---- the review folder: its results with decisions, the fingerprint, the export record ------------------------------

def read_reviewed_results(results_dir: Path | str) -> tuple[Results, Optional[dict]]:
    """The results as last reviewed: ``RESULTS/review/`` when a review was saved (decisions from review.json, which
    is written first), else the run's own folder. Returns (results, the review.json content or None)."""
    results_dir = Path(results_dir)
    review_dir = results_dir / "review"
    if not (review_dir / REVIEW_FILE).is_file():
        return Results.read(results_dir), None
    decisions = json.loads((review_dir / REVIEW_FILE).read_text())
    results = Results.read(review_dir)
    ids = {c.id for c in results.candidates}
    for key, state in decisions.get("decisions", {}).items():
        if int(key) in ids:
            results.candidate(int(key)).review = state
    return results, decisions


def review_fingerprint(results: Results) -> str:
    """sha256 of what an export depends on: each node's name and decision, and the label map (voxels + grid)."""
    digest = hashlib.sha256()
    rows = sorted((c.id, c.name, c.review) for c in results.candidates)
    digest.update(json.dumps(rows).encode())
    if results.gtv_ln is not None:
        image = results.gtv_ln
        # Grid rounded well above NIfTI's float32 rounding, so a review restored from disk has the same fingerprint
        digest.update(json.dumps([image.GetSize(), [round(v, 3) for v in image.GetSpacing()],
                                  [round(v, 2) for v in image.GetOrigin()],
                                  [round(v, 4) for v in image.GetDirection()]]).encode())
        digest.update(np.ascontiguousarray(sitk.GetArrayViewFromImage(image)).tobytes())
    return digest.hexdigest()


@dataclass
class ExportRecord:
    path: str
    kind: str
    rois: list[str]
    counts: dict
    include_pending: bool
    fingerprint: str
    exported_at: str
    summary: str  # the counts, and whether the probabilities were re-scored from the review's decisions


def write_record(review_dir: Path | str, summary, results: Results, counts: ExportCounts,
                 include_pending: bool) -> ExportRecord:
    """Save what was exported beside the review (export.json), atomically."""
    record = ExportRecord(path=str(summary.path), kind=summary.kind, rois=[r.name for r in summary.rois],
                          counts=asdict(counts), include_pending=bool(include_pending),
                          fingerprint=review_fingerprint(results),
                          exported_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                          summary=" ".join([counts.text(summary.kind), *filter(None, [rescore_summary(results)])]))
    review_dir = Path(review_dir)
    review_dir.mkdir(parents=True, exist_ok=True)
    with atomic_file(review_dir / RECORD_FILE) as tmp:
        tmp.write_text(json.dumps(asdict(record), indent=1))
    return record


def read_record(review_dir: Path | str) -> Optional[ExportRecord]:
    path = Path(review_dir) / RECORD_FILE
    if not path.is_file():
        return None
    try:
        return ExportRecord(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None  # a damaged record: treated as no export, so the file is not served


def export_state(review_dir: Path | str, results: Results) -> str:
    """'none' (never exported), 'current' (the file matches the review) or 'stale' (changed since: re-export)."""
    record = read_record(review_dir)
    if record is None or not Path(record.path).is_file():
        return "none"
    return "current" if record.fingerprint == review_fingerprint(results) else "stale"
