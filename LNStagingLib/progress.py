"""Progress reporting and cancellation shared by the CLI (tqdm), the Slicer module and the web app.

A long step takes ``progress: Progress`` and calls ``progress.step(fraction, message)``; it raises
``Cancelled`` there if the user asked to stop. ``Progress()`` with no arguments is silent.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator, Optional

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


BAR_FORMAT = "{desc} {percentage:3.0f}% |{bar}| {postfix}"  # the Slicer module parses this line (process.py)


def _draw_on(bar) -> Callback:
    def update(fraction: float, message: str) -> None:
        bar.n = int(fraction * 1000)
        bar.set_postfix_str(message[:60], refresh=False)
        bar.refresh()

    return update


def tqdm_progress(description: str = "") -> Progress:
    """A Progress that draws a tqdm bar on stderr (for the CLI)."""
    from tqdm import tqdm

    return Progress(_draw_on(tqdm(total=1000, desc=description, unit="", bar_format=BAR_FORMAT)))


@contextlib.contextmanager
def tqdm_bar(description: str = "", leave: bool = True) -> Iterator[Progress]:
    """tqdm_progress for a block: the bar is closed (cleared with ``leave=False``) when it ends, even on an error."""
    from tqdm import tqdm

    with tqdm(total=1000, desc=description, unit="", leave=leave, bar_format=BAR_FORMAT) as bar:
        yield Progress(_draw_on(bar))
