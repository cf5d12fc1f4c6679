"""Progress reporting and cancellation shared by the CLI (tqdm), the Slicer module and the web app.

A long step takes ``progress: Progress`` and calls ``progress.step(fraction, message)``; it raises
``Cancelled`` there if the user asked to stop. ``Progress()`` with no arguments is silent.
"""

from __future__ import annotations

import threading
from typing import Callable, Optional

from .errors import Cancelled

Callback = Callable[[float, str], None]


class Progress:
    """Report progress in [0, 1] with a message; check for cancellation at every report."""

    def __init__(self, callback: Optional[Callback] = None, cancel_event: Optional[threading.Event] = None):
        self.callback = callback
        self.cancel_event = cancel_event or threading.Event()

    def cancel(self) -> None:
        self.cancel_event.set()

    def check(self) -> None:
        if self.cancel_event.is_set():
            raise Cancelled("Cancelled by the user; no results were written.")

    def step(self, fraction: float, message: str = "") -> None:
        self.check()
        if self.callback is not None:
            self.callback(min(max(float(fraction), 0.0), 1.0), message)

    def sub(self, start: float, end: float) -> "Progress":
        """A child reporter mapping its own [0, 1] onto [start, end] of this one."""

        def forward(fraction: float, message: str) -> None:
            self.step(start + (end - start) * fraction, message)

        return Progress(forward, self.cancel_event)


def tqdm_progress(description: str = "") -> Progress:
    """A Progress that draws a tqdm bar on stderr (for the CLI)."""
    from tqdm import tqdm

    bar = tqdm(total=1000, desc=description, unit="", bar_format="{desc} {percentage:3.0f}% |{bar}| {postfix}")

    def update(fraction: float, message: str) -> None:
        bar.n = int(fraction * 1000)
        bar.set_postfix_str(message[:60], refresh=False)
        bar.refresh()

    return Progress(update)
