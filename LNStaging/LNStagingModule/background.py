"""Pure-Python work (reading result files, the re-scoring CNN pass) in a worker thread while the GUI thread keeps
drawing the progress dialog: MRML is not thread-safe, so the worker never touches the scene; the caller does the
MRML part on its own thread before and after."""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional, TypeVar

from LNStagingLib.progress import Progress

T = TypeVar("T")
POLL_SECONDS = 0.05  # how often the GUI thread redraws the progress and looks at Cancel while the worker runs


def inWorkerThread(work: Callable[[Progress], T], progress: Optional[Progress] = None, message: str = "") -> T:
    """``work(workerProgress)`` in a daemon thread; returns its result or re-raises its exception here.

    The worker's progress reports are only recorded; this (GUI) thread forwards the latest one to ``progress``
    every POLL_SECONDS (its callback redraws the dialog and processes events). Cancel on ``progress`` raises
    Cancelled here at once (the worker, told through the shared cancel event, stops at its next report; a step
    that cannot stop, such as one CNN forward pass, finishes unseen and its result is dropped)."""
    progress = progress or Progress()
    latest = {"fraction": 0.0, "message": message}
    outcome: dict = {}

    def record(fraction: float, text: str) -> None:
        latest["fraction"], latest["message"] = fraction, text or message

    def target() -> None:
        try:
            outcome["result"] = work(Progress(record, progress.cancel_event))
        except BaseException as error:  # re-raised on the caller's thread
            outcome["error"] = error

    worker = threading.Thread(target=target, daemon=True, name="LNStaging worker")
    worker.start()
    while worker.is_alive():
        progress.step(latest["fraction"], latest["message"])  # raises Cancelled after Cancel
        worker.join(POLL_SECONDS)
    if "error" in outcome:
        raise outcome["error"]
    progress.step(1.0, latest["message"])
    return outcome["result"]

