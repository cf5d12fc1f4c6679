"""What a value from the review page, or from a saved review, must be before the session applies or saves it.

The page's state comes over a websocket that a hostile or buggy client can fill with anything (a string, NaN, a
huge number, an id that does not exist). Every update goes through one of these checks first; a refused update
raises ``InvalidUpdate`` (one line, shown on the page) and the session, the page state and the files stay as they
were. A NaN threshold used to start an endless save loop (NaN != NaN, so every push looked like a change): a value
that is not finite never reaches the session.

``check_review_folder`` does the same for a saved ``CASE/review/`` before the server starts: an empty or damaged
review.json stops the start with one line instead of a traceback or a hang; a threshold that is not a number in
[0, 1] is reported and replaced when the case opens (``usable_threshold``).
"""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import Iterable, Optional

from ..errors import InputFileError, LNStagingError
from ..results import REVIEW_STATES

OVERLAYS = ("pet", "attention", "none")
TOOLS = ("none", "paint", "erase")
BRUSH_MM = (1.0, 30.0)  # the page's brush slider range
DEFAULT_THRESHOLD = 0.5
MAX_SUV = 1000.0  # an SUVpeak operating point above any physiological uptake is refused (whole-body max ~ 100)
MAX_ID = 2**31 - 1


class InvalidUpdate(LNStagingError):
    """A value sent by the page is not one the review accepts; nothing was changed."""


def _number(value, what: str, low: float, high: float) -> float:
    """A real number (not a bool, not a string), finite, in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidUpdate(f"Refused: {what} must be a number, not {type(value).__name__}; nothing was changed.")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise InvalidUpdate(f"Refused: {what} must be a number from {low:g} to {high:g}, not {value!r}; "
                            "nothing was changed.")
    return number


MAX_REVIEWER_CHARS = 64


def reviewer(value) -> str:
    """A reviewer's name as given (trimmed), printable text of at most 64 characters; '' for none."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidUpdate(f"Refused: the reviewer's name must be text, not {type(value).__name__}; nothing was "
                            "changed.")
    name = " ".join(value.split())
    if len(name) > MAX_REVIEWER_CHARS or not name.isprintable():
        raise InvalidUpdate(f"Refused: the reviewer's name must be printable text of at most {MAX_REVIEWER_CHARS} "
                            "characters; nothing was changed.")
    return name


def coordinate(value) -> float:
    """A RAS coordinate in mm (finite; within 10 m of the origin)."""
    return _number(value, "a RAS coordinate (mm)", -1e4, 1e4)


def threshold(value, basis: str = "probability") -> float:
    """The operating point: a probability in [0, 1], or an SUVpeak (0 to MAX_SUV) when the run ranks by SUV."""
    if basis == "suv_peak":
        return _number(value, "the operating point (SUVpeak threshold)", 0.0, MAX_SUV)
    return _number(value, "the operating point (probability threshold)", 0.0, 1.0)


def opacity(value) -> float:
    return _number(value, "the overlay opacity", 0.0, 1.0)


def brush_mm(value) -> float:
    return _number(value, "the brush size (mm)", *BRUSH_MM)


def _choice(value, what: str, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        shown = value if isinstance(value, str) and len(value) <= 40 else type(value).__name__
        raise InvalidUpdate(f"Refused: {what} must be one of {', '.join(choices)}, not {shown!r}; nothing was changed.")
    return value


def overlay(value) -> str:
    return _choice(value, "the overlay", OVERLAYS)


PET_SUV = (0.0, 100.0)  # the PET window the page may set


def pet_suv(value, what: str) -> float:
    return _number(value, what, *PET_SUV)


def ct_preset(value, presets: Iterable[str]) -> str:
    return _choice(value, "the CT window", presets)


def tool(value) -> str:
    return _choice(value, "the tool", TOOLS)


def review_state(value) -> str:
    return _choice(value, "the decision", REVIEW_STATES)


def case_id(value, known: Iterable[str]) -> str:
    return _choice(value, "the case", sorted(known))


def flag(value, what: str = "the show-rejected switch") -> bool:
    if not isinstance(value, bool):
        raise InvalidUpdate(f"Refused: {what} must be true or false, not {type(value).__name__}; nothing was changed.")
    return value


def candidate_id(value, known: Iterable[int]) -> int:
    """An integer id (an integral float from JavaScript is accepted) of a candidate of the open case."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)) \
            or float(value) != int(value) or not 0 <= int(value) <= MAX_ID:
        shown = value if isinstance(value, numbers.Real) else type(value).__name__
        raise InvalidUpdate(f"Refused: {shown!r} is not a candidate id; nothing was changed.")
    if int(value) not in set(known):
        raise InvalidUpdate(f"Refused: this case has no candidate {int(value)}; nothing was changed.")
    return int(value)


# ---- saved reviews --------------------------------------------------------------------------------------------------

def _read_json_object(path: Path, what: str, allow_nan: bool = False) -> dict:
    """A JSON object from ``path``, or InputFileError saying what is wrong and ``what`` to do. ``allow_nan`` reads
    NaN/Infinity (which older versions could write for a threshold) so that value can be replaced with a note."""
    def no_constants(name):
        raise ValueError(f"{name} is not a number")

    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise InputFileError(f"{path} cannot be read ({getattr(error, 'strerror', None) or error}): {what}") from None
    if not text.strip():
        raise InputFileError(f"{path} is empty: {what}")
    try:
        data = json.loads(text, parse_constant=None if allow_nan else no_constants)
    except ValueError as error:
        raise InputFileError(f"{path} is not valid JSON ({str(error).splitlines()[0]}): {what}") from None
    if not isinstance(data, dict):
        raise InputFileError(f"{path} does not hold a JSON object: {what}")
    return data


def check_review_folder(review_dir: Path) -> list[str]:
    """Check a saved review folder before the server starts. Raises InputFileError (one line) when it cannot be
    restored; returns notes on values that will be replaced (a threshold that is not a number in [0, 1])."""
    review_dir = Path(review_dir)
    damaged = (f"the saved review of this case is damaged; move the folder {review_dir} aside (to start the review "
               "again from the run's results) or restore it from a backup.")
    review_file = review_dir / "review.json"
    if not review_file.is_file():
        return []
    data = _read_json_object(review_file, damaged, allow_nan=True)
    decisions = data.get("decisions", {})
    if not isinstance(decisions, dict) or any(not str(k).isdigit() or v not in REVIEW_STATES
                                              for k, v in decisions.items()):
        raise InputFileError(f"{review_file} holds decisions that are not candidate id -> one of "
                             f"{', '.join(REVIEW_STATES)}: {damaged}")
    if "show_rejected" in data and not isinstance(data["show_rejected"], bool):
        raise InputFileError(f"{review_file}: show_rejected is not true/false: {damaged}")
    for name in ("candidates.json", "patient.json"):
        if (review_dir / name).is_file():  # NaN there is a measurement not made (e.g. no SUVpeak), not review state
            _read_json_object(review_dir / name, damaged, allow_nan=True)
    notes = []
    basis = _ranking_of(review_dir)
    if "threshold" in data and threshold_problem(data["threshold"], basis):
        unit = "an SUVpeak" if basis == "suv_peak" else "a number from 0 to 1"
        notes.append(f"{review_file}: the saved operating point {data['threshold']!r} is not {unit}; "
                     "it is replaced when the case opens.")
    return notes


def _ranking_of(review_dir: Path) -> str:
    """The ranking basis ("probability" or "suv_peak") of the review's candidates.json (else of the run's)."""
    for path in (review_dir / "candidates.json", review_dir.parent / "candidates.json"):
        try:
            return str(json.loads(path.read_text()).get("ranking") or "probability")
        except (OSError, ValueError, AttributeError):
            continue
    return "probability"


def threshold_problem(value, basis: str = "probability") -> Optional[str]:
    try:
        threshold(value, basis)
    except InvalidUpdate as error:
        return str(error)
    return None


def usable_threshold(*candidates, basis: str = "probability") -> tuple[float, Optional[str]]:
    """The first of ``candidates`` that is a valid threshold in ``basis``, else the basis's default; and a note when
    the first (the one that would have been used) was replaced. An SUVpeak falls back to 0: every node shown."""
    for k, value in enumerate(candidates):
        if value is not None and threshold_problem(value, basis) is None:
            chosen = float(value)
            break
    else:
        chosen, k = (0.0 if basis == "suv_peak" else DEFAULT_THRESHOLD), len(candidates)
    if k == 0:
        return chosen, None
    unit = f"an SUVpeak from 0 to {MAX_SUV:g}" if basis == "suv_peak" else "a number from 0 to 1"
    return chosen, (f"The saved operating point ({candidates[0]!r}) is not {unit}; "
                    f"using {chosen:g} instead (set it again on the slider).")
