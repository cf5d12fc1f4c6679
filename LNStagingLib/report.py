"""report.html: the Results of one run as a page a person can read without Slicer.

Self-contained (images embedded as base64 PNG, no external scripts or fonts), so it can be mailed or archived.
Slice views are resampled onto an LPS-aligned 1 mm grid around each candidate so that every view is shown in
radiological convention (patient right on image left) whatever the CT's direction matrix.

One A4 page when printed (print CSS): case, patient result, operating point, the review (decisions, edits, export
summary, time stamps) when there is one, a candidate table with readable headers and numbers, a coronal PET MIP
with the candidates marked by decision, and slice thumbnails of the nodes that matter whose PET overlay (SUV >= 2,
translucent) keeps the CT visible. ``write_reviewed_report`` renders it from a saved review (results/review/):
the browser review, the Slicer module and ``lnstaging report RESULTS`` call it.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import SimpleITK as sitk

from . import NOT_FOR_CLINICAL_USE, __version__
from .errors import LNStagingError
from .inference.rescore_record import rescore_summary
from .results import Results, candidate_row
from .review_log import last_events, short_time, usable_events

VIEW_MM = 80  # field of view of a candidate's slice views
MAX_CANDIDATE_FIGURES = 4  # two rows of two: the page stays one A4 sheet
MAX_TABLE_ROWS = 12  # top rows, then a count: 60 candidates still print on one A4 page (Testing/test_report_print.py)
PET_OVERLAY_SUV = 2.0  # below: no tint, the CT shows through
PET_OVERLAY_SUV_MAX = 8.0  # the top of the PET overlay's colour scale (higher when the view holds more)
PET_ONLY_SUV_MAX = PET_OVERLAY_SUV_MAX  # a PET-only run shows the PET alone, inverted grey from SUV 0 to this (the
# report's thumbnails and the review's background, scene/volumes.py): the same scale as the overlay of a PET/CT run
from .decision_style import DECISION_COLOURS, DECISION_STYLES


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


def _png(fig, dpi: int = 110) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _draw_decision(ax, mask: np.ndarray, review: str) -> None:
    """The node drawn in its decision style (decision_style.py): accepted filled + thick outline, pending outline,
    rejected dashed grey: the same in the browser, Slicer and here."""
    style = DECISION_STYLES[review]
    if not mask.any():
        return
    if style.fill_opacity > 0:
        ax.contourf(mask, levels=[0.5, 1.5], colors=[style.colour_hex], alpha=style.fill_opacity)
    ax.contour(mask, levels=[0.5], colors=[style.colour_hex], linewidths=style.outline_px * 0.6,
               linestyles="dashed" if style.dashed else "solid")


def _candidate_figure(ct, pet, labels, candidate, show_p: bool = True) -> str:
    """Axial, coronal, sagittal views through the node: the CT with the PET overlaid, or, in a PET-only run (``ct``
    None), the PET itself in inverted grey (SUV 0 white to 8 black, as PET is read)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = candidate.centroid_lps
    ct_win = aligned_window(ct, c, default=-1000.0) if ct is not None else None
    pet_win = aligned_window(pet, c) if pet is not None else None
    lab_win = aligned_window(labels, c, interpolator=sitk.sitkNearestNeighbor) if labels is not None else None
    mid = (ct_win if ct_win is not None else pet_win).shape[0] // 2
    planes = {
        "axial": lambda a: a[mid],
        "coronal": lambda a: a[::-1, mid, :],
        "sagittal": lambda a: a[::-1, :, mid],
    }
    fig, axes = plt.subplots(1, 3, figsize=(5.4, 1.95))
    for ax, (name, take) in zip(axes, planes.items()):
        if ct_win is None:
            ax.imshow(take(pet_win), cmap="gray_r", vmin=0, vmax=PET_ONLY_SUV_MAX)
        else:
            ax.imshow(take(ct_win), cmap="gray", vmin=-160, vmax=240)
        if pet_win is not None and ct_win is not None:
            p = take(pet_win)
            ax.imshow(np.ma.masked_less(p, PET_OVERLAY_SUV), cmap="hot", vmin=0,
                      vmax=max(PET_OVERLAY_SUV_MAX, float(np.nanmax(p))), alpha=0.3)
        if lab_win is not None:
            _draw_decision(ax, take(lab_win) == candidate.id, candidate.review)
        ax.set_title(name, fontsize=7, pad=2)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.subplots_adjust(wspace=0.04)
    value = f"p = {_fmt_p(candidate.probability)}" if show_p else f"SUVpeak {_fmt(candidate.suv_peak, 1)}"
    fig.suptitle(f"{candidate.name}  {value}  ({candidate.review})", fontsize=8, y=0.99)
    data = _png(fig)
    plt.close(fig)
    return data


def coronal_mip(pet: sitk.Image, spacing: float = 2.0) -> tuple[np.ndarray, np.ndarray, float]:
    """Coronal maximum intensity projection of the PET resampled on an LPS-aligned grid (any scan direction):
    (mip, LPS corner of the grid, spacing); rows = superior at the top, columns = x (patient right on the left).
    The report's overview and the review page's clickable MIP (web/mip.py) both use it."""
    corners = [pet.TransformContinuousIndexToPhysicalPoint([i * (s - 1) for i, s in zip(ijk, pet.GetSize())])
               for ijk in np.ndindex(2, 2, 2)]
    lo, hi = np.min(corners, axis=0), np.max(corners, axis=0)
    n = np.maximum(((hi - lo) / spacing).astype(int) + 1, 1)
    ref = sitk.Image([int(v) for v in n], sitk.sitkUInt8)
    ref.SetSpacing([spacing] * 3)
    ref.SetOrigin(lo.tolist())
    arr = sitk.GetArrayFromImage(sitk.Resample(pet, ref, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32))
    return arr.max(axis=1)[::-1], lo, spacing


def mip_position(lps, lo, spacing: float, rows: int) -> tuple[float, float]:
    """(column, row) of an LPS point in coronal_mip's picture."""
    return (lps[0] - lo[0]) / spacing, rows - 1 - (lps[2] - lo[2]) / spacing


def _overview_figure(pet, results: Results, marked: Optional[set] = None) -> Optional[str]:
    """Coronal PET maximum intensity projection with the candidates marked, on an LPS-aligned 2 mm grid."""
    if pet is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mip, lo, spacing = coronal_mip(pet)
    aspect = max(mip.shape[0] / max(mip.shape[1], 1), 0.5)
    fig, ax = plt.subplots(figsize=(2.9, min(2.9 * aspect, 4.2)))
    ax.imshow(mip, cmap="gray_r", vmin=0, vmax=max(float(np.percentile(mip, 99.5)), 1.0))
    shown = [c for c in results.candidates if c.id in (marked if marked is not None else {c.id for c in results.candidates})]
    for c in shown:
        x, row = mip_position(c.centroid_lps, lo, spacing, mip.shape[0])
        colour = DECISION_COLOURS.get(c.review, "#1f77b4")
        ax.plot([x], [row], "o", mfc=colour if c.review == "accepted" else "none", mec=colour, ms=7, mew=1.3,
                ls="none")
        ax.text(x + 3, row, f"{c.id}", color=colour, fontsize=7, fontweight="bold")
    ax.set_title("PET MIP, coronal", fontsize=9)
    ax.text(2, mip.shape[0] - 3, "R", fontsize=9, fontweight="bold")
    ax.text(mip.shape[1] - 10, mip.shape[0] - 3, "L", fontsize=9, fontweight="bold")
    ax.set_xticks([])
    ax.set_yticks([])
    data = _png(fig)
    plt.close(fig)
    return data


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _fmt_p(p) -> str:
    if p is None or (isinstance(p, float) and np.isnan(p)):
        return "–"
    return f"{p:.3f}" if p >= 0.001 else "< 0.001"


@dataclass
class ReviewInfo:
    """What the review adds to the report: when it was saved, the operating point, the export (review/export.json)."""

    case_id: str = ""
    study_date: str = ""
    threshold: Optional[float] = None
    saved_at: str = ""
    export: dict = field(default_factory=dict)
    edited_ids: set = field(default_factory=set)
    reviewed: bool = False
    reviewer: str = ""
    events: list = field(default_factory=list)  # review.json "events": each decision/edit, UTC time, reviewer


TABLE_COLUMNS = ("Name", "p(metastasis)", "Short axis (mm)", "SUVmax", "SUVpeak", "Volume (ml)", "Decision",
                 "When (UTC)")


def below_operating_point(results: Results, c, threshold: Optional[float]) -> bool:
    """A pending candidate whose ranking value (probability or SUVpeak) is under the operating point: not shown."""
    value = results.ranking_value(c)
    return c.review == "pending" and threshold is not None and value is not None and value < float(threshold)


def _table(results: Results, threshold: Optional[float], edited: set, events: Optional[list] = None) -> str:
    ranked = sorted(results.candidates, key=lambda c: (c.rank or len(results.candidates) + c.id, c.id))
    below = [c for c in ranked if below_operating_point(results, c, threshold)]
    rows = [c for c in ranked if c not in below][:MAX_TABLE_ROWS]
    latest = last_events(events or [])
    show_p = results.ranks_by_probability
    columns = [t for t in TABLE_COLUMNS if show_p or t != "p(metastasis)"]
    body = []
    for c in rows:
        short = f"{c.short_axis_mm:.1f}" + (" ≥10" if c.short_axis_mm >= 10 else "")
        decision = c.review + (", edited" if c.id in edited else "")
        when = short_time(latest[c.id]["at"]) if c.id in latest else ""
        cells = [c.name] + ([_fmt_p(c.probability)] if show_p else []) + [
            short, _fmt(float(c.suv_max), 1), _fmt(float(c.suv_peak), 1), _fmt(float(c.volume_ml), 2), decision, when]
        body.append(f'<tr class="{c.review}">' + "".join(f"<td>{html.escape(v)}</td>" for v in cells)
                    + f'<td class="dot" style="color:{DECISION_COLOURS.get(c.review, "#000")}">●</td></tr>')
    more = len(ranked) - len(rows) - len(below)
    notes = []
    if below:
        value = (f"highest p {_fmt_p(below[0].probability)}" if show_p
                 else f"highest SUVpeak {_fmt(below[0].suv_peak, 1)}")
        notes.append(f"{len(below)} pending candidate(s) below the operating point not listed (never shown to the "
                     f"reviewer; {value})")
    if more > 0:
        notes.append(f"{more} more candidate(s) not listed")
    head = "".join(f"<th>{t}</th>" for t in columns) + "<th></th>"
    foot = f'<p class="note">{html.escape("; ".join(notes))}.</p>' if notes else ""
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{foot}"


OTHER_FINDING_LABELS = {"large_lesion": "large lesion (likely primary or physiological)",
                        "outside_site": "outside the site's nodal region", "physiological": "physiological uptake",
                        "primary": "primary tumour"}


def _other_findings_section(results: Results) -> str:
    """Collapsed list of the PET lesions that are not in the node list (other_findings.csv), with their reason."""
    if not results.other_findings:
        return ""
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
            OTHER_FINDING_LABELS.get(f.get("reason", ""), f.get("reason", "")), _fmt(float(f["mtv_ml"]), 1),
            _fmt(float(f["suv_max"]), 1), " / ".join(f"{float(f[k]):.0f}" for k in ("x", "y", "z")), f.get("how", "")))
        + "</tr>" for f in results.other_findings[:MAX_TABLE_ROWS])
    head = "".join(f"<th>{t}</th>" for t in ("Reason", "Volume (ml)", "SUVmax", "x / y / z LPS (mm)", "Why"))
    return (f"<details><summary>Other findings, not in the node list: {len(results.other_findings)} "
            f"(other_findings.csv)</summary><table><tr>{head}</tr>{rows}</table></details>")


def _provenance(results: Results) -> str:
    """Every model given to the run, applied or not and why (Results.models), and the software version."""
    items = [html.escape(line) for line in results.models_text()] or ["no trained model given to this run"]
    items.append(f"lnstaging {__version__}")
    return " · ".join(items)


def _rescore_line(results: Results) -> str:
    """Says when the shown probabilities were re-scored from review decisions (issue 19), and from which."""
    line = rescore_summary(results)
    return f"<li>{html.escape(line)}</li>" if line else ""


def render_report(results: Results, ct: Optional[sitk.Image], pet: Optional[sitk.Image] = None,
                  title: str = "LNStaging report", review: Optional[ReviewInfo] = None) -> str:
    """The HTML text of the one-page report for ``results`` on the CT (and PET), or on the PET alone (``ct`` None:
    a PET-only run), with the review when given."""
    if ct is None and pet is None:
        raise LNStagingError("The report needs the case's CT or PET: give the images the run read.")
    review = review or ReviewInfo()
    p = results.patient
    threshold = review.threshold if review.threshold is not None else p.operating_point.get("threshold")
    states = [c.review for c in results.candidates]
    hidden = sum(1 for c in results.candidates if below_operating_point(results, c, threshold))
    operating = "–" if threshold is None else html.escape(results.operating_point_text(threshold))
    # the nodes that matter: accepted first, then the highest ranked pending ones
    ranked = sorted(results.candidates, key=lambda c: (c.rank or len(results.candidates) + c.id, c.id))
    chosen = [c for c in ranked if c.review == "accepted"]
    chosen += [c for c in ranked if c.review == "pending" and c not in chosen
               and not below_operating_point(results, c, threshold)]
    chosen = chosen[:MAX_CANDIDATE_FIGURES]
    visible = {c.id for c in ranked if not below_operating_point(results, c, threshold)}
    overview = _overview_figure(pet, results, marked=visible)
    figures = "".join(f'<img class="thumb" alt="{c.name}" src="data:image/png;base64,'
                      f'{_candidate_figure(ct, pet, results.gtv_ln, c, results.ranks_by_probability)}">'
                      for c in chosen)
    case = " · ".join(x for x in (f"Case {html.escape(review.case_id)}" if review.case_id else "",
                                   f"study date {html.escape(review.study_date)}" if review.study_date else "",
                                   f"report {time.strftime('%Y-%m-%d %H:%M')}") if x)
    if review.reviewed:
        export = review.export
        export_text = (f"{html.escape(export.get('summary', ''))} ({html.escape(export.get('exported_at', ''))}"
                       f"{', OUT OF DATE: the review changed after it' if export.get('stale') else ''})"
                       if export else "not exported yet")
        review_html = (f"<li>Review last saved {html.escape(review.saved_at or '–')}: {states.count('accepted')} "
                       f"accepted, {states.count('pending')} pending ({hidden} below the operating point), "
                       f"{states.count('rejected')} rejected; contours edited: "
                       f"{', '.join(f'GTVn_{i:02d}' for i in sorted(review.edited_ids)) or 'none'}</li>"
                       f"{_reviewer_line(review)}<li>Export: {export_text}</li>")
    else:
        review_html = "<li>Not reviewed yet: every candidate is pending.</li>"
    skipped = "; ".join(html.escape(s) for s in _grouped_skips(results.skipped))
    ran = "; ".join(html.escape(s) for s in results.notes)
    patient_line = (f"<li>Metastasis probability: <b>{_fmt(p.metastasis_probability, 2)}</b></li>"
                    if p.metastasis_probability is not None else
                    "<li>Metastasis probability: not computed (no patient-level model ran)</li>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
@page {{ size: A4; margin: 8mm; }}
body {{ font-family: "DejaVu Sans", Arial, sans-serif; margin: 1em auto; max-width: 190mm; color: #111; font-size: 9.5pt; }}
h1 {{ font-size: 14pt; margin: 0 0 2px 0; }} h2 {{ font-size: 10pt; margin: 5px 0 2px 0; border-bottom: 1px solid #999; }}
.case {{ font-size: 9pt; color: #333; }}
.warning {{ background: #fff3cd; border: 1px solid #e0b000; padding: 3px 6px; font-weight: bold; margin: 4px 0; }}
ul {{ margin: 2px 0; padding-left: 16px; }} li {{ margin: 1px 0; }}
.top {{ display: flex; gap: 10px; align-items: flex-start; }} .top > div {{ flex: 1; }}
table {{ border-collapse: collapse; font-size: 8.5pt; font-variant-numeric: tabular-nums; }}
td, th {{ border-bottom: 1px solid #ccc; padding: 1px 6px; text-align: right; }}
th {{ background: #eee; }} td:first-child, th:first-child, td:nth-child(7) {{ text-align: left; }}
td.dot {{ border: none; padding: 0 2px; }}
.note {{ font-size: 8pt; color: #444; margin: 2px 0; }}
img.mip {{ width: 60mm; }} img.thumb {{ width: 88mm; margin: 0; }}
.thumbs {{ display: flex; flex-wrap: wrap; }}
.prov {{ font-size: 6.5pt; color: #333; line-height: 1.15; margin: 0; }}
.thumbs img, tr {{ break-inside: avoid; }}
@media print {{ body {{ margin: 0; max-width: none; }} h2 {{ break-after: avoid; }} }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<div class="case">{case}</div>
<p class="warning">{NOT_FOR_CLINICAL_USE} Every candidate must be reviewed by a qualified clinician.</p>
<div class="top"><div>
<h2>Patient</h2>
<ul>{patient_line}
<li>Operating point: {operating}</li>{_rescore_line(results)}
<li>Candidates: {len(results.candidates)}, {html.escape(results.ranking_text)}</li>
{review_html}
</ul>
<h2>Candidates</h2>
{_table(results, threshold, review.edited_ids, review.events)}
{_other_findings_section(results)}
</div>
{f'<div style="flex: 0 0 60mm"><img class="mip" alt="PET MIP" src="data:image/png;base64,{overview}"><p class="note">{_legend()}</p></div>' if overview else ''}
</div>
<h2>Slices through the nodes ({_slices_legend(ct)}; radiological convention)</h2>
<div class="thumbs">{figures or '<p>No candidates.</p>'}</div>
<h2>Provenance</h2><p class="prov">{_provenance(results)}{f'<br>Ran: {ran}' if ran else ''}{f'<br>Skipped steps: {skipped}' if skipped else ''}</p>
</body></html>
"""


def _slices_legend(ct) -> str:
    if ct is None:
        return f"PET only, no CT given: SUV 0 to {PET_ONLY_SUV_MAX:g}, inverted grey"
    return f"CT, PET SUV &ge; {PET_OVERLAY_SUV:g} translucent"


def _grouped_skips(lines: list[str]) -> list[str]:
    """The skipped steps, with "Prior NAME missing: WHY" lines of one reason joined (the page stays one A4 sheet)."""
    out, priors = [], {}
    for line in lines:
        match = re.match(r"Prior (\S+) missing: (.*)", line)
        if match:
            priors.setdefault(match.group(2).rstrip("."), []).append(match.group(1))
        else:
            out.append(line.rstrip("."))
    out += [f"priors {', '.join(names)} missing: {why}" for why, names in priors.items()]
    return out


def _legend() -> str:
    """Decision styles in words and colours: filled = accepted, ring = pending, grey = rejected."""
    return "Marks: " + ", ".join(f'<span style="color:{s.colour_hex}">{html.escape(s.legend)}</span>'
                                 for s in DECISION_STYLES.values()) + "."


def _reviewer_line(review: ReviewInfo) -> str:
    """Who decided, and between which UTC times (review.json "events"); empty without recorded decisions."""
    times = sorted(e["at"] for e in review.events)
    names = sorted({e["by"] for e in review.events if e.get("by")} | ({review.reviewer} if review.reviewer else set()))
    if not times and not names:
        return ""
    who = f"Reviewer: {html.escape(', '.join(names))}" if names else "Reviewer: not named"
    if not times:
        return f"<li>{who}</li>"
    first, last = times[0].replace("T", " ").rstrip("Z"), times[-1].replace("T", " ").rstrip("Z")
    span = first[:16] if first[:16] == last[:16] else f"{first[:16]} to {last[:16] if last[:10] != first[:10] else last[11:16]}"
    return f"<li>{who}; {len(times)} decision(s)/edit(s), {span} UTC</li>"


def write_report(path: Path | str, results: Results, ct: Optional[sitk.Image], pet: Optional[sitk.Image] = None,
                 review: Optional[ReviewInfo] = None) -> None:
    Path(path).write_text(render_report(results, ct, pet, review=review), encoding="utf-8")


def review_info(results_dir: Path | str, results: Results, case_id: str = "", study_date: str = "") -> ReviewInfo:
    """The review's side of the report, from results/review/ (review.json, export.json) and the run's candidates."""
    from .export.review_rule import RECORD_FILE, export_state

    results_dir = Path(results_dir)
    review_dir = results_dir / "review"
    info = ReviewInfo(case_id=case_id or results_dir.name, study_date=study_date)
    decisions_path = review_dir / "review.json"
    if not decisions_path.is_file():
        return info
    decisions = json.loads(decisions_path.read_text())
    info.reviewed = True
    info.threshold = decisions.get("threshold")
    info.reviewer = str(decisions.get("reviewer") or "")
    info.events = usable_events(decisions.get("events"))
    info.saved_at = time.strftime("%Y-%m-%d %H:%M", time.localtime(decisions_path.stat().st_mtime))
    record_path = review_dir / RECORD_FILE
    if record_path.is_file():
        try:
            info.export = json.loads(record_path.read_text())
            info.export["stale"] = export_state(review_dir, results) == "stale"
        except ValueError:
            info.export = {}
    try:  # which contours the reviewer changed: voxel counts against the run's own label map
        original = Results.read(results_dir)
        if original.gtv_ln is not None and results.gtv_ln is not None:
            a, b = sitk.GetArrayViewFromImage(original.gtv_ln), sitk.GetArrayViewFromImage(results.gtv_ln)
            if a.shape == b.shape:
                info.edited_ids = {int(v) for v in np.unique(np.concatenate([a[a != b], b[a != b]])) if v}
    except (OSError, ValueError, RuntimeError, LNStagingError):  # no run of its own beside the review: no edits known
        pass
    return info


def write_reviewed_report(results_dir: Path | str, ct: Optional[sitk.Image], pet: Optional[sitk.Image] = None,
                          out: Optional[Path | str] = None, case_id: str = "", study_date: str = "") -> Path:
    """report.html from the saved review (decisions, edits, export), into results/review/ unless ``out`` is given."""
    from .export.review_rule import read_reviewed_results
    from .io.atomic import atomic_file

    results_dir = Path(results_dir)
    results, _ = read_reviewed_results(results_dir)
    info = review_info(results_dir, results, case_id=case_id, study_date=study_date)
    path = Path(out) if out is not None else (results_dir / "review" if info.reviewed else results_dir) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        Path(tmp).write_text(render_report(results, ct, pet, review=info), encoding="utf-8")
    return path
