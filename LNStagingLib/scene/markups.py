"""Candidate centroids as a markups fiducial node (labels GTVn_xx, locked so a click does not move them)."""

from __future__ import annotations

from typing import Iterable, Optional

from ..results import Results
from .coordinates import lps_to_ras

MARKUPS_NAME = "LNStaging centroids"
CENTROID_DOT_MM = 1.5  # a dot at the centroid: a 5 mm node stays visible around it, the name beside it
LABEL_COLOUR = (1.0, 1.0, 1.0)  # white: apart from the decision colours (decision_style.py) and the PET heat map


def add_centroid_markups(scene, results: Results, name: str = MARKUPS_NAME):
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
    node.CreateDefaultDisplayNodes()
    style_centroid_markups(node)
    update_centroid_markups(node, results)
    node.SetLocked(True)
    return node


def style_centroid_markups(node) -> None:
    """Each centroid as a small dot with the node's name beside it: the default glyph (3 % of the view, filled)
    covered a small node and its decision colour (Slicer's 2D glyphs are drawn filled, so no ring)."""
    display = node.GetDisplayNode()
    display.SetGlyphType(display.Vertex2D)
    display.SetUseGlyphScale(False)
    display.SetGlyphSize(CENTROID_DOT_MM)
    display.SetColor(*LABEL_COLOUR)
    display.SetSelectedColor(*LABEL_COLOUR)
    display.SetFillVisibility(False)
    display.SetTextScale(2.5)


def update_centroid_markups(node, results: Results) -> None:
    """One control point per candidate, in id order; its description holds the candidate id."""
    was_modifying = node.StartModify()
    node.RemoveAllControlPoints()
    for c in sorted(results.candidates, key=lambda c: c.id):
        index = node.AddControlPoint(*lps_to_ras(c.centroid_lps), c.name)
        node.SetNthControlPointDescription(index, str(c.id))
    node.EndModify(was_modifying)


def control_point_index(node, candidate_id: int) -> Optional[int]:
    for i in range(node.GetNumberOfControlPoints()):
        if node.GetNthControlPointDescription(i) == str(candidate_id):
            return i
    return None


def set_visible_candidates(node, visible_ids: Iterable[int]) -> None:
    visible_ids = {str(i) for i in visible_ids}
    was_modifying = node.StartModify()
    for i in range(node.GetNumberOfControlPoints()):
        node.SetNthControlPointVisibility(i, node.GetNthControlPointDescription(i) in visible_ids)
    node.EndModify(was_modifying)
