"""When each review decision was made, and by whom: one event list shared by the browser review, the Slicer module
and the reviewed report (pure Python: no scene, no MRML).

An event is {"at": UTC ISO 8601 time, "candidate": id, "action": "accepted" | "rejected" | "pending" | "edited" |
"erased", "by": the reviewer's name when one was given}. The list is saved in review/review.json ("events") and
never written to a log (a reviewer's name is kept with the review only; there are no patient identifiers in it).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Sequence


def utc_now() -> str:
    """Now, UTC, ISO 8601 to the second (e.g. 2026-11-30T12:01:23Z)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_event(candidate_id: int, action: str, reviewer: str = "") -> dict:
    event = {"at": utc_now(), "candidate": int(candidate_id), "action": action}
    if reviewer:
        event["by"] = reviewer
    return event


def usable_events(events) -> list[dict]:
    """The events of a review.json that can be shown (a hand-edited or older file may hold none or odd ones)."""
    if not isinstance(events, list):
        return []
    return [e for e in events if isinstance(e, dict) and isinstance(e.get("candidate"), int)
            and not isinstance(e.get("candidate"), bool) and isinstance(e.get("at"), str)]


def last_events(events: Sequence[dict]) -> dict[int, dict]:
    """The latest event per candidate id (later entries win)."""
    return {e["candidate"]: e for e in usable_events(list(events))}


def short_time(at: str) -> str:
    """'2026-11-30T12:01:23Z' -> '12:01' (the report's table; the date is on the summary line)."""
    return at[11:16] if len(at) >= 16 else at
