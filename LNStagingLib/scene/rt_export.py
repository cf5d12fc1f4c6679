"""RTSTRUCT of a review through SlicerRT's DICOM RT exporter (inside Slicer, when SlicerRT is installed).

What leaves is decided by the library's rule (``export.rois.select_rois``): accepted nodes, plus pending ones only
when the caller says so (the widget asks first), never rejected ones; one ROI per node named GTVn_xx.

SlicerRT's ``ExportDicomRTStudy`` (vtkSlicerDicomRtImportExportModuleLogic) refuses an export without the primary
anatomical image, takes patient and study tags from the *first* exportable's tags, and reads the StudyID from the
study item's attribute named ``StudyID`` (no ``DICOM.`` prefix). So the CT and the segmentation both go in, the CT
first, every exportable carries the ``DICOM.*`` attributes of the CT's patient and study items (what Slicer's DICOM
export dialog copies), and the study item gets a ``StudyID`` attribute when it has only ``DICOM.StudyID``.

The plugin object is passed in (``DicomRtImportExportPlugin.DicomRtImportExportPluginClass()`` in Slicer), so a
test can hand in a fake that records the call.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import SimpleITK as sitk

import slicer

from ..errors import ExportError
from ..export.rois import select_rois
from ..results import Results
from . import segments

DICOM_PREFIX = "DICOM."
EXPORT_NODE_NAME = "GTVn (RTSTRUCT export)"


def review_rule_kwargs(function, include_pending: bool) -> dict:
    """The keyword that asks ``function`` (select_rois, export_label_map) for accepted nodes only, or accepted plus
    pending: ``include_pending`` where the library has it, else the older ``only_accepted`` (same rule, inverted).
    Transitional: drop the fallback once every exporter takes ``include_pending``."""
    if "include_pending" in inspect.signature(function).parameters:
        return {"include_pending": bool(include_pending)}
    return {"only_accepted": not include_pending}


def subject_item(hierarchy, node) -> int:
    """The node's subject hierarchy item; created under the scene when missing (Slicer's plugin logic makes one for
    every data node, a bare MRML scene does not)."""
    item = hierarchy.GetItemByDataNode(node)
    if item == slicer.vtkMRMLSubjectHierarchyNode.GetInvalidItemID():
        item = hierarchy.CreateItem(hierarchy.GetSceneItemID(), node)
    return item


def dicom_tags(hierarchy, item_id) -> dict[str, str]:
    """Patient and study DICOM tags of an item's ancestors in the subject hierarchy (attributes ``DICOM.<Tag>``)."""
    patient = hierarchy.GetItemAncestorAtLevel(item_id, "Patient")
    study = hierarchy.GetItemAncestorAtLevel(item_id, "Study")
    invalid = slicer.vtkMRMLSubjectHierarchyNode.GetInvalidItemID()
    if patient == invalid or study == invalid:
        raise ExportError("The CT is not under a patient and a study in the Data module: load the CT from DICOM "
                          "(or drag it under a patient and study) so the RTSTRUCT gets the patient and study tags.")
    tags = {}
    for owner in (patient, study):
        for name in hierarchy.GetItemAttributeNames(owner):
            if name.startswith(DICOM_PREFIX) and len(name) > len(DICOM_PREFIX):
                tags[name[len(DICOM_PREFIX):]] = hierarchy.GetItemAttribute(owner, name)
    return tags


def pending_names(results: Results) -> list[str]:
    """Nodes nobody has accepted or rejected yet (listed in the widget's confirmation before they are included)."""
    return [c.name for c in sorted(results.candidates, key=lambda c: c.id) if c.review == "pending"]


def export_segmentation(scene, review, include_pending: bool = False):
    """A new segmentation node holding copies of the segments to export, named GTVn_xx (the library's rule).

    Only segment data is copied (``CopySegmentFromSegmentation``), never the node with its display and storage
    references, so the review's own node is untouched and nothing points at the user's files.
    """
    labels = sitk.GetArrayViewFromImage(review.results.gtv_ln)
    rois, _notes = select_rois(labels, review.results.candidates, **review_rule_kwargs(select_rois, include_pending))
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", EXPORT_NODE_NAME)
    node.SetReferenceImageGeometryParameterFromVolumeNode(review.ct)
    source = review.segmentation.GetSegmentation()
    target = node.GetSegmentation()
    for roi in rois:
        segment_id = segments.segment_id_for(review.segmentation, roi.label_values[0])
        if segment_id is None:
            continue
        target.CopySegmentFromSegmentation(source, segment_id)
        target.GetSegment(segment_id).SetName(roi.name)
    if target.GetNumberOfSegments() == 0:
        scene.RemoveNode(node)
        raise ExportError("No reviewed node has a segment to export: accept at least one node first.")
    return node


def export_with_slicerrt(scene, review, out_folder, plugin, include_pending: bool = False) -> list[str]:
    """Write the RTSTRUCT (and the CT series SlicerRT writes with it) into ``out_folder``; returns the ROI names."""
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    ct_item = subject_item(hierarchy, review.ct)
    tags = dicom_tags(hierarchy, ct_item)
    study = hierarchy.GetItemAncestorAtLevel(ct_item, "Study")
    if tags.get("StudyID") and not hierarchy.HasItemAttribute(study, "StudyID"):
        hierarchy.SetItemAttribute(study, "StudyID", tags["StudyID"])  # where ExportDicomRTStudy reads it
    node = export_segmentation(scene, review, include_pending)
    names = [node.GetSegmentation().GetNthSegment(i).GetName() for i in range(node.GetSegmentation().GetNumberOfSegments())]
    segmentation_item = subject_item(hierarchy, node)
    hierarchy.SetItemParent(segmentation_item, hierarchy.GetItemParent(ct_item))
    try:
        exportables = [*plugin.examineForExport(ct_item), *plugin.examineForExport(segmentation_item)]
        if len(exportables) < 2:
            raise ExportError("SlicerRT does not offer to export the CT and the segmentation: check that SlicerRT is "
                              "installed and the CT is a scalar volume.")
        Path(out_folder).mkdir(parents=True, exist_ok=True)
        for exportable in exportables:
            exportable.directory = str(out_folder)
            for tag, value in tags.items():
                exportable.setTag(tag, value)
        message = plugin.export(exportables)
        if message:
            raise ExportError(f"SlicerRT could not write the RTSTRUCT: {message}")
    finally:
        scene.RemoveNode(node)
    return names
