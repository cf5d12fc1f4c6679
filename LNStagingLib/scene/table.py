"""The candidate table as a vtkMRMLTableNode, rows in rank order (most probable, or highest SUVpeak, first).

A run ranked by SUVpeak has no probability column (no classifier ran: nothing to show as a probability)."""

from __future__ import annotations

from typing import Optional

import vtk

from ..inference.rescore_record import change_text, rescored_changes
from ..results import Results

COLUMNS = (  # (name, vtk array class, title)
    ("id", vtk.vtkIntArray, "ID"),
    ("name", vtk.vtkStringArray, "Name"),
    ("probability", vtk.vtkDoubleArray, "Probability"),
    ("volume_ml", vtk.vtkDoubleArray, "Volume (ml)"),
    ("short_axis_mm", vtk.vtkDoubleArray, "Short axis (mm)"),
    ("suv_max", vtk.vtkDoubleArray, "SUVmax"),
    ("suv_peak", vtk.vtkDoubleArray, "SUVpeak"),
    ("review", vtk.vtkStringArray, "Review"),
    ("rescored_change", vtk.vtkStringArray, "Re-scored"),  # "+0.120": how far the decisions moved it (issue 19)
)
TABLE_NAME = "LNStaging candidates"


def add_candidate_table(scene, results: Results, name: str = TABLE_NAME):
    node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    node.SetUseColumnTitleAsColumnHeader(True)  # header = titles, so view row i = table row i
    node.SetLocked(True)  # the table mirrors Results; edits go through accept/reject, not cell typing
    update_candidate_table(node, results)
    return node


def update_candidate_table(node, results: Results) -> None:
    """Rewrite every row from ``results`` (in rank order; a probability column only when a classifier ran)."""
    results.rank_candidates()
    ordered = sorted(results.candidates, key=lambda c: c.rank)
    changes = rescored_changes(results)
    table = vtk.vtkTable()
    columns = shown_columns(results)
    for column, array_class, _ in columns:
        array = array_class()
        array.SetName(column)
        for c in ordered:
            if column == "rescored_change":
                value = change_text(changes[c.id]) if c.id in changes else ""
            else:
                value = getattr(c, column)
            if column == "probability":
                value = float("nan") if value is None else value
            array.InsertNextValue(value)
        table.AddColumn(array)
    was_modifying = node.StartModify()
    node.SetAndObserveTable(table)
    for column, _, title in columns:
        node.SetColumnTitle(column, title)
    node.EndModify(was_modifying)


def shown_columns(results: Results) -> tuple:
    return tuple(c for c in COLUMNS if results.ranks_by_probability or c[0] != "probability")


def candidate_id_at_row(node, row: int) -> Optional[int]:
    """The candidate id shown in a table row (for click-to-jump); None outside the table."""
    if not 0 <= row < node.GetNumberOfRows():
        return None
    return int(node.GetTable().GetColumnByName("id").GetValue(row))


def row_of_candidate(node, candidate_id: int) -> Optional[int]:
    ids = node.GetTable().GetColumnByName("id")
    for row in range(ids.GetNumberOfValues()):
        if ids.GetValue(row) == candidate_id:
            return row
    return None


def column_values(node, column: str) -> list:
    array = node.GetTable().GetColumnByName(column)
    return [array.GetValue(i) for i in range(array.GetNumberOfValues())]
