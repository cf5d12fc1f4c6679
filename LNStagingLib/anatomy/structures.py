"""The ten organs/vessels of the attention model, and how any organ label map is mapped onto them.

Paper 2 (ln_attention_metastasis_pdac, sec. III-A) builds its attention map from ten structures that bound the
17 pancreatic lymph-node stations. Organ masks arrive in many conventions (TotalSegmentator 'total' ids or
per-class files, the 20-label pancreatic convention, Slicer segment names, a site's own labels), so one
`StructureMapping` per convention says which source labels (values and/or names) make each structure, and
`map_structures` turns an organ label map into the structure label map M in {0..10} of eq. 2.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import AnatomyError, GeometryError, InputFileError
from ..io.resample import describe_grid, resample_to_reference, same_grid, snap_to_grid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Structure:
    key: str  # stable identifier used in profiles and mappings
    index: int  # value in the structure label map M (1..10, the paper's order)
    title: str  # human name, as in Table II


STRUCTURES: tuple[Structure, ...] = (
    Structure("spleen", 1, "Spleen"),
    Structure("esophagus", 2, "Esophagus"),
    Structure("stomach", 3, "Stomach"),
    Structure("aorta", 4, "Aorta"),
    Structure("pancreas", 5, "Pancreas (with the tumour)"),
    Structure("duodenum", 6, "Duodenum"),
    Structure("sma", 7, "Superior mesenteric artery (SMA)"),
    Structure("tc_sa", 8, "Truncus coeliacus and splenic artery (TC&SA)"),
    Structure("lga", 9, "Left gastric artery (LGA)"),
    Structure("cha_pha", 10, "Common and proper hepatic artery (CHA&PHA)"),
)
STRUCTURE_KEYS: tuple[str, ...] = tuple(s.key for s in STRUCTURES)
STRUCTURE_BY_KEY = {s.key: s for s in STRUCTURES}
STRUCTURE_BY_INDEX = {s.index: s for s in STRUCTURES}

# Names a structure goes by in TotalSegmentator files, Slicer segment names and the literature. Compared after
# `normalise_name` (case, '_'/'-' and file suffixes ignored). A bare "tumour" is NOT pancreas: it may be any primary.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "spleen": ("spleen", "lien"),
    "esophagus": ("esophagus", "oesophagus", "esophagus abdominal", "oesophagus abdominal"),
    "stomach": ("stomach", "gaster"),
    "aorta": ("aorta", "abdominal aorta", "aorta abdominal", "descending aorta", "aorta descending",
              "thoracic aorta", "aorta thoracic"),
    "pancreas": ("pancreas", "pancreatic tumor", "pancreatic tumour", "pancreas tumor", "pancreas tumour",
                 "pancreatic cancer", "pdac", "pancreas head", "pancreas body", "pancreas tail",
                 "pancreatic duct", "pancreatic lesion"),
    "duodenum": ("duodenum",),
    "sma": ("superior mesenteric artery", "sma", "a mesenterica superior", "arteria mesenterica superior"),
    "tc_sa": ("celiac trunk", "coeliac trunk", "celiac artery", "coeliac artery", "truncus coeliacus",
              "truncus celiacus", "celiac axis", "splenic artery", "tc", "sa", "tc sa", "tc&sa", "tc and sa"),
    "lga": ("left gastric artery", "lga", "arteria gastrica sinistra"),
    "cha_pha": ("common hepatic artery", "proper hepatic artery", "hepatic artery", "cha", "pha", "cha pha",
                "cha&pha", "cha and pha", "hepatic artery common", "hepatic artery proper"),
}

# TotalSegmentator v2 class_map['total'] ids (totalsegmentator/map_to_binary.py) of the structures it has.
# Celiac trunk, SMA and hepatic/gastric arteries are not 'total' classes: they come as separate masks
# (e.g. aorta_report/celiac_trunk.nii.gz) and are matched by name.
TOTALSEG_TOTAL_IDS = {"spleen": (1,), "stomach": (6,), "pancreas": (7,), "esophagus": (15,), "duodenum": (19,),
                      "aorta": (52,)}
TOTALSEG_TOTAL_MAX_ID = 117

# The 20-label convention published with paper 2's code (pancreatic cancer): every value 1..20 is named; ten of
# them make the attention structures of Table II, with the pancreas (11) and the PDAC (19) merged into one.
PDAC20_LABELS = {1: "spleen", 2: "right_kidney", 3: "left_kidney", 4: "gallbladder", 5: "esophagus", 6: "liver",
                 7: "stomach", 8: "aorta", 9: "inferior_vena_cava", 10: "portal_and_splenic_vein", 11: "pancreas",
                 12: "right_adrenal_gland", 13: "left_adrenal_gland", 14: "duodenum",
                 15: "superior_mesenteric_vein", 16: "superior_mesenteric_artery",
                 17: "celiac_trunk_splenic_artery", 18: "left_gastric_artery", 19: "tumor",
                 20: "common_proper_hepatic_artery"}
PDAC20_IDS = {"spleen": (1,), "esophagus": (5,), "stomach": (7,), "aorta": (8,), "pancreas": (11, 19),
              "duodenum": (14,), "sma": (16,), "tc_sa": (17,), "lga": (18,), "cha_pha": (20,)}


def normalise_name(name: str) -> str:
    """'Superior_Mesenteric_Artery.nii.gz' -> 'superior mesenteric artery'."""
    name = str(name).strip().lower()
    name = re.sub(r"\.(nii\.gz|nii|nrrd|seg\.nrrd|mha|mhd)$", "", name)
    name = re.sub(r"[_\-\s./]+", " ", name)
    return name.strip()


@dataclass(frozen=True)
class StructureMapping:
    """Which source labels make each structure.

    ``mode`` says how label values and names are used:
    - "ids": values only (a fixed convention such as pdac20);
    - "names": names only (Slicer segment names, mask file names);
    - "names_else_ids": names when the label map carries names (a folder of masks), else values (a 'total' map);
    - "both": values and names as listed (a user mapping).
    ``known_labels`` (value -> name) is the whole convention: values outside it are an error, not ignored.
    """

    name: str
    ids: dict[str, tuple[int, ...]] = field(default_factory=dict)
    names: dict[str, tuple[str, ...]] = field(default_factory=dict)
    mode: str = "both"
    known_labels: dict[int, str] | None = None
    known_max_label: int | None = None


def _synonym_names() -> dict[str, tuple[str, ...]]:
    return {key: tuple(normalise_name(n) for n in names) for key, names in SYNONYMS.items()}


BUILTIN_MAPPINGS: dict[str, StructureMapping] = {
    "totalsegmentator": StructureMapping("totalsegmentator", dict(TOTALSEG_TOTAL_IDS), _synonym_names(),
                                         "names_else_ids", None, TOTALSEG_TOTAL_MAX_ID),
    "pdac20": StructureMapping("pdac20", dict(PDAC20_IDS), {}, "ids", {k: v for k, v in PDAC20_LABELS.items()}, 20),
    "slicer": StructureMapping("slicer", {}, _synonym_names(), "names"),
}


def mapping_from_json(data: dict, name: str = "user") -> StructureMapping:
    """A user mapping: {"structures": {"tc_sa": [17, "celiac trunk"], ...}, "labels": {"1": "spleen", ...}}.

    The short form {"spleen": [1], ...} (as dataset.json's "organ_mapping") is accepted too.
    Integers are label values, strings are label/segment/file names (case-insensitive). "labels" is optional;
    when given it declares every value of the label map, and any other value is reported as unknown.
    """
    if isinstance(data, dict) and "structures" not in data and data and set(data) - {"name", "labels"} <= set(
            STRUCTURE_KEYS):
        data = {"structures": {k: v for k, v in data.items() if k in STRUCTURE_KEYS}, **{
            k: v for k, v in data.items() if k in ("name", "labels")}}  # the short form {"spleen": [1], ...}
    if not isinstance(data, dict) or not isinstance(data.get("structures"), dict):
        raise AnatomyError('A mapping file must be a JSON object with a "structures" object, e.g. '
                           '{"structures": {"spleen": [1], "pancreas": [11, "tumour"]}}.')
    ids: dict[str, tuple[int, ...]] = {}
    names: dict[str, tuple[str, ...]] = {}
    for key, sources in data["structures"].items():
        if key not in STRUCTURE_BY_KEY:
            raise AnatomyError(f"Unknown structure {key!r} in the mapping; use one of: {', '.join(STRUCTURE_KEYS)}.")
        if isinstance(sources, (int, str)):
            sources = [sources]
        bad = [s for s in sources if isinstance(s, bool) or not isinstance(s, (int, str))]
        if bad:
            raise AnatomyError(f"Mapping for {key!r} must list label values (integers) or names (strings), not {bad!r}.")
        ids[key] = tuple(int(s) for s in sources if isinstance(s, int))
        names[key] = tuple(normalise_name(s) for s in sources if isinstance(s, str))
    known = None
    if "labels" in data:
        try:
            known = {int(k): str(v) for k, v in data["labels"].items()}
        except (AttributeError, ValueError) as error:
            raise AnatomyError('"labels" in a mapping file must be {"<value>": "<name>", ...}.') from error
    return StructureMapping(str(data.get("name", name)), ids, names, "both", known, None)


def load_mapping(spec: str | StructureMapping | dict | None) -> StructureMapping:
    """A built-in mapping by name ('totalsegmentator', 'pdac20', 'slicer'), a JSON file path, or a dict."""
    if spec is None:
        return BUILTIN_MAPPINGS["totalsegmentator"]
    if isinstance(spec, StructureMapping):
        return spec
    if isinstance(spec, dict):
        return mapping_from_json(spec)
    if spec in BUILTIN_MAPPINGS:
        return BUILTIN_MAPPINGS[spec]
    path = Path(spec)
    if not path.is_file():
        raise AnatomyError(f"Mapping {spec!r} is neither a built-in mapping ({', '.join(BUILTIN_MAPPINGS)}) "
                           "nor an existing JSON file.")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise AnatomyError(f"Cannot read mapping file {path.name}: {error}") from error
    return mapping_from_json(data, name=path.stem)


# --------------------------------------------------------------------------------------------------------------
# Organ input: one label map plus the names of its values.


@dataclass
class OrganLabels:
    """An integer label map and, when the source carries them, the name of each value."""

    image: sitk.Image
    names: dict[int, str] = field(default_factory=dict)
    from_files: bool = False  # values were assigned per mask file: only names mean anything


def _check_grid(image: sitk.Image, reference: sitk.Image, what: str, resample: bool) -> sitk.Image:
    if same_grid(image, reference):
        return snap_to_grid(image, reference)
    if not resample:
        raise GeometryError(f"{what} is on a different grid ({describe_grid(image)}) from the reference "
                            f"({describe_grid(reference)}); resample it onto the reference first "
                            "(or allow resampling: --resample-masks).")
    log.warning("%s resampled (nearest neighbour) onto the reference grid", what)
    return resample_to_reference(image, reference, "nearest")


def _integer_labels(image: sitk.Image, what: str) -> sitk.Image:
    if image.GetDimension() != 3:
        raise AnatomyError(f"{what} must be a 3D label map (got {image.GetDimension()}D); export a multi-layer "
                           "segmentation as a label map first.")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise AnatomyError(f"{what} has {image.GetNumberOfComponentsPerPixel()} components per voxel; "
                           "a label map has one.")
    if image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        array = sitk.GetArrayViewFromImage(image)
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise AnatomyError(f"{what} holds non-integer values: it is not a label map.")
        image = sitk.Cast(image, sitk.sitkUInt16)
    return image


def _is_binary(image: sitk.Image) -> bool:
    """A mask holds 0 and at most one other value."""
    array = sitk.GetArrayViewFromImage(image)
    top = array.max()
    return bool(np.all((array == 0) | (array == top)))


def _seg_nrrd_names(image: sitk.Image) -> dict[int, str]:
    """Segment names of a Slicer .seg.nrrd (SegmentN_Name / SegmentN_LabelValue in the header)."""
    names: dict[int, str] = {}
    keys = set(image.GetMetaDataKeys())
    n = 0
    while f"Segment{n}_Name" in keys:
        value = int(image.GetMetaData(f"Segment{n}_LabelValue")) if f"Segment{n}_LabelValue" in keys else n + 1
        layer = image.GetMetaData(f"Segment{n}_Layer") if f"Segment{n}_Layer" in keys else "0"
        if layer.strip() not in ("", "0"):
            raise AnatomyError("This .seg.nrrd has overlapping segments in several layers; export it as a single "
                               "label map (Segmentations module > Export to label map) and pass that.")
        names[value] = image.GetMetaData(f"Segment{n}_Name")
        n += 1
    return names


def _read(path: Path) -> sitk.Image:
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise InputFileError(f"Cannot read {path.name} as an image: {str(error).splitlines()[0]}") from error


MASK_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


def read_organs(path: str | Path, reference=None, resample: bool = False,
                names: dict[int, str] | None = None, rois: list[str] | None = None,
                roi_option: str | None = None, reference_option: str | None = None) -> OrganLabels:
    """Read organ masks: a label map file, a Slicer .seg.nrrd, a folder of binary masks (one file per organ,
    as TotalSegmentator writes), or a DICOM RTSTRUCT / SEG (its ROIs or segments by name; ``rois`` keeps only
    those; needs the reference). Masks are checked to lie on one grid (the reference's if given, else the
    first mask's); a mask on another grid is refused unless `resample` (nearest neighbour, logged).
    In a folder, a later file (alphabetical) wins where masks overlap. ``reference`` is an image or an
    io.dicom_series.DicomSeries (which lets an RTSTRUCT or SEG be checked against its frame of reference).
    ``roi_option`` / ``reference_option``: the calling command's options that choose ROIs and give the reference
    (None: it has none), named in the messages.
    """
    from ..io.mask_source import dicom_modality, read_named_labels

    path = Path(path)
    if dicom_modality(path) is not None:
        if reference is None:
            given = f" ({reference_option} CT)" if reference_option else ""
            raise InputFileError(f"Organ masks '{path}' are DICOM: give the image they belong to{given}, or the organs "
                                 "as a label map.")
        image, found = read_named_labels(path, reference, names=rois, roi_option=roi_option)
        return OrganLabels(image, found, from_files=True)
    if rois:
        raise InputFileError(f"{roi_option or 'the ROI choice'} chooses structures of an RTSTRUCT or DICOM SEG; "
                             f"'{path}' is neither.")
    if reference is not None and not isinstance(reference, sitk.Image):
        reference = reference.image  # a DicomSeries
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.name.endswith(MASK_SUFFIXES) and not p.name.startswith("."))
        if not files:
            raise InputFileError(f"Folder {path.name} holds no mask files ({', '.join(MASK_SUFFIXES)}).")
        grid = reference
        label_array = None
        found: dict[int, str] = {}
        value = 0
        for file in files:
            image = _read(file)
            if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1 or not _is_binary(image):
                log.warning("%s is not a binary mask (an image?): skipped", file.name)
                continue
            mask = _integer_labels(image, file.name)
            if grid is None:
                grid = mask
            mask = _check_grid(mask, grid, file.name, resample)
            array = sitk.GetArrayViewFromImage(mask) != 0
            if label_array is None:
                label_array = np.zeros(array.shape, np.uint16)
            value += 1
            label_array[array] = value
            found[value] = file.name
        if label_array is None:
            raise InputFileError(f"Folder {path.name} holds no binary mask files.")
        image = sitk.GetImageFromArray(label_array)
        image.CopyInformation(grid)
        return OrganLabels(image, found, from_files=True)
    if not path.is_file():
        raise InputFileError(f"Organ masks {path} not found: give a label map file, a .seg.nrrd or a folder of masks.")
    image = _read(path)
    seg_names = _seg_nrrd_names(image) if path.name.endswith(".nrrd") else {}
    image = _integer_labels(image, path.name)
    if reference is not None:
        image = _check_grid(image, reference, path.name, resample)
    return OrganLabels(image, dict(names or seg_names))


# --------------------------------------------------------------------------------------------------------------
# Mapping onto the ten structures.


@dataclass
class StructureMap:
    """The structure label map M (uint8, 0 = none, 1..10 = STRUCTURES[i-1]) and what was found."""

    image: sitk.Image
    present: list[str]
    absent: list[str]
    sources: dict[str, list[int]]  # structure key -> source label values used

    def describe_absent(self) -> str:
        if not self.absent:
            return "all 10 structures present"
        return "absent (attention computed without them): " + ", ".join(self.absent)


#: Label maps of these types are counted with a histogram and mapped with a lookup table (one pass each, no sort).
_SMALL_LABEL_TYPES = (np.uint8, np.uint16)
_SLAB = 16  # slices per histogram pass: bincount works on a copy as intp, kept small


def _label_values(array: np.ndarray) -> list[int]:
    """The non-zero values present (a 512x512x244 map: a histogram pass instead of np.unique's sort)."""
    if array.dtype.type not in _SMALL_LABEL_TYPES:
        return [int(v) for v in np.unique(array) if v != 0]
    seen = np.zeros(np.iinfo(array.dtype).max + 1, bool)
    for start in range(0, array.shape[0], _SLAB):
        counts = np.bincount(array[start:start + _SLAB].ravel())
        seen[:len(counts)] |= counts > 0
    return [int(v) for v in np.flatnonzero(seen) if v != 0]


def _apply_lookup(array: np.ndarray, targets: dict[int, int]) -> np.ndarray:
    """uint8 map with out[v == value] = targets[value] (0 elsewhere): one table lookup for small label types."""
    if array.dtype.type in _SMALL_LABEL_TYPES:
        table = np.zeros(np.iinfo(array.dtype).max + 1, np.uint8)
        for value, target in targets.items():
            table[value] = target
        return table[array]
    out = np.zeros(array.shape, np.uint8)
    for target in sorted(set(targets.values())):
        out[np.isin(array, [v for v, t in targets.items() if t == target])] = target
    return out


def map_structures(organs: OrganLabels | sitk.Image, mapping: str | StructureMapping | dict | None = None,
                   names: dict[int, str] | None = None, option: str = "--organ-mapping") -> StructureMap:
    """Build M of eq. 2 from an organ label map. Structures absent from the map are listed, not invented.
    ``option`` is the command-line option that chooses the mapping on the calling command (for the messages).

    Raises AnatomyError for an empty label map, for values outside the mapping's convention, for a mapping that
    needs names the input does not carry, and when none of the ten structures is found.
    """
    if isinstance(organs, sitk.Image):
        organs = OrganLabels(_integer_labels(organs, "organ label map"), dict(names or {}))
    mapping = load_mapping(mapping)
    array = sitk.GetArrayViewFromImage(organs.image)
    values = _label_values(array)
    if not values:
        raise AnatomyError("The organ label map is empty (all zero): segment the organs and vessels first "
                           "(e.g. with TotalSegmentator) and pass that label map.")
    if organs.from_files and mapping.mode == "ids":
        raise AnatomyError(f"A folder of mask files is matched by file names, but the {mapping.name!r} mapping uses "
                           f"label values; use {option} totalsegmentator or slicer, or a JSON mapping with names.")
    if mapping.known_labels is not None or mapping.known_max_label is not None:
        if mapping.mode != "names_else_ids" or not organs.names:
            known = set(mapping.known_labels or range(1, (mapping.known_max_label or 0) + 1))
            unknown = [v for v in values if v not in known]
            if unknown:
                raise AnatomyError(f"Label values {unknown[:10]} are not part of the {mapping.name!r} convention; "
                                   f"this label map follows another convention: choose the right {option} "
                                   "(totalsegmentator, pdac20, slicer) or give a JSON mapping.")
    use_names = mapping.mode in ("names", "both") or (mapping.mode == "names_else_ids" and organs.names)
    use_ids = mapping.mode in ("ids", "both") or (mapping.mode == "names_else_ids" and not organs.names)
    if mapping.mode == "names" and not organs.names:
        raise AnatomyError(f"The {mapping.name!r} mapping matches segment names, but this label map carries none; "
                           f"pass a .seg.nrrd, a folder of named masks, or choose {option} pdac20/totalsegmentator.")
    normalised = {v: normalise_name(n) for v, n in organs.names.items()}
    value_to_structure: dict[int, int] = {}  # label value -> structure index (a later structure wins a shared value)
    present, absent, sources = [], [], {}
    for structure in STRUCTURES:
        wanted: set[int] = set()
        if use_ids:
            wanted.update(mapping.ids.get(structure.key, ()))
        if use_names:
            targets = set(mapping.names.get(structure.key, ()))
            wanted.update(v for v, n in normalised.items() if n in targets)
        hit = sorted(v for v in wanted if v in values)
        if hit:
            value_to_structure.update({v: structure.index for v in hit})
            present.append(structure.key)
            sources[structure.key] = hit
        else:
            absent.append(structure.key)
    if not present:
        shown = {v: organs.names.get(v, "") for v in values[:15]}
        raise AnatomyError(f"None of the 10 structures of the attention model was found with the {mapping.name!r} "
                           f"mapping (label values/names present: {shown}); choose another {option} or give a "
                           "JSON mapping.")
    image = sitk.GetImageFromArray(_apply_lookup(array, value_to_structure))
    image.CopyInformation(organs.image)
    return StructureMap(image, present, absent, sources)
