"""How a reviewer's decision is drawn, the same in the browser, the Slicer module and the report thumbnails.

The style depends on the decision only, never on a probability (a run ranked by SUVpeak has none, and a colour
scale of probabilities made accepted, pending and rejected nodes look alike): accepted = filled, coloured, thick
outline; pending = coloured outline only; rejected = grey dashed outline (thin and translucent in Slicer, whose
2D segment outlines cannot be dashed), hidden unless the reviewer asks to see rejected nodes. Colours are
colour-blind-safe distinct hues (green, orange, grey; matplotlib's tab10). Pure Python: no MRML, no matplotlib.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DecisionStyle:
    colour_hex: str
    fill_opacity: float  # 0 = outline only
    outline_opacity: float
    outline_px: float  # outline width in screen pixels (report: points x 0.6)
    dashed: bool
    legend: str

    @property
    def colour_rgb(self) -> tuple[float, float, float]:
        """The colour as three floats in [0, 1] (MRML)."""
        return tuple(int(self.colour_hex[i:i + 2], 16) / 255.0 for i in (1, 3, 5))


DECISION_STYLES = {
    "accepted": DecisionStyle("#2ca02c", 0.45, 1.0, 3.0, False, "accepted (filled)"),
    "pending": DecisionStyle("#ff7f0e", 0.0, 1.0, 2.0, False, "pending (outline)"),
    "rejected": DecisionStyle("#7f7f7f", 0.0, 0.6, 1.0, True, "rejected (grey, dashed)"),
}
DECISION_COLOURS = {state: style.colour_hex for state, style in DECISION_STYLES.items()}
