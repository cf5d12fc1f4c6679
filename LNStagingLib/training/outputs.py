"""What a training writes beside its checkpoints, under one rule for every stage: the checksum of ``NAME.pt`` is
``NAME.pt.sha256`` in sha256sum's format (``sha256sum -c`` checks it), and logs are strict JSON (an undefined metric,
NaN or infinite, is null), which every JSON reader accepts."""

from __future__ import annotations

import json
from pathlib import Path

from ..evaluation.patient import json_safe


def checksum_path(checkpoint: Path) -> Path:
    return Path(checkpoint).with_name(Path(checkpoint).name + ".sha256")


def write_checksum(checkpoint: Path, sha: str) -> Path:
    path = checksum_path(checkpoint)
    path.write_text(f"{sha}  {Path(checkpoint).name}\n")
    return path


def read_checksum(checkpoint: Path) -> str:
    return checksum_path(checkpoint).read_text().split()[0]


def strict_json(value, indent: int | None = 1) -> str:
    """JSON text of ``value`` (numpy numbers included) with NaN and infinities written as null."""
    plain = json.loads(json.dumps(value, default=float))  # numpy scalars to Python floats (NaN kept for json_safe)
    return json.dumps(json_safe(plain), indent=indent, allow_nan=False)
