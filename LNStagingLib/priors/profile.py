"""Per-structure parameters of the attention map (d_min, d_max, soft border), as a named, saveable profile.

Defaults are Table II of paper 2 (pancreatic cancer, 17 stations). Another site (oesophageal or lung cancer)
fits its own with `lnstaging priors fit` and passes the JSON with --profile.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..anatomy.structures import STRUCTURE_KEYS
from ..errors import InputFileError, LNStagingError
from ..io.atomic import atomic_file

PROFILE_FORMAT = "lnstaging-attention-profile/1"
SOFT_BORDER_MM = 3.0  # "the smooth border 3mm is chosen empirically" (paper 2, eq. 1)

# Table II of paper 2: (d_min, d_max) in mm; negative = inside the structure.
TABLE_II: dict[str, tuple[float, float]] = {
    "spleen": (0.0, 16.0),
    "esophagus": (0.0, 25.0),
    "stomach": (-2.0, 18.0),
    "aorta": (0.0, 28.0),
    "pancreas": (-5.0, 20.0),
    "duodenum": (-5.0, 22.0),
    "sma": (-1.0, 20.0),
    "tc_sa": (-2.0, 18.0),
    "lga": (0.0, 21.0),
    "cha_pha": (0.0, 20.0),
}


class ProfileError(LNStagingError):
    """An attention profile file is malformed."""


@dataclass(frozen=True)
class StructureParams:
    d_min: float
    d_max: float
    border: float = SOFT_BORDER_MM

    @property
    def reach(self) -> float:
        """Distance beyond which the score is 0: the band the map needs around the structure."""
        return self.d_max + self.border


@dataclass
class AttentionProfile:
    name: str
    structures: dict[str, StructureParams]
    description: str = ""
    fit: dict = field(default_factory=dict)  # how it was estimated (cohort, counts per structure), if fitted

    def params(self, key: str) -> StructureParams:
        try:
            return self.structures[key]
        except KeyError:
            raise ProfileError(f"Profile {self.name!r} has no parameters for {key!r}; add them to the profile.") from None

    def to_json(self) -> dict:
        return {"format": PROFILE_FORMAT, "name": self.name, "description": self.description,
                "structures": {k: {"d_min": p.d_min, "d_max": p.d_max, "border": p.border}
                               for k, p in self.structures.items()},
                **({"fit": self.fit} if self.fit else {})}


def default_profile() -> AttentionProfile:
    return AttentionProfile("table2_pdac", {k: StructureParams(*v) for k, v in TABLE_II.items()},
                            "Paper 2 (pancreatic cancer), Table II; soft border 3 mm")


def profile_from_json(data: dict) -> AttentionProfile:
    if not isinstance(data, dict) or data.get("format") != PROFILE_FORMAT:
        raise ProfileError(f'An attention profile must be a JSON object with "format": "{PROFILE_FORMAT}".')
    structures = {}
    for key, values in (data.get("structures") or {}).items():
        if key not in STRUCTURE_KEYS:
            raise ProfileError(f"Unknown structure {key!r} in the profile; use one of {', '.join(STRUCTURE_KEYS)}.")
        try:
            params = StructureParams(float(values["d_min"]), float(values["d_max"]),
                                     float(values.get("border", SOFT_BORDER_MM)))
        except (KeyError, TypeError, ValueError) as error:
            raise ProfileError(f'Profile entry {key!r} needs numeric "d_min" and "d_max" (mm).') from error
        if params.d_max < params.d_min or params.border <= 0:
            raise ProfileError(f"Profile entry {key!r}: need d_min <= d_max and border > 0.")
        structures[key] = params
    if not structures:
        raise ProfileError("The profile lists no structures.")
    return AttentionProfile(str(data.get("name", "custom")), structures, str(data.get("description", "")),
                            dict(data.get("fit", {})))


def load_profile(path: str | Path | None) -> AttentionProfile:
    """Table II when `path` is None, else the JSON profile at `path`."""
    if path is None:
        return default_profile()
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise InputFileError(f"Cannot read the profile {path}: {error.strerror}") from error
    except ValueError as error:
        raise ProfileError(f"The profile {path.name} is not valid JSON: {error}") from error
    return profile_from_json(data)


def save_profile(profile: AttentionProfile, path: str | Path) -> Path:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(profile.to_json(), indent=2) + "\n")
    return Path(path)
