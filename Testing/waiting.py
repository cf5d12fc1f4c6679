"""Polling for tests that watch another process, a server or a browser page: one ``wait_for`` for all of them."""

from __future__ import annotations

import time


def wait_for(predicate, timeout: float = 20.0, what: str = "condition", interval: float = 0.2):
    """The first truthy value ``predicate()`` returns within ``timeout`` seconds; AssertionError naming ``what``
    when it never does (so a test fails with what it was waiting for, not with a later confusing assert)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
