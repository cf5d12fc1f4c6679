"""What the review page offers for download, and the DICOM SEG written beside each RTSTRUCT export.

Planning systems read RTSTRUCT; viewers and research tools often prefer DICOM SEG (voxel masks, no polygon
rounding). Both objects of one export come from the same reviewed results at the same moment, so the one export
record (export/review_rule.py) dates both: after a later decision or edit both are refused (HTTP 409) until the
reviewer exports again. Every download is served with Cache-Control: no-store (web/security.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import LNStagingError

RTSTRUCT_NAME = "RS_LNStaging.dcm"
SEG_NAME = "SEG_LNStaging.dcm"
# file name -> the case folder it is served from ("review": CASE/review/, "export": CASE/export/, refused when stale)
DOWNLOADS = {"gtv_ln.nii.gz": "review", "review.json": "review", "report.html": "review", RTSTRUCT_NAME: "export",
             SEG_NAME: "export"}


def export_seg_beside(results, ct_dicom: Path, export_dir: Path, threshold: Optional[float],
                      include_pending: bool) -> str:
    """The same nodes as the RTSTRUCT just written, as a DICOM SEG (export/seg.py through the library's exporter).
    Returns '' or why it was not written; the SEG of an earlier export is removed first, so it is never served as
    this export's."""
    from ..export.exporter import export_results

    path = Path(export_dir) / SEG_NAME
    path.unlink(missing_ok=True)
    try:
        export_results(results, ct_dicom, path, kind="seg", include_pending=include_pending, threshold=threshold)
    except LNStagingError as error:
        return f"The RTSTRUCT was written, the SEG was not: {error}"
    return ""
