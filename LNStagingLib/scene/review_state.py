"""Save and restore a whole review so nothing the user did is lost when Slicer closes or the run is repeated.

A review folder is a results folder (Results.write, with GTV_LN updated from the user's edits) plus:
  GTV_LN.seg.nrrd      the segmentation exactly as edited (segment names, colours, terminology, candidate tags)
  candidates.tsv       the candidate table as shown
  centroids.mrk.json   the centroid markups
  review.json          the decisions: review state per candidate, operating point, show-rejected, FROC, and each
                       decision and contour edit with its UTC time and the reviewer's name ("events")
It is written atomically (complete or absent). ``save_review_mrb`` also writes a Slicer scene bundle (.mrb).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import slicer

from .. import NOT_FOR_CLINICAL_USE
from ..errors import InputFileError
from ..io.atomic import atomic_directory
from ..progress import Progress
from ..results import Results
from ..review_log import usable_events
from . import markups, table
from .review import ReviewScene

SEGMENTATION_FILE = "GTV_LN.seg.nrrd"
TABLE_FILE = "candidates.tsv"
MARKUPS_FILE = "centroids.mrk.json"
REVIEW_FILE = "review.json"


def _write_node(node, storage_class: str, path: Path) -> None:
    storage = getattr(slicer, storage_class)()
    storage.SetFileName(str(path))
    if storage_class == "vtkMRMLSegmentationStorageNode":
        # Only the box that holds segments (world position kept, reference geometry stored as a tag): on a
        # 512x512x150 CT 0.5 s instead of 3 s per save, which is after every brush stroke in the review.
        storage.SetCropToMinimumExtent(True)
    if not storage.WriteData(node):
        raise OSError(f"could not write {path.name}")


def review_decisions(review: ReviewScene) -> dict:
    return {
        "disclaimer": NOT_FOR_CLINICAL_USE,
        "decisions": {str(c.id): c.review for c in review.results.candidates},
        "notes": {str(c.id): c.note for c in review.results.candidates if c.note},
        "operating_point": dict(review.results.patient.operating_point),
        "threshold": review.threshold,
        "show_rejected": review.show_rejected,
        "froc": [list(p) for p in review.froc],
        "reviewer": review.reviewer,
        "events": list(review.events),
    }


def save_review(review: ReviewScene, folder: Path | str, read_edits_first: bool = True,
                progress: Optional[Progress] = None) -> Path:
    """Write the review folder (see module docstring). The user's segment edits are read back first (told to
    ``progress``; Cancel there writes nothing and changes nothing)."""
    if read_edits_first:
        review.read_edits(progress=progress)
    folder = Path(folder)
    with atomic_directory(folder, replace_marker=REVIEW_FILE) as tmp:
        review.results.write(tmp)
        if review.segmentation is not None:
            _write_node(review.segmentation, "vtkMRMLSegmentationStorageNode", tmp / SEGMENTATION_FILE)
        if review.table is not None:
            _write_node(review.table, "vtkMRMLTableStorageNode", tmp / TABLE_FILE)
        if review.markups is not None:
            _write_node(review.markups, "vtkMRMLMarkupsJsonStorageNode", tmp / MARKUPS_FILE)
        (tmp / REVIEW_FILE).write_text(json.dumps(review_decisions(review), indent=1, allow_nan=False))
    return folder


def read_decisions(folder: Path | str) -> dict:
    path = Path(folder) / REVIEW_FILE
    if not path.is_file():
        raise InputFileError(f"{folder} has no {REVIEW_FILE}: it is not a saved LNStaging review.")
    try:
        decisions = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InputFileError(f"{path} is empty or corrupt ({type(error).__name__}): the review cannot be restored from "
                             "it; move it away to start the review again (the results are kept).") from None
    if not isinstance(decisions, dict) or not isinstance(decisions.get("decisions", {}), dict):
        raise InputFileError(f"{path} is not an LNStaging review (no 'decisions' table): move it away to start the "
                             "review again.")
    return decisions


def apply_decisions(results: Results, decisions: dict) -> None:
    """Set review states (and notes) from a review.json onto Results; unknown ids are ignored."""
    ids = {c.id for c in results.candidates}
    for key, state in decisions.get("decisions", {}).items():
        if int(key) in ids:
            results.candidate(int(key)).review = state
    for key, note in decisions.get("notes", {}).items():
        if int(key) in ids:
            results.candidate(int(key)).note = note
    if decisions.get("operating_point"):
        results.patient.operating_point = dict(decisions["operating_point"])


def read_saved_review(folder: Path | str) -> tuple[Results, dict]:
    """The files of a saved review (Results with its decisions applied, and review.json): no scene involved, so
    a GUI can read them on a worker thread."""
    folder = Path(folder)
    decisions = read_decisions(folder)
    results = Results.read(folder)
    apply_decisions(results, decisions)
    return results, decisions


def restore_review(scene, folder: Path | str, ct_node, pet_node=None, saved: Optional[tuple] = None,
                   progress: Optional[Progress] = None) -> ReviewScene:
    """Rebuild a saved review in ``scene`` over a loaded CT (and PET): the edited segmentation as saved,
    decisions, operating point; table and markups re-rendered from the restored Results. ``saved``: what
    read_saved_review(folder) returned, when the caller read it already; ``progress`` as in ReviewScene.show."""
    folder = Path(folder)
    progress = progress or Progress()
    results, decisions = saved or read_saved_review(folder)
    segmentation_path = folder / SEGMENTATION_FILE
    gtv_ln, results.gtv_ln = results.gtv_ln, None  # the saved segmentation replaces the one built from labels
    review = ReviewScene.show(scene, results, ct_node, pet_node, froc=decisions.get("froc", []),
                              progress=progress.sub(0.0, 0.6))
    results.gtv_ln = gtv_ln
    progress.step(0.6, "GTV_LN segments")
    if segmentation_path.is_file():
        node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "GTV_LN")
        storage = slicer.vtkMRMLSegmentationStorageNode()
        storage.SetFileName(str(segmentation_path))
        if not storage.ReadData(node):
            raise InputFileError(f"{segmentation_path} could not be read: the review folder is damaged.")
        node.CreateDefaultDisplayNodes()
        review.segmentation = node
    elif gtv_ln is not None:
        from . import segments

        review.segmentation = segments.add_candidate_segments(scene, results, ct_node)
    review.threshold = float(decisions.get("threshold", review.threshold))
    review.reviewer = str(decisions.get("reviewer") or "")
    review.events = usable_events(decisions.get("events"))
    review.show_rejected = bool(decisions.get("show_rejected", False))
    labels_path = folder / Results.IMAGE_FILES["gtv_ln"]
    if (segmentation_path.is_file() and labels_path.is_file()
            and segmentation_path.stat().st_mtime_ns > labels_path.stat().st_mtime_ns):
        # a stroke saved in the segmentation, the process killed before GTV_LN followed it
        review.read_edits(progress=progress.sub(0.7, 1.0))
    review.refresh()
    review.tag_nodes()
    return review


def save_review_mrb(review: ReviewScene, path: Path | str) -> Path:
    """Write the whole scene as a Slicer data bundle (.mrb) after reading edits back into Results."""
    review.read_edits()
    path = Path(path)
    scene = review.scene
    for node in (review.ct, review.pet, review.attention, review.segmentation, review.table, review.markups):
        if node is not None and node.GetStorageNode() is None:
            node.AddDefaultStorageNode()
    import vtk

    was_shown = vtk.vtkObject.GetGlobalWarningDisplay()
    vtk.vtkObject.GlobalWarningDisplayOff()  # the zip writer logs every file it adds
    try:
        written = scene.WriteToMRB(str(path))
    finally:
        vtk.vtkObject.SetGlobalWarningDisplay(was_shown)
    if not written:
        raise OSError(f"could not write the scene bundle {path}")
    return path


def write_review_report(review: ReviewScene, results_dir: Path | str, case_id: str = "", study_date: str = "",
                        progress: Optional[Progress] = None) -> Path:
    """The reviewed report (report.write_reviewed_report, as the browser review and ``lnstaging report`` write it)
    from a review in a scene: the review is saved into RESULTS/review/ first (edits read back), then report.html is
    written there from that saved state with the scene's CT and PET. Returns the report's path."""
    from ..report import write_reviewed_report
    from . import volumes

    results_dir = Path(results_dir)
    if (results_dir / REVIEW_FILE).is_file():
        results_dir = results_dir.parent  # given the review folder itself: its parent holds the run
    save_review(review, results_dir / "review", progress=progress)
    ct = None if review.pet_only else volumes.image_from_volume(review.ct)  # a PET-only run: the PET alone
    pet = volumes.image_in_frame(review.pet, review.ct) if review.pet is not None else None  # registered PET
    return write_reviewed_report(results_dir, ct, pet, case_id=case_id, study_date=study_date)
