"""Render pacing (web/render_pacing.py): a view that redraws continuously leaves the event loop free between
renders, so the mouse-up that ends a brush stroke is handled within about one render of the page sending it.

The loop is trame-rca's own render scheduler and view adapter (the ones the review server uses); the view's render
blocks the loop as vtkRenderWindow::Render does, and the page is modelled as trame-rca's client sends events: a run
of queued mouse moves compressed to its last, then each event sent once the server handled the previous one. The
browser measurement on the real case is Testing/test_web_faces.py (mouse-up to on disk) and
benchmarks/review_browser_benchmark.py."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

pytest.importorskip("trame_rca")

from trame_rca.schedulers import RcaImageRenderScheduler  # noqa: E402
from trame_rca.view_adapter import RcaViewAdapter  # noqa: E402

from LNStagingLib.web.render_pacing import RENDER_SHARE, RenderPacing  # noqa: E402

RENDER_S = 0.1  # an axial render on the shared machine: 0.08 s at load 2, 0.15-0.23 s at load 10 (traced)
ROUND_TRIP_S = 0.005  # the page's next event after the server answered the previous one
MOVE_EVERY_S, DRAG_S = 0.02, 0.6  # a drag: a mouse move every 20 ms for 0.6 s, then the mouse-up


class BlockingView:
    """A view whose render blocks the event loop RENDER_S seconds and fires its render window's Start/End events."""

    def __init__(self):
        self.observers: dict = {}
        self.renders = 0

    def AddObserver(self, event, callback):  # noqa: N802 (vtkObject's name)
        self.observers.setdefault(event, []).append(callback)

    def _fire(self, event):
        for callback in self.observers.get(event, []):
            callback(self, event)

    @property
    def img_cols_rows(self):
        self._fire("StartEvent")
        time.sleep(RENDER_S)
        self.renders += 1
        self._fire("EndEvent")
        return np.zeros((8, 8, 3), np.uint8), 8, 8

    def process_resize_event(self, width, height):
        pass

    def process_interaction_event(self, event):
        pass


def compressed(events: list) -> list:
    """trame-rca's page: a run of mouse moves is sent as its last move."""
    return [e for i, e in enumerate(events) if not (e[1] == "move" and i + 1 < len(events) and events[i + 1][1] == "move")]


async def mouse_up_wait(paced: bool) -> tuple[float, int]:
    """Seconds from the page's mouse-up to the server handling it, after a drag; and the renders made."""
    view = BlockingView()
    scheduler = RcaImageRenderScheduler(view, target_fps=30, interactive_quality=90, still_quality=90)
    adapter = RcaViewAdapter(view, "axial", scheduler=scheduler, do_schedule_render_on_interaction=False)
    if paced:
        RenderPacing(adapter, view)
    start = time.perf_counter()
    events = [(start + MOVE_EVERY_S * i, "move") for i in range(int(DRAG_S / MOVE_EVERY_S))] + [(start + DRAG_S, "up")]
    sent = 0
    try:
        while True:
            due = [e for e in events[sent:] if e[0] <= time.perf_counter()]
            if not due:
                await asyncio.sleep(0.002)
                continue
            sent += len(due)
            for at, kind in compressed(due):
                await asyncio.sleep(ROUND_TRIP_S)  # to the server; handled when the loop is free
                scheduler.schedule_render()  # the paint widget asks for a render at every event
                if kind == "up":
                    return time.perf_counter() - at, view.renders
    finally:
        await scheduler.close()


def test_pace_never_raises_the_rate_and_follows_focus_and_blur():
    class Adapter:
        target_fps = 30.0

    adapter, view = Adapter(), BlockingView()
    pacing = RenderPacing(adapter, view)
    assert pacing.pace(0.2) == pytest.approx(RENDER_SHARE / 0.2) and adapter.target_fps == pytest.approx(2.5)
    assert pacing.pace(0.001) == 30.0  # a fast render: back to the rate trame-slicer set, never above it
    adapter.target_fps = 4.0  # trame-slicer: the mouse left the view
    assert pacing.pace(0.001) == 4.0
    adapter.target_fps = 30.0  # the mouse entered it again
    assert pacing.pace(0.05) == pytest.approx(10.0)


def test_the_mouse_up_waits_about_one_render_not_a_queue_of_them():
    unpaced, unpaced_renders = asyncio.run(mouse_up_wait(paced=False))
    paced, paced_renders = asyncio.run(mouse_up_wait(paced=True))
    print(f"mouse-up handled after {unpaced:.3f} s unpaced ({unpaced_renders} renders), {paced:.3f} s paced "
          f"({paced_renders} renders); a render takes {RENDER_S} s")
    assert unpaced >= 1.6 * RENDER_S, "trame-rca no longer renders between every two events: is the pacing needed?"
    assert paced <= 1.3 * RENDER_S + 2 * ROUND_TRIP_S, f"the mouse-up waited {paced:.3f} s behind renders"
    assert paced_renders >= 2, "the view did not redraw during the drag"
