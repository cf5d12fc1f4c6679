"""What the review server spends on each page action and each view render, in CPU seconds beside wall seconds.

On the shared 2-core machine the wall time of an action says how long the reader waited, and it swings with the
load; the process CPU time says what the work itself costs and is much less distorted by other jobs. Both are
reported in ``/lnstaging/status.json`` ("timings") and read by benchmarks/review_browser_benchmark.py.

A view render's CPU time is the process CPU time across ``vtkRenderWindow::Render`` on the main thread: it includes
Mesa's rasteriser threads (llvmpipe), which do most of the work, and excludes nothing else of note (Python threads
wait for the main thread while VTK holds the interpreter).
"""

from __future__ import annotations

import time
from contextlib import contextmanager


class Clock:
    """Count, total wall seconds and total CPU seconds per name."""

    def __init__(self):
        self._totals: dict[str, list] = {}

    def add(self, name: str, wall: float, cpu: float) -> None:
        entry = self._totals.setdefault(name, [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += wall
        entry[2] += cpu

    @contextmanager
    def measure(self, name: str):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - wall, time.process_time() - cpu)

    def as_dict(self) -> dict:
        return {name: {"n": n, "wall_s": round(wall, 4), "cpu_s": round(cpu, 4)}
                for name, (n, wall, cpu) in sorted(self._totals.items())}


class ServerTimings:
    """Page actions (ReviewApp._guard, the session's saves) and renders per view."""

    def __init__(self):
        self.actions = Clock()
        self.renders = Clock()
        self._render_start: dict[str, tuple[float, float]] = {}

    def observe_render_window(self, name: str, render_window) -> None:
        def start(*_):
            self._render_start[name] = (time.perf_counter(), time.process_time())

        def end(*_):
            started = self._render_start.pop(name, None)
            if started is not None:
                self.renders.add(name, time.perf_counter() - started[0], time.process_time() - started[1])

        render_window.AddObserver("StartEvent", start)
        render_window.AddObserver("EndEvent", end)

    def as_dict(self) -> dict:
        return {"actions": self.actions.as_dict(), "renders": self.renders.as_dict()}
