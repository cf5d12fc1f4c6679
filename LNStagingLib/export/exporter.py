"""Export reviewed lymph nodes to DICOM (RTSTRUCT or SEG) referencing the planning CT.

The library entry points the CLI, the Slicer module (without SlicerRT) and the web review call:

    export_results(results, ct_dicom_folder, out_file, kind="rtstruct", include_pending=False, combined=False)
    export_label_map(labels_image, ct_dicom_folder, out_file, kind="seg", candidates=[...])
    export_review(results, ct_dicom_folder, out_file, review_dir, threshold, include_pending=False)

Which nodes leave is the review rule of ``review_rule``: accepted always, pending only with ``include_pending``,
rejected never. ``only_accepted`` is kept for callers written before that rule; accepted-only is the default now.

Every check runs before anything is written, and the file is written atomically: an error leaves no file.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import SimpleITK as sitk

from ..errors import ExportError
from ..inference.rescore_record import rescore_summary, rescored_changes
from ..progress import Progress
from ..results import Candidate, Results
from .ct_reference import read_ct_reference
from .review_rule import ExportCounts, ExportRecord, export_counts, write_record
from .rois import RoiSpec, labels_on_ct_grid, select_rois
from .rtstruct import build_rtstruct, write_dataset
from .seg import build_seg, require_seg_support

KINDS = ("rtstruct", "seg")
QUIET_WARNINGS = (".*exceeds the maximum length.*", ".*unlikely to represent the intended person name.*")


@dataclass
class ExportSummary:
    path: Path
    kind: str
    rois: list[RoiSpec]
    notes: list[str] = field(default_factory=list)
    counts: ExportCounts | None = None

    def lines(self) -> list[str]:
        names = ", ".join(r.name for r in self.rois)
        counts = [self.counts.text(self.kind)] if self.counts is not None else []
        return ([f"wrote {self.kind.upper()} {self.path} with {len(self.rois)} structure(s): {names}"] + counts
                + [f"note: {n}" for n in self.notes])


def _include_pending(include_pending: bool, only_accepted: bool) -> bool:
    if include_pending and only_accepted:
        raise ExportError("--only-accepted and --include-pending contradict each other: choose one.")
    return bool(include_pending)


def export_label_map(labels: sitk.Image, ct_dicom: Path | str, out: Path | str, kind: str = "rtstruct",
                     candidates: list[Candidate] | None = None, only_accepted: bool = False, combined: bool = False,
                     resample: bool = False, structure_set_label: str = "LNStaging GTVn",
                     series_uid: str | None = None, progress: Progress | None = None, include_pending: bool = False,
                     threshold: float | None = None, rescored_ids=()) -> ExportSummary:
    """Write ``labels`` (instance label map, value = candidate id) as an RTSTRUCT or SEG on the CT in ``ct_dicom``.

    ``rescored_ids``: candidates whose probability was re-scored from review decisions (said in their description)."""
    if kind not in KINDS:
        raise ExportError(f"Unknown export kind {kind!r}: choose one of {', '.join(KINDS)}.")
    include_pending = _include_pending(include_pending, only_accepted)
    if kind == "seg":
        require_seg_support()
    progress = progress or Progress()
    progress.step(0.0, "reading the CT series")
    pydicom_log = logging.getLogger("pydicom")
    level = pydicom_log.level
    pydicom_log.setLevel(logging.ERROR)  # pydicom also logs its value warnings
    try:
        with warnings.catch_warnings():
            # Values copied verbatim from the CT (an over-long Study ID, a one-component Patient's Name) are the
            # CT's; we keep them identical so the planning system matches the objects, and do not alarm about them.
            for message in QUIET_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            ct = read_ct_reference(ct_dicom, series_uid=series_uid)
            label_array = labels_on_ct_grid(labels, ct.image, resample=resample)
            rois, notes = select_rois(label_array, candidates, include_pending=include_pending, combined=combined,
                                      rescored_ids=rescored_ids)
            build = progress.sub(0.1, 0.95)
            if kind == "rtstruct":
                ds = build_rtstruct(ct, label_array, rois, label=structure_set_label, progress=build)
            else:
                ds = build_seg(ct, label_array, rois, progress=build)
            progress.step(0.97, f"writing the {kind.upper()}")  # last chance to cancel: after this the file exists
            path = write_dataset(ds, out)
    finally:
        pydicom_log.setLevel(level)
    if progress.callback is not None:
        progress.callback(1.0, f"{kind} written")
    counts = None
    if candidates is not None:
        written = {v for r in rois for v in r.label_values}
        counts = export_counts(list(candidates), written, threshold)
    return ExportSummary(Path(path), kind, rois, notes, counts)


def export_results(results: Results, ct_dicom: Path | str, out: Path | str, kind: str = "rtstruct",
                   only_accepted: bool = False, combined: bool = False, resample: bool = False,
                   series_uid: str | None = None, progress: Progress | None = None, include_pending: bool = False,
                   threshold: float | None = None) -> ExportSummary:
    """Export the GTV_LN of a Results object, honouring each candidate's review state."""
    if results.gtv_ln is None:
        raise ExportError("These results hold no GTV_LN label map (gtv_ln.nii.gz): run the pipeline or load a results folder first.")
    summary = export_label_map(results.gtv_ln, ct_dicom, out, kind=kind, candidates=list(results.candidates),
                               only_accepted=only_accepted, combined=combined, resample=resample,
                               series_uid=series_uid, progress=progress, include_pending=include_pending,
                               threshold=_threshold(results, threshold), rescored_ids=set(rescored_changes(results)))
    rescored = rescore_summary(results)  # the review's probabilities were re-scored from its decisions (issue 19)
    if rescored:
        summary.notes.append(rescored)
    return summary


def _threshold(results: Results, threshold: float | None) -> float | None:
    if threshold is not None:
        return float(threshold)
    value = (results.patient.operating_point or {}).get("threshold")
    return float(value) if value is not None else None


def export_review(results: Results, ct_dicom: Path | str, out: Path | str, review_dir: Path | str,
                  threshold: float | None = None, include_pending: bool = False, kind: str = "rtstruct",
                  progress: Progress | None = None, series_uid: str | None = None) -> tuple[ExportSummary, ExportRecord]:
    """Export a review (the faces' entry point) and save its record with the review, so a later change marks the
    file out of date (review_rule.export_state)."""
    summary = export_results(results, ct_dicom, out, kind=kind, include_pending=include_pending, threshold=threshold,
                             progress=progress, series_uid=series_uid)
    record = write_record(review_dir, summary, results, summary.counts, include_pending)
    return summary, record
