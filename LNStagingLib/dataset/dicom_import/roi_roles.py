"""ROI (or SEG segment) name -> cohort role: tumor, gtv_ln, lymph_nodes or ignore.

Default patterns follow AAPM TG-263 target names (type + classifier: GTVp primary, GTVn nodal, optional serial
number and ``_`` qualifiers such as GTVn_L_II) plus common local variants (GTV_T, GTV-Primary, GTV_Tumor, GTV_Mass,
GTV_LN_1, GTV_Node). Individually numbered node ROIs (LN_1, Node 3, LymphNode_12) are all-node ROIs (lymph_nodes).
Names TG-263 marks as derived or non-clinical (leading ``z`` or ``_``, margins such as ``+5mm``, rings, optimisation
and evaluation structures) never match a default. ``--roi-map`` rules (regular expression -> role) are tried first;
a name no rule matches is listed, never guessed, and a name matching two roles is refused. A DICOM SEG segment whose
label no rule matches is placed by its codes (primary neoplasm; secondary neoplasm in a lymph node; lymph node).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import InputFileError
from ...io.mask_source import PRIMARY_NEOPLASM

ROLES = ("tumor", "gtv_ln", "lymph_nodes", "ignore")

# Searched case-insensitively; GTV must not follow a letter, the classifier must not be followed by one.
DEFAULT_RULES: tuple[tuple[str, str], ...] = (
    (r"(?<![a-z])GTV[ _-]?(p|t|prim|primary|primaire|tumou?r|mass)(?![a-z])", "tumor"),
    (r"(?<![a-z])GTV[ _-]?(n|ln|lk|node|nodes|nodal)(?![a-z])", "gtv_ln"),
    (r"^(LN|LK|node|lymph[ _-]?node)[ _-]?(\d+|neg|negative|benign)([ _-].*)?$", "lymph_nodes"),
)
# TG-263: a leading z or _ marks a non-clinical/temporary structure; margins, rings and planning helpers are derived.
DERIVED = re.compile(r"^[z_]|\+|\d\s*mm|ring|opt|eval|expand|avoid|dose|ptv|ctv|itv", re.IGNORECASE)


@dataclass
class RoiRules:
    """User rules (tried first) and the defaults; ``describe`` lists them for the docs and messages."""

    user: list[tuple[re.Pattern, str]] = field(default_factory=list)
    defaults: list[tuple[re.Pattern, str]] = field(
        default_factory=lambda: [(re.compile(p, re.IGNORECASE), r) for p, r in DEFAULT_RULES])

    def roles(self, name: str) -> set[str]:
        """Every role a name matches: user rules decide when any matches, else the defaults (not for derived names)."""
        found = {role for pattern, role in self.user if pattern.search(name)}
        if found:
            return found
        if DERIVED.search(name.strip()):
            return set()
        return {role for pattern, role in self.defaults if pattern.search(name.strip())}


def load_roi_map(path: str | Path | None) -> RoiRules:
    """Rules from a JSON object {regular expression: role}; the file's problems are one-line errors."""
    rules = RoiRules()
    if path is None:
        return rules
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputFileError(f"--roi-map {path} does not exist: give a JSON file {{\"regex\": \"role\"}}.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputFileError(f"--roi-map {path} is not valid JSON ({error}): fix the file.") from None
    if not isinstance(data, dict) or not data:
        raise InputFileError(f"--roi-map {path} must be a JSON object mapping regular expressions to roles "
                             f"({', '.join(ROLES)}).")
    for pattern, role in data.items():
        if role not in ROLES:
            raise InputFileError(f"--roi-map {path}: role {role!r} of {pattern!r} is not one of {', '.join(ROLES)}.")
        try:
            rules.user.append((re.compile(pattern, re.IGNORECASE), role))
        except re.error as error:
            raise InputFileError(f"--roi-map {path}: {pattern!r} is not a regular expression ({error}).") from None
    return rules


@dataclass
class RoleAssignment:
    """Names per role (in the order given), names matched by nothing, and names matched by two roles."""

    by_role: dict[str, list[str]]
    unmatched: list[str]
    conflicts: dict[str, list[str]]


# DICOM SEG segment codes (SNOMED CT, or the SNOMED RT codes older SEGs carry): what a segment is when its label
# matches no name rule (e.g. QIN-HEADNECK's segments labelled "Neoplasm, Primary" / "Neoplasm, Secondary").
SECONDARY_NEOPLASM = {"14799000", "M-80006"}
LYMPH_NODE = {"59441001", "T-C4000"}


def segment_code_role(segment) -> str | None:
    """tumor for a primary neoplasm, gtv_ln for a secondary neoplasm in a lymph node, lymph_nodes for a lymph node
    (an io.seg_read.SegmentInfo); None when its codes say none of these."""
    kind = segment.type.value if segment.type is not None else ""
    region = segment.anatomic_region
    in_node = region is not None and (region.value in LYMPH_NODE or "lymph node" in region.meaning.lower())
    if kind in PRIMARY_NEOPLASM:
        return "tumor"
    if kind in SECONDARY_NEOPLASM and in_node:
        return "gtv_ln"
    if kind in LYMPH_NODE:
        return "lymph_nodes"
    return None


def assign_roles(names: list[str], rules: RoiRules, fallback: dict[str, str] | None = None) -> RoleAssignment:
    """Roles by the rules; a name they leave unmatched takes its ``fallback`` role (a SEG segment's codes)."""
    by_role: dict[str, list[str]] = {role: [] for role in ROLES}
    unmatched, conflicts = [], {}
    for name in names:
        roles = rules.roles(name) or ({fallback[name]} if fallback and name in fallback else set())
        if not roles:
            unmatched.append(name)
        elif len(roles) > 1:
            conflicts[name] = sorted(roles)
        else:
            by_role[roles.pop()].append(name)
    return RoleAssignment(by_role, unmatched, conflicts)
