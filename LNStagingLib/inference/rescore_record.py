"""What a re-scoring from review decisions leaves in Results (issue 19), read and undone without torch.

inference/rescore.py (which needs torch) writes it: each candidate keeps its original probability in
``scores["stage2"]`` and ``provenance["rescore"]`` records on/off, the model, the decisions used and every pending
candidate's change. The candidate table, the report and the export only read that record, and showing the originals
again needs no network, so these helpers stay torch-free (the Slicer panel builds before torch is installed).
"""

from __future__ import annotations

from typing import Optional

#: Why a PET-only review (no CT) is not re-scored, for every face's "Re-scoring is off ...: WHY"
NO_CT_REASON = "its model reads the CT, and this run had no CT (PET-only)."


def original_probability(candidate) -> float:
    """The probability before any re-scoring: stage 2's score when it ran, else the one shown."""
    value = candidate.scores.get("stage2", candidate.probability)
    return float("nan") if value is None else float(value)


def restore_original_probabilities(results, model_name: str = "") -> None:
    """Every candidate shows its original probability again; the record says re-scoring is off.

    The original is ``scores["stage2"]``; a candidate re-scored without having had any probability (no such score,
    listed as moved in the record) shows none again."""
    moved = set((results.provenance.get("rescore") or {}).get("moved") or {})
    for c in results.candidates:
        if "stage2" in c.scores:
            c.probability = c.scores["stage2"]
        elif str(c.id) in moved:
            c.probability = None
    results.provenance["rescore"] = {"enabled": False, "model": model_name}
    results.rank_candidates()


def rescored_changes(results) -> dict[int, float]:
    """Pending candidate id -> change of its probability (re-scored minus original); empty when re-scoring is off."""
    info = results.provenance.get("rescore") or {}
    if not info.get("enabled"):
        return {}
    return {int(k): float(v) for k, v in (info.get("moved") or {}).items()}


def rescore_summary(results) -> Optional[str]:
    """One line for reports and exports: whether the shown probabilities were re-scored, and from what."""
    info = results.provenance.get("rescore")
    if not info or not info.get("enabled"):
        return None
    decisions = info.get("decisions", {})
    moved = info.get("moved", {})
    return (f"Probabilities of {len(moved)} pending candidates were re-scored by {info.get('model') or 'the model'} "
            f"from {len(decisions)} review decisions (candidates {', '.join(sorted(decisions, key=int)) or 'none'}).")


def change_text(change: float) -> str:
    """'+0.120', '-0.045', or '0.000' for a change that rounds to nothing (no '-0.000')."""
    return "0.000" if round(change, 3) == 0 else f"{change:+.3f}"


def rescoring_status_line(results, seconds: Optional[float] = None, most: int = 3) -> str:
    """One line for a status bar: which pending probabilities the decisions moved, by how much (largest first)."""
    info = results.provenance.get("rescore")
    if not info:
        return ""
    if not info.get("enabled"):
        return "Re-scoring from decisions is off: the original probabilities are shown."
    decisions = info.get("decisions") or {}
    if not decisions:
        return f"Re-scoring on ({info.get('model') or 'review model'}): accept or reject a node to re-score the others."
    changes = rescored_changes(results)
    names = {c.id: c.name for c in results.candidates}
    largest = sorted(changes.items(), key=lambda item: (-abs(item[1]), item[0]))[:most]
    moved = ", ".join(f"{names.get(k, k)} {change_text(v)}" for k, v in largest if change_text(v) != "0.000")
    timing = f" in {seconds:.2f} s" if seconds is not None else ""
    return (f"Re-scored {len(changes)} pending nodes from {len(decisions)} decision"
            f"{'s' if len(decisions) != 1 else ''}{timing}; largest changes: {moved or 'all below 0.001'}.")


__all__ = ["change_text", "original_probability", "restore_original_probabilities", "rescored_changes", "rescore_summary",
           "rescoring_status_line"]
