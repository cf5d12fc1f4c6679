"""report.html: the Results of one run as a page a person can read without Slicer.

Self-contained (images embedded as base64 PNG, no external scripts or fonts), so it can be mailed or archived.
Slice views are resampled onto an LPS-aligned 1 mm grid around each candidate so that every view is shown in
radiological convention (patient right on image left) whatever the CT's direction matrix.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Optional

import numpy as np
import SimpleITK as sitk

from . import NOT_FOR_CLINICAL_USE, __version__
from .results import Results, candidate_row

VIEW_MM = 80  # field of view of a candidate's slice views
MAX_CANDIDATE_FIGURES = 12


def aligned_window(image: sitk.Image, centre_lps, size_mm: float = VIEW_MM, spacing: float = 1.0,
                   interpolator=sitk.sitkLinear, default: float = 0.0) -> np.ndarray:
    """A cube around ``centre_lps`` on an identity-direction grid, as a [z, y, x] array."""
    n = int(round(size_mm / spacing))
    origin = [c - spacing * (n - 1) / 2.0 for c in centre_lps]
    ref = sitk.Image([n, n, n], sitk.sitkUInt8)
    ref.SetSpacing([spacing] * 3)
    ref.SetOrigin(origin)
    out = sitk.Resample(image, ref, sitk.Transform(), interpolator, default, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=72, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _candidate_figure(ct, pet, labels, candidate) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = candidate.centroid_lps
    ct_win = aligned_window(ct, c, default=-1000.0)
    pet_win = aligned_window(pet, c) if pet is not None else None
    lab_win = aligned_window(labels, c, interpolator=sitk.sitkNearestNeighbor) if labels is not None else None
    mid = ct_win.shape[0] // 2
    planes = {
        "axial": lambda a: a[mid],
        "coronal": lambda a: a[::-1, mid, :],
        "sagittal": lambda a: a[::-1, :, mid],
    }
    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.6))
    for ax, (name, take) in zip(axes, planes.items()):
        ax.imshow(take(ct_win), cmap="gray", vmin=-160, vmax=240)
        if pet_win is not None:
            p = take(pet_win)
            ax.imshow(np.ma.masked_less(p, 1.0), cmap="hot", vmin=0, vmax=max(5.0, float(np.nanmax(p))), alpha=0.45)
        if lab_win is not None:
            ax.contour(take(lab_win) == candidate.id, levels=[0.5], colors=["#00e5ff"], linewidths=1.0)
        ax.set_title(name, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{candidate.name}  p={_fmt(candidate.probability)}", fontsize=9)
    data = _png(fig)
    plt.close(fig)
    return data


def _overview_figure(pet, results: Results) -> Optional[str]:
    """Coronal PET maximum intensity projection with the candidates marked, on an LPS-aligned 2 mm grid."""
    if pet is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corners = [pet.TransformContinuousIndexToPhysicalPoint([i * (s - 1) for i, s in zip(ijk, pet.GetSize())])
               for ijk in np.ndindex(2, 2, 2)]
    lo, hi = np.min(corners, axis=0), np.max(corners, axis=0)
    spacing = 2.0
    n = np.maximum(((hi - lo) / spacing).astype(int) + 1, 1)
    ref = sitk.Image([int(v) for v in n], sitk.sitkUInt8)
    ref.SetSpacing([spacing] * 3)
    ref.SetOrigin(lo.tolist())
    arr = sitk.GetArrayFromImage(sitk.Resample(pet, ref, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32))
    mip = arr.max(axis=1)[::-1]  # coronal: rows = superior at top, columns = x (patient right on the left)
    fig, ax = plt.subplots(figsize=(3.5, 3.5 * max(mip.shape[0] / max(mip.shape[1], 1), 0.5)))
    ax.imshow(mip, cmap="gray_r", vmin=0, vmax=max(float(np.percentile(mip, 99.5)), 1.0))
    for c in results.candidates:
        x = (c.centroid_lps[0] - lo[0]) / spacing
        row = mip.shape[0] - 1 - (c.centroid_lps[2] - lo[2]) / spacing
        colour = "#d62728" if (c.probability or 0) >= 0.5 else "#1f77b4"
        ax.plot([x], [row], "o", mfc="none", mec=colour, ms=6)
        ax.text(x + 2, row, f"{c.id}", color=colour, fontsize=6)
    ax.set_title("PET MIP (coronal), candidates", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    data = _png(fig)
    plt.close(fig)
    return data


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def render_report(results: Results, ct: sitk.Image, pet: Optional[sitk.Image] = None, title: str = "LNStaging report") -> str:
    """The HTML text of the report for ``results`` on the CT (and PET on the CT grid)."""
    rows = [candidate_row(c) for c in sorted(results.candidates, key=lambda c: c.rank or c.id)]
    columns = ["rank", "name", "probability", "volume_ml", "short_axis_mm", "suv_max", "suv_peak", "x_lps_mm", "y_lps_mm", "z_lps_mm", "review", "source"]
    table = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(row.get(col, '')))}</td>" for col in columns) + "</tr>" for row in rows
    )
    p = results.patient
    skipped = "".join(f"<li>{html.escape(s)}</li>" for s in results.skipped) or "<li>nothing</li>"
    overview = _overview_figure(pet, results)
    figures = []
    for c in sorted(results.candidates, key=lambda c: c.rank or c.id)[:MAX_CANDIDATE_FIGURES]:
        figures.append(f'<img alt="{c.name}" src="data:image/png;base64,{_candidate_figure(ct, pet, results.gtv_ln, c)}">')
    operating = html.escape(", ".join(f"{k} = {v}" for k, v in p.operating_point.items()) or "–")
    models = results.provenance.get("models", {})
    model_rows = "".join(f"<li>{html.escape(str(k))}: {html.escape(str(v.get('id', v)) if isinstance(v, dict) else str(v))}</li>" for k, v in models.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
.warning {{ background: #fff3cd; border: 1px solid #e0b000; padding: .6em; font-weight: bold; }}
table {{ border-collapse: collapse; font-size: 12px; }} td, th {{ border: 1px solid #ccc; padding: 2px 6px; text-align: right; }}
img {{ margin: 4px; border: 1px solid #ddd; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="warning">{NOT_FOR_CLINICAL_USE} Every candidate must be reviewed by a qualified clinician.</p>
<h2>Patient</h2>
<ul><li>Metastasis probability: {_fmt(p.metastasis_probability)}</li>
<li>Operating point: {operating}</li>
<li>Candidates: {len(results.candidates)}, {html.escape(results.ranking_text)}; at or above the operating point: {sum(1 for c in results.candidates if c.probability is not None and c.probability >= float(p.operating_point.get('threshold', 0.5)))}</li></ul>
<h2>Skipped steps</h2><ul>{skipped}</ul>
<h2>Candidates</h2>
<table><tr>{''.join(f'<th>{c}</th>' for c in columns)}</tr>{table}</table>
{f'<h2>Overview</h2><img alt="overview" src="data:image/png;base64,{overview}">' if overview else ''}
<h2>Candidate views</h2>
<p>Axial, coronal and sagittal slices through each candidate centre (80 mm field, radiological convention), CT with PET
(SUV &ge; 1) and the GTV_LN contour in cyan. At most {MAX_CANDIDATE_FIGURES} candidates, by rank.</p>
{''.join(figures) or '<p>No candidates.</p>'}
<h2>Provenance</h2><ul>{model_rows or '<li>no models recorded</li>'}<li>lnstaging {__version__}</li></ul>
</body></html>
"""


def write_report(path: Path | str, results: Results, ct: sitk.Image, pet: Optional[sitk.Image] = None) -> None:
    Path(path).write_text(render_report(results, ct, pet), encoding="utf-8")
