"""The review page's PET MIP: a coronal maximum intensity projection beside the views with a marker per shown node,
coloured by decision (decision_style.py, as in the report); a click on a marker selects that node, as a click on
its name does. The picture is made once per case (report.coronal_mip, the report's own projection)."""

from __future__ import annotations

import base64
import io

import numpy as np

from ..decision_style import DECISION_STYLES
from ..report import coronal_mip, mip_position
from ..scene import volumes


def mip_picture(pet_node, ct_node) -> dict:
    """{"src": PNG data URI (inverted grey, SUV 0 to the 99.5th percentile, as the report), "lo", "spacing",
    "rows", "cols"}; {} without a PET. The PET in the CT's frame (a registered PET), where the candidates are."""
    from PIL import Image

    if pet_node is None:
        return {}
    mip, lo, spacing = coronal_mip(volumes.image_in_frame(pet_node, ct_node))
    top = max(float(np.percentile(mip, 99.5)), 1.0)
    grey = (255 - np.clip(mip / top, 0, 1) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="PNG")
    return {"src": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode(), "lo": list(lo),
            "spacing": spacing, "rows": int(mip.shape[0]), "cols": int(mip.shape[1])}


def mip_markers(candidates, picture: dict, shown_ids: set, selected_id) -> list[dict]:
    """One marker per shown node: its place in percent of the picture, its decision's colour, filled when
    accepted, ringed when selected."""
    if not picture:
        return []
    out = []
    for c in candidates:
        if c.id not in shown_ids:
            continue
        x, row = mip_position(c.centroid_lps, picture["lo"], picture["spacing"], picture["rows"])
        style = DECISION_STYLES.get(c.review, DECISION_STYLES["pending"])
        out.append({"id": c.id, "name": c.name, "left": round(100 * (x + 0.5) / picture["cols"], 2),
                    "top": round(100 * (row + 0.5) / picture["rows"], 2), "colour": style.colour_hex,
                    "filled": c.review == "accepted", "selected": c.id == selected_id})
    return out


def page_state(session, cache: dict) -> dict:
    """The state the page's MIP needs; the picture is cached per case in ``cache``."""
    review = session.review
    if cache.get("case") != session.case.case_id:
        cache.update(case=session.case.case_id, picture=mip_picture(review.pet, review.ct))
    picture = cache["picture"]
    shown = set(review.visible_ids()) | {c.id for c in review.results.candidates if c.review == "accepted"}
    shown |= {session.selected_id} if session.selected_id is not None else set()
    return {"mip_src": picture.get("src", ""),
            "mip_markers": mip_markers(review.results.candidates, picture, shown, session.selected_id)}
