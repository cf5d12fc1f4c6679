"""What the review page says, from Results only (results.py is the one record of what ran): the candidate rows,
the operating point, the models, the list title, the slider's range. Pure Python: no trame, no MRML.

A run ranked by SUVpeak (no classifier applied) shows no probability column, no FROC figure and an SUVpeak
operating point on the same slider; a model that did not run is named only as "not applied" with its reason."""

from __future__ import annotations

import math

from ..results import Results

PROBABILITY_SLIDER = (0.0, 1.0, 0.01)
# The Export button's tooltip per export kind (web/cases.py ReviewCase.export_kind)
EXPORT_TITLES = {"rtstruct": "Write the accepted nodes as a DICOM RT Structure Set on the planning CT",
                 "seg": "PET-only run (no planning CT, so no RTSTRUCT): write the accepted nodes as a DICOM SEG on "
                        "the PET DICOM series of the run"}  # no quotes: they sit in a JavaScript string (layout.py)
SUV_SLIDER_STEP = 0.1


def fmt(value, digits=2) -> str:
    return "–" if value is None or value != value else f"{value:.{digits}f}"


def fmt_p(p) -> str:
    """A probability with enough digits to tell the small ones apart (never '0.00' for 7e-05)."""
    if p is None or p != p:
        return "–"
    if p >= 0.01:
        return f"{p:.3f}"
    return "<0.001" if p < 0.001 else f"{p:.4f}"


def candidate_row(c, *, visible: bool, threshold: float, moved: dict, results: Results | None = None) -> dict:
    """One row of the candidate table as the page shows it. SUVpeak (mean SUV in a 1 ml sphere, PERCIST) beside
    SUVmax: the PET candidates are found and ranked by it; '–' where it was not measured. ``below``: under the
    operating point in the run's ranking basis (probability, or SUVpeak)."""
    value = results.ranking_value(c) if results is not None else c.probability
    return {
        "id": c.id, "name": c.name, "rank": c.rank, "p": fmt_p(c.probability), "volume": fmt(c.volume_ml, 2),
        "short": fmt(c.short_axis_mm, 1), "short_flag": bool(c.short_axis_mm and c.short_axis_mm >= 10.0),
        "suv": fmt(c.suv_max, 1), "suv_peak": fmt(c.suv_peak, 1), "review": c.review, "visible": visible,
        "source": c.source, "below": value is not None and value < threshold,
        "suv_peak_value": None if c.suv_peak != c.suv_peak else round(float(c.suv_peak), 3),
        "p_value": c.probability,
        "moved": f"{moved[str(c.id)]:+.2f}" if abs(moved.get(str(c.id), 0.0)) >= 0.005 else "",
    }


# the sortable columns: header title -> the candidate value it sorts by (largest first; names and decisions A-Z)
SORT_KEYS = {
    "rank": lambda c: c.rank, "name": lambda c: c.id, "p": lambda c: -(c.probability or 0.0),
    "sa": lambda c: -c.short_axis_mm, "suvmax": lambda c: -(c.suv_max if c.suv_max == c.suv_max else 0.0),
    "suvpeak": lambda c: -(c.suv_peak if c.suv_peak == c.suv_peak else 0.0), "vol": lambda c: -c.volume_ml,
    "decision": lambda c: (("pending", "accepted", "rejected").index(c.review), c.rank),
}


def sorted_candidates(candidates: list, key: str) -> list:
    """The list order a column header asks for (rank order for an unknown key: the page sends it unchecked)."""
    return sorted(candidates, key=SORT_KEYS.get(key if isinstance(key, str) else "rank", SORT_KEYS["rank"]))


def list_title(results: Results) -> str:
    if results.ranks_by_probability:
        model = results.ranking_basis["model"]
        return f"Candidates (highest p(metastasis) of {model} first)" if model else "Candidates (most probable first)"
    return "Candidates (highest SUVpeak first; no classifier ran)"


def operating_text(results: Results, threshold: float, froc: list) -> str:
    """'Operating point: p ≥ 0.50 · expected 2.1 false positives per patient (validation FROC of demo-cls)' when the
    classifier that owns the FROC ran; 'Operating point: SUVpeak ≥ 2.5' when ranking by SUV."""
    if not results.ranks_by_probability:
        return f"Operating point: SUVpeak ≥ {float(threshold):.1f} (pending nodes below it are hidden)"
    text = f"Operating point: p ≥ {float(threshold):.2f}"
    cls = results.applied_models().get("cls")
    fp = (results.patient.operating_point or {}).get("fp_per_patient")
    if cls is None or results.probability_score != "stage2":
        return text  # the FROC belongs to the classifier: no figure when another score ranks the list
    if fp is None and froc:
        import numpy as np

        pairs = sorted((float(t), float(f)) for f, t in froc)
        fp = float(np.interp(threshold, [t for t, _ in pairs], [f for _, f in pairs]))
    if fp is not None:
        text += f" · expected {float(fp):.2f} false positives per patient (validation FROC of {cls.get('id')})"
    return text


def models_text(results: Results) -> list[str]:
    """The models as the title bar names them: applied ones with sha256 prefix and domain, the others as 'not
    applied' (Results.models_text)."""
    return results.models_text() or ["no trained model given to this run"]


def threshold_range(results: Results) -> tuple[float, float, float]:
    """(min, max, step) of the operating-point slider: a probability, or SUVpeak up to the highest candidate's."""
    if results.ranks_by_probability:
        return PROBABILITY_SLIDER
    peaks = [results.ranking_value(c) for c in results.candidates]
    top = max([v for v in peaks if v is not None] + [10.0])
    return 0.0, float(math.ceil(top)), SUV_SLIDER_STEP


def other_finding_items(results) -> list[str]:
    """One line per PET lesion outside the node list: reason, volume, SUVmax, LPS position."""
    return [f"{f.get('reason', '')}: {float(f['mtv_ml']):.1f} ml, SUVmax {float(f['suv_max']):.1f} at x/y/z "
            f"{float(f['x']):.0f}/{float(f['y']):.0f}/{float(f['z']):.0f} mm" for f in (results.other_findings or [])]
