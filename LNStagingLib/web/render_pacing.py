"""Views that redraw continuously (a brush drag) leave the server's event loop free half of the time, so the page's
next mouse event, above all the mouse-up that ends a stroke, is handled between two renders and not behind them.

Why (traced on STS_001 at 1920x1080, load average 9.7 on the 2 shared cores): the page sends a view's mouse events
one at a time, each once the server answered the previous one, and trame-rca's scheduler renders the view again as
soon as a frame was rendered and a new one requested (its target of 30 frames per second is never reached when a
render of the axial view takes 0.15-0.23 s). The loop alternated one event, one render, one event: the mouse-up
reached the server 0.45-0.67 s after the page sent it, behind 2-3 renders of the queued moves, and the stroke was on
disk only 0.6-0.8 s after mouse-up. Renders cannot be interrupted and run on the loop's thread (VTK holds the
interpreter), so the only way to let events through is to pause between renders.

Here, after a render that took R seconds, the view's next render starts no sooner than R / RENDER_SHARE after the
first began: its frame rate (trame-rca's public ``target_fps``, which trame-slicer also sets on focus and blur) is
lowered to RENDER_SHARE / R, never raised above the rate trame-slicer set. A single render (a jump, a slice step) is
not delayed; a fast render (R below RENDER_SHARE / that rate) changes nothing.
"""

from __future__ import annotations

import time
from typing import Optional

RENDER_SHARE = 0.5  # at most this share of the loop's time for one view's back-to-back renders (the rest: events)


class RenderPacing:
    """Paces one view's renders: observes its render window, sets its RCA adapter's frame rate."""

    def __init__(self, adapter, render_window, share: float = RENDER_SHARE):
        self.adapter = adapter
        self.share = share
        self.base_fps = adapter.target_fps  # the rate trame-slicer set (focused or not)
        self._set_fps: Optional[float] = None
        self._started: Optional[float] = None
        render_window.AddObserver("StartEvent", self._on_start)
        render_window.AddObserver("EndEvent", self._on_end)

    def _on_start(self, *_args) -> None:
        self._started = time.perf_counter()

    def _on_end(self, *_args) -> None:
        if self._started is None:
            return
        self.pace(time.perf_counter() - self._started)
        self._started = None

    def pace(self, render_seconds: float) -> float:
        """The view's frame rate after a render of ``render_seconds``; returns it."""
        current = self.adapter.target_fps
        if current != self._set_fps:  # trame-slicer changed it (the mouse entered or left the view): the new base
            self.base_fps = current
        fps = min(self.base_fps, self.share / max(render_seconds, 1e-6))
        self.adapter.target_fps = self._set_fps = fps
        return fps


def pace_views(slice_factory, views) -> list[RenderPacing]:
    """A RenderPacing for each slice view the trame-slicer factory ``slice_factory`` created."""
    paced = []
    for view in views:
        rca_view = slice_factory.get_factory_view(view.get_view_node().GetSingletonTag())
        if rca_view is not None:
            paced.append(RenderPacing(rca_view.view_adapter, view.render_window()))
    return paced
