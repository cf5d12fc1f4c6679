"""Saving a review folder while the user works: the files of ``review_state.save_review``, but only those a change
touches, so a click does not rewrite every image.

``save_review`` rewrites the whole folder (all images compressed again: 10+ s on a 512x512x150 CT); fine for "Save",
too slow after every accept/reject or brush stroke. Here:
  save_decisions(review, folder)  review.json first (restore takes decisions from it), then candidates.json/.csv,
                                  patient.json, provenance.json, the table and the markups; images untouched.
  save_edits(review, folder)      GTV_LN.seg.nrrd first (the stroke is then durable), edits read back, gtv_ln.nii.gz,
                                  then save_decisions.
Each file is replaced atomically (complete or not at all). Without a complete review folder yet, both fall back to
``save_review``. A crash between two files leaves the previous version of the later ones; ``restore_review`` then
takes the decisions of review.json and the segmentation of GTV_LN.seg.nrrd, which are written first.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import SimpleITK as sitk

from ..io.atomic import atomic_file
from ..results import Results
from .review import ReviewScene
from .review_state import (MARKUPS_FILE, REVIEW_FILE, SEGMENTATION_FILE, TABLE_FILE, _write_node, review_decisions,
                           save_review)


def _is_complete(folder: Path) -> bool:
    return (folder / REVIEW_FILE).is_file() and (folder / "candidates.json").is_file()


def _replace_from(tmp: Path, folder: Path) -> None:
    for path in sorted(Path(tmp).iterdir()):
        os.replace(path, folder / path.name)


def _write_node_into(node, storage_class: str, folder: Path, name: str) -> None:
    """Write a node (and its side files, e.g. the table's .schema.tsv) beside ``folder``, then move them in."""
    with tempfile.TemporaryDirectory(prefix=".node-", dir=folder.parent) as tmp:
        _write_node(node, storage_class, Path(tmp) / name)
        _replace_from(Path(tmp), folder)


def _write_results_tables(results: Results, folder: Path) -> None:
    """Results.write without its images (candidates.json/.csv, patient.json, provenance.json)."""
    images = {attr: getattr(results, attr) for attr in Results.IMAGE_FILES}
    try:
        for attr in images:
            setattr(results, attr, None)
        with tempfile.TemporaryDirectory(prefix=".tables-", dir=folder.parent) as tmp:
            results.write(tmp)
            _replace_from(Path(tmp), folder)
    finally:
        for attr, image in images.items():
            setattr(results, attr, image)


def save_decisions(review: ReviewScene, folder: Path | str) -> Path:
    """After a decision (accept/reject, operating point, show rejected): the small files only."""
    folder = Path(folder)
    if not _is_complete(folder):
        return save_review(review, folder, read_edits_first=False)
    with atomic_file(folder / REVIEW_FILE) as tmp:
        tmp.write_text(json.dumps(review_decisions(review), indent=1, allow_nan=False))
    _write_results_tables(review.results, folder)
    if review.table is not None:
        _write_node_into(review.table, "vtkMRMLTableStorageNode", folder, TABLE_FILE)
    if review.markups is not None:
        _write_node_into(review.markups, "vtkMRMLMarkupsJsonStorageNode", folder, MARKUPS_FILE)
    return folder


def save_segmentation(review: ReviewScene, folder: Path | str) -> bool:
    """Right after a stroke: only GTV_LN.seg.nrrd (about 0.15 s on a CT of 2.4 M voxels), which makes the stroke
    durable (``restore_review`` reads the edits back from it); save_edits follows. False without a complete review
    folder or a segmentation (save_edits then writes everything)."""
    folder = Path(folder)
    if not _is_complete(folder) or review.segmentation is None:
        return False
    _write_node_into(review.segmentation, "vtkMRMLSegmentationStorageNode", folder, SEGMENTATION_FILE)
    return True


def save_edits(review: ReviewScene, folder: Path | str, segmentation_saved: bool = False) -> Path:
    """After a contour edit: the segmentation first (from then on a kill loses nothing: ``restore_review`` reads the
    edits back from it when it is newer than gtv_ln.nii.gz), then the edits read back into Results, GTV_LN and the
    rest. Durable within 0.5 s of the stroke (docs/REVIEW.md, benchmark in Testing/test_web_faces.py)."""
    folder = Path(folder)
    if not _is_complete(folder):
        return save_review(review, folder)
    if review.segmentation is not None and not segmentation_saved:
        _write_node_into(review.segmentation, "vtkMRMLSegmentationStorageNode", folder, SEGMENTATION_FILE)
    report = review.read_edits()
    if review.segmentation is not None and (report["added"] or report["removed"]):  # segments renamed or dropped
        _write_node_into(review.segmentation, "vtkMRMLSegmentationStorageNode", folder, SEGMENTATION_FILE)
    if review.results.gtv_ln is not None:
        with atomic_file(folder / Results.IMAGE_FILES["gtv_ln"]) as tmp:
            sitk.WriteImage(review.results.gtv_ln, str(tmp), useCompression=True)
    return save_decisions(review, folder)
