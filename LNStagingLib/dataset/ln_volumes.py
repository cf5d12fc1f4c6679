"""The per-case largest positive lymph-node volume file (V_max_pLN of paper 2, eq. 7).

`lnstaging predict-volumes` writes it from stage 1 + identification; `lnstaging train patient --ln-volumes` and
`lnstaging evaluate patient --ln-volumes` read it, so that the patient model trains and is tested on the volume the
pipeline will give it rather than on the ground truth. Form: CSV with columns case,volume_mm3 (or a JSON object
{case: volume in mm3}).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..errors import InputFileError
from ..io.atomic import atomic_file


def read_ln_volumes(path: str | Path) -> dict[str, float]:
    path = Path(path)
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text())
            return {str(k): float(v) for k, v in data.items()}
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        return {row["case"]: float(row["volume_mm3"]) for row in rows}
    except FileNotFoundError:
        raise InputFileError(f"{path} does not exist.") from None
    except (KeyError, ValueError, TypeError, AttributeError, json.JSONDecodeError):
        raise InputFileError(f"{path.name} must be a CSV with columns case,volume_mm3 or a JSON object "
                             "{case: volume in mm3}.") from None


def write_ln_volumes(path: str | Path, volumes: dict[str, float]) -> None:
    """CSV case,volume_mm3, written atomically (a partial file never replaces a good one)."""
    with atomic_file(path) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["case", "volume_mm3"])
            for case_id, volume in volumes.items():
                writer.writerow([case_id, f"{float(volume):.3f}"])
