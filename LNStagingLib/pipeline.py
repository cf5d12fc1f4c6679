"""The main job: PET/CT (+ organs, tumour, candidates) in, one Results out.

Steps (each skipped, with the reason recorded in Results.skipped, when its input or model is missing):
  load PET/CT (SUV) -> organ structures -> attention map -> stage-1 LN segmentation -> instances = candidates
  (+ candidates from a file) -> spatial priors -> stage-2 CNN+GNN probabilities -> instance identification ->
  patient-level metastasis probability.
Nothing is invented: without organs there is no attention map, without a tumour no tumour priors and no
patient-level prediction.
"""

from __future__ import annotations

import csv
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from . import NOT_FOR_CLINICAL_USE, __version__
from .errors import InputFileError, LNStagingError
from .io.atomic import atomic_directory
from .io.checksums import input_sha256
from .io.petct import PetCt, load_pet_ct
from .io.resample import resample_to_reference
from .progress import Progress
from .results import MODEL_STAGES, PROBABILITY_SCORES, Candidate, PatientResult, Results

DEFAULT_THRESHOLD = 0.5
FILE_CANDIDATE_RADIUS_MM = 5.0
MAX_CANDIDATE_RADIUS_MM = 50.0  # a 10 cm node is a bulky mass; a larger "radius" is a unit or column mistake


@dataclass
class CaseInputs:
    """Paths of one case. CT/PET may be files (NIfTI/NRRD/MHA) or DICOM folders. Without a CT (PET-only staging) the
    PET's grid is the reference, candidates come from the PET's SUV rules (or a candidate file) and no model runs."""

    ct: Optional[Path]
    pet: Path
    organs: Optional[Path] = None  # label map, .seg.nrrd, folder of masks, RTSTRUCT or DICOM SEG
    organ_mapping: Optional[str | dict] = None  # a built-in mapping name, a JSON file, or a mapping dict
    tumor: Optional[Path] = None  # label map (non-zero = tumour), RTSTRUCT or DICOM SEG
    tumor_roi: Optional[str] = None  # the RTSTRUCT ROI (default: the only ROI, or the only GTV ROI)
    tumor_segment: Optional[str] = None  # the SEG segment number or label (default: the only / the primary one)
    organ_rois: Optional[list[str]] = None  # RTSTRUCT ROIs / SEG segment labels to use as organs (default: all)
    candidates: Optional[Path | str] = None  # CSV/JSON with x,y,z in LPS mm (optional radius_mm), or "pet"
    pet_threshold: Optional[float] = 2.5  # SUVpeak threshold of the PET candidates; None = PERCIST liver
    site: Optional[str] = None  # the case's body site (e.g. abdomen/pancreas, head-and-neck); None = from the tumour
    weight_kg: Optional[float] = None
    dose_bq: Optional[float] = None
    injection_time: Optional[str] = None
    half_life_s: Optional[float] = None  # overrides RadionuclideHalfLife
    accept_timing: bool = False  # the user confirmed an uptake time outside 10 min to 5 h
    ct_series_uid: Optional[str] = None
    pet_series_uid: Optional[str] = None


@dataclass
class ModelSelection:
    """Checkpoint files (already verified or to be verified against ``sha256``) for each stage; None = skip it."""

    seg: Optional[Path] = None
    cls: Optional[Path] = None
    identification: Optional[Path] = None
    patient: Optional[Path] = None
    sha256: dict[str, str] = field(default_factory=dict)  # stage -> expected sha256
    ids: dict[str, str] = field(default_factory=dict)  # stage -> catalogue id
    sites: dict[str, tuple[str, str]] = field(default_factory=dict)  # stage -> (body site, training domain)
    froc: list = field(default_factory=list)  # the cls model's [fp_per_patient, threshold] pairs (operating points)

    @classmethod
    def from_catalogue(cls, ids: dict[str, Optional[str]], catalogue=None) -> "ModelSelection":
        """Resolve catalogue ids (stage -> id) to verified local files."""
        from .models.catalogue import Catalogue

        catalogue = catalogue or Catalogue.read()
        selection = cls()
        for stage, model_id in ids.items():
            if not model_id:
                continue
            setattr(selection, stage, catalogue.resolve(model_id, stage))
            selection.sha256[stage] = catalogue.get(model_id).sha256
            if stage == "cls":
                selection.froc = list(catalogue.get(model_id).metrics.get("froc", []))
            selection.ids[stage] = model_id
            entry = catalogue.get(model_id)
            selection.sites[stage] = (entry.body_site, entry.training_domain)
        return selection


@dataclass
class RunOptions:
    models: ModelSelection = field(default_factory=ModelSelection)
    device: str = "cpu"
    threshold: float = DEFAULT_THRESHOLD
    skip_empty_windows: bool = True
    threads: Optional[int] = None  # torch CPU threads; None = torch's default

    def __post_init__(self) -> None:
        check_threshold(self.threshold)
        check_threads(self.threads)


def check_threshold(value, option: str = "--threshold") -> float:
    """An operating point is a probability: finite and in [0, 1] (NaN would compare false everywhere)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise LNStagingError(f"{option} {value!r} is not a number: give a probability between 0 and 1.") from None
    if not 0.0 <= value <= 1.0:  # also false for NaN
        raise LNStagingError(f"{option} {value} is not a probability: give a value between 0 and 1 (e.g. 0.5).")
    return value


def check_threads(value, option: str = "--threads") -> Optional[int]:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise LNStagingError(f"{option} {value} is not a thread count: give 1 or more, or leave it out (all cores).")
    return value


@dataclass
class CaseImages:
    """What the run saw, for faces that draw it (report, scene)."""

    petct: PetCt
    tumor: Optional[sitk.Image] = None
    structures: Optional[sitk.Image] = None


def read_candidate_file(path: Path) -> list[dict]:
    """Candidates given by the user or another detector: rows with x, y, z (LPS mm) and optional radius_mm."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"candidate file '{path}' does not exist: give a CSV or JSON with x,y,z columns (LPS mm).")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text())
            rows = data["candidates"] if isinstance(data, dict) else data
            rows = [dict(r, **dict(zip("xyz", r["centroid_lps"]))) if "centroid_lps" in r else r for r in rows]
        else:
            with open(path, newline="") as fh:
                reader = csv.DictReader(fh)
                missing = {"x", "y", "z"} - set(reader.fieldnames or ())
                if missing:
                    raise KeyError(f"no column {', '.join(sorted(missing))}")
                rows = list(reader)
        parsed = []
        for row in rows:
            radius = row.get("radius_mm") or (float(row["diameter_mm"]) / 2 if row.get("diameter_mm") else None)
            parsed.append({"xyz": (float(row["x"]), float(row["y"]), float(row["z"])),
                           "radius_mm": float(radius) if radius not in (None, "") else FILE_CANDIDATE_RADIUS_MM})
    except (KeyError, ValueError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputFileError(f"candidate file '{path.name}' cannot be read ({type(error).__name__}: {error}): it needs "
                             "columns x, y, z in LPS millimetres (and optionally radius_mm).") from None
    for number, row in enumerate(parsed, 1):
        if not all(np.isfinite(row["xyz"])):
            raise InputFileError(f"candidate file '{path.name}' row {number}: the coordinates {row['xyz']} are not all "
                                 "numbers: give x, y, z in LPS millimetres.")
        if not 0 < row["radius_mm"] <= MAX_CANDIDATE_RADIUS_MM:  # also false for NaN
            raise InputFileError(f"candidate file '{path.name}' row {number}: radius_mm {row['radius_mm']:g} is not a "
                                 f"lymph node radius: give a value above 0 and at most {MAX_CANDIDATE_RADIUS_MM:g} mm.")
    return parsed


def _add_file_candidates(labels: sitk.Image, rows: list[dict], sources: dict[int, str],
                         grid_name: str = "CT") -> tuple[sitk.Image, dict[int, str]]:
    """Paint each file candidate as a sphere with a new id. A point inside an existing instance is merged with it by
    overlap: the instance keeps its own source and gains "file" (e.g. "pet+file"); nothing is dropped unsaid."""
    array = sitk.GetArrayFromImage(labels).astype(np.uint16)
    sources = dict(sources)
    next_id = int(array.max()) + 1
    spacing = np.array(labels.GetSpacing())
    for row in rows:
        index = labels.TransformPhysicalPointToIndex(row["xyz"])
        if not all(0 <= i < n for i, n in zip(index, labels.GetSize())):
            raise InputFileError(f"a candidate at {tuple(round(v, 1) for v in row['xyz'])} (LPS mm) lies outside the "
                                 f"{grid_name}: candidate coordinates must be LPS millimetres in the {grid_name}'s "
                                 "frame of reference.")
        existing = int(array[index[2], index[1], index[0]])
        if existing:
            if "file" not in sources.get(existing, "").split("+"):
                sources[existing] = "+".join(filter(None, (sources.get(existing), "file")))
            continue
        r_vox = np.ceil(row["radius_mm"] / spacing).astype(int) + 1
        lo = np.maximum(np.array(index) - r_vox, 0)
        hi = np.minimum(np.array(index) + r_vox + 1, labels.GetSize())
        zz, yy, xx = np.meshgrid(*(np.arange(lo[a], hi[a]) for a in (2, 1, 0)), indexing="ij")
        points = np.stack([xx, yy, zz], axis=-1).reshape(-1, 3)
        world = np.array([labels.TransformIndexToPhysicalPoint([int(v) for v in p]) for p in points])
        inside = np.linalg.norm(world - np.array(row["xyz"]), axis=1) <= row["radius_mm"]
        block = array[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]].reshape(-1)
        block[inside & (block == 0)] = next_id
        array[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]] = block.reshape(hi[2] - lo[2], hi[1] - lo[1], hi[0] - lo[0])
        sources[next_id] = "file"
        next_id += 1
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(labels)
    return out, sources


def site_matches(model_site: str, case_site: Optional[str]) -> bool:
    """A model applies to a case of its site or of a part of it ("abdomen" and "abdomen/pancreas" match)."""
    if not model_site or model_site.lower() == "any":
        return True
    if not case_site:
        return False
    a, b = model_site.lower().strip("/"), case_site.lower().strip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def case_site_from_tumour(tumor: Optional[sitk.Image], structures: Optional[sitk.Image]) -> Optional[str]:
    """The case's site from the organ structures the tumour mask overlaps: abdomen/pancreas when it touches the
    pancreas (whose mapping includes the tumour label of the pdac20 convention), else the structure it overlaps most."""
    if tumor is None or structures is None:
        return None
    from .anatomy.structures import STRUCTURE_BY_INDEX

    inside = sitk.GetArrayViewFromImage(structures)[sitk.GetArrayViewFromImage(tumor) > 0]
    counts = np.bincount(inside[inside > 0].astype(np.int64))
    if not counts.size:
        return None
    pancreas = next(i for i, s in STRUCTURE_BY_INDEX.items() if s.key == "pancreas")
    key = "pancreas" if counts.size > pancreas and counts[pancreas] else STRUCTURE_BY_INDEX[int(np.argmax(counts))].key
    return f"abdomen/{key}"


def models_for_site(models: ModelSelection, case_site: Optional[str], not_applied: dict) -> ModelSelection:
    """The selection without the models trained for another site (the reason put into ``not_applied`` by stage;
    Results.models_text says it in one line)."""
    from dataclasses import replace

    kept = replace(models, sha256=dict(models.sha256), ids=dict(models.ids), sites=dict(models.sites))
    for stage in MODEL_STAGES:
        site, domain = models.sites.get(stage, ("", ""))
        if getattr(models, stage) is not None and not site_matches(site, case_site):
            setattr(kept, stage, None)
            reason = (f"it was trained for {site}{' on ' + domain + 's' if domain else ''}, and this case's site is "
                      f"{case_site or 'unknown (give --site)'}")
            not_applied[stage] = reason
    return kept


def _asks_for_pet_candidates(inputs: CaseInputs) -> bool:
    """``--candidates pet``: candidates from the PET's SUV rules (not a candidate file); implied by a PET-only run
    without a candidate file."""
    return str(inputs.candidates).lower() == "pet" or (inputs.ct is None and inputs.candidates is None)


#: Why no model runs in a PET-only run (every network's first input channel is the CT).
NO_CT_REASON = "no CT given: every model reads the CT (run with --ct to apply it)"


def _no_attention_hint() -> str:
    """One sentence naming the catalogue's any-site stage-1 model without attention, or "" when there is none."""
    from .models.catalogue import Catalogue

    try:
        entry = Catalogue.read().any_site_without_attention()
    except LNStagingError:
        return ""
    if entry is None:
        return ""
    domain = f", trained on {entry.training_domain}s" if entry.training_domain else ""
    return (f" Stage 1 without attention ({entry.id}{domain}) runs on any site with --models seg={entry.id}.")


def _native_pet_suv(inputs: CaseInputs, petct: PetCt) -> sitk.Image:
    """The PET in SUVbw on its own grid (where SUVpeak means what PERCIST says), not resampled onto the CT."""
    if petct.ct is None:
        return petct.pet_suv  # PET-only: already on its own grid
    if petct.pet_series is not None:
        native = sitk.Cast(petct.pet_series.image, sitk.sitkFloat32)
        return native * petct.suv.factor if petct.suv is not None and petct.suv.factor != 1.0 else native
    from .io.petct import load_pet_suv

    return load_pet_suv(inputs.pet)[0]


def _add_pet_candidates(inputs: CaseInputs, petct: PetCt, tumor, labels: sitk.Image, sources: dict[int, str],
                        site: Optional[str] = None):
    """PET-avid lesions (candidates/from_pet.py) added as instances on the CT grid. A lesion overlapping an existing
    instance is merged with it (the instance's source gains "pet"); the others get new ids with source "pet".
    Returns the labels, sources, SUVpeak per instance id, one line for the user and the other findings (rows of
    other_findings.csv: primary, large lesions, outside the ``site``'s nodal region, physiological)."""
    from .candidates.from_pet import count_reasons, other_finding_rows, pet_candidates

    suv = _native_pet_suv(inputs, petct)
    detection = pet_candidates(suv, organs=inputs.organs, organ_mapping=inputs.organ_mapping if isinstance(
        inputs.organ_mapping, str) else None, tumor=tumor, threshold=inputs.pet_threshold, site=site)
    on_ct = sitk.GetArrayFromImage(resample_to_reference(detection.labels, petct.reference, "nearest", 0))
    array = sitk.GetArrayFromImage(labels).astype(np.uint16)
    sources, peaks = dict(sources), {}
    next_id = int(array.max()) + 1
    for lesion in sorted(detection.candidates, key=lambda lesion: -lesion.suv_peak):
        voxels = on_ct == lesion.id
        overlapping = np.unique(array[voxels & (array > 0)])
        if overlapping.size:
            target = int(overlapping[0])
            sources[target] = "+".join(filter(None, (sources.get(target), "pet")))
        else:
            if not voxels.any():
                continue  # smaller than a CT voxel after resampling: cannot happen on a finer CT grid
            target = next_id
            next_id += 1
            array[voxels & (array == 0)] = target
            sources[target] = "pet"
        peaks[target] = max(peaks.get(target, 0.0), lesion.suv_peak)
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(labels)
    excluded = detection.excluded_by_organ()
    line = (f"PET candidates from SUV rules ({detection.threshold_rule}): {len(detection.candidates)} lesion(s)"
            + (f"; {len(detection.primary)} peak(s) inside the primary set apart" if detection.primary else "")
            + (f"; physiological uptake set aside: " + ", ".join(f"{k} {v}" for k, v in sorted(excluded.items()))
               if excluded else "") + ".")
    others = detection.other_findings
    if others:
        line += (f" Other findings (other_findings.csv): {len(others)} - "
                 + ", ".join(f"{reason} {n}" for reason, n in count_reasons(others).items()) + ".")
    return out, sources, peaks, line, other_finding_rows(detection)


def stage1_grid(ct: sitk.Image, model_spacing_mm, tolerance: float = 0.2) -> sitk.Image:
    """The grid stage 1 runs on: the CT's own, unless the model was trained at a voxel size more than ``tolerance``
    (relative) away on some axis; then the CT's extent and direction at the model's voxel size."""
    if not model_spacing_mm:
        return ct
    model = np.asarray(model_spacing_mm, float)
    if np.all(np.abs(np.asarray(ct.GetSpacing()) - model) <= tolerance * model):
        return ct
    from .io.resample import grid_with_spacing

    return grid_with_spacing(ct, model)


def _instances_box(labels: sitk.Image, margin_zyx) -> tuple[slice, slice, slice]:
    """SimpleITK (x, y, z) slices of the bounding box of every instance grown by ``margin_zyx`` voxels and clipped to
    the image: a patch of that size centred in any instance lies inside it or is cut by the same image border, so
    the identifier sees the same patches on the crop as on the whole CT, without normalising the whole CT."""
    array = sitk.GetArrayViewFromImage(labels)
    box = []
    for axis, margin in zip(range(3), margin_zyx):
        present = np.nonzero(array.any(axis=tuple(a for a in range(3) if a != axis)))[0]
        lo, hi = (int(present[0]), int(present[-1]) + 1) if present.size else (0, array.shape[axis])
        box.append(slice(max(lo - int(margin), 0), min(hi + int(margin), array.shape[axis])))
    return tuple(box[::-1])


def _empty_labels(reference: sitk.Image) -> sitk.Image:
    labels = sitk.Image(reference.GetSize(), sitk.sitkUInt16)
    labels.CopyInformation(reference)
    return labels


def run_case(inputs: CaseInputs, options: RunOptions | None = None,
             progress: Progress | None = None) -> tuple[Results, CaseImages]:
    """Run every step that its inputs and models allow; return the Results and the images it used."""
    from .models.checkpoint import load_model

    options = options or RunOptions()
    progress = progress or Progress()
    if options.threads:
        import torch

        torch.set_num_threads(options.threads)
    timings: dict[str, float] = {}
    windows: dict = {}
    skipped: list[str] = []  # what did not run, and why
    notes: list[str] = []  # what ran, said in one line
    not_applied: dict[str, str] = {}  # model stage -> why the given model did not run
    models = options.models

    def timed(name: str, start: float) -> None:
        timings[name] = round(time.perf_counter() - start, 3)

    t = time.perf_counter()
    timing = dict(weight_kg=inputs.weight_kg, dose_bq=inputs.dose_bq, injection_time=inputs.injection_time,
                  half_life_s=inputs.half_life_s, accept_timing=inputs.accept_timing,
                  pet_series_uid=inputs.pet_series_uid, progress=progress.sub(0.0, 0.1))
    if inputs.ct is None:
        from .io.petct import load_pet_only

        petct = load_pet_only(inputs.pet, **timing)
    else:
        petct = load_pet_ct(inputs.ct, inputs.pet, ct_series_uid=inputs.ct_series_uid, **timing)
    ct, pet = petct.ct, petct.pet_suv
    grid, grid_series = petct.reference, petct.reference_series  # the CT's, or the PET's when no CT was given
    timed("load", t)
    images = CaseImages(petct)

    tumor = None
    if inputs.tumor is not None:
        from .io.mask_source import read_mask

        tumor = read_mask(inputs.tumor, grid_series or grid, what="tumour mask", roi=inputs.tumor_roi,
                          segment=inputs.tumor_segment)
        if not np.any(sitk.GetArrayViewFromImage(tumor)):
            raise InputFileError(f"the tumour mask '{Path(inputs.tumor).name}' is empty: give the primary tumour "
                                 "segmentation, or leave --tumor out.")
        images.tumor = tumor
    else:
        skipped.append("No tumour mask: the tumour priors (distance, elevation, azimuth) and the patient-level "
                       "metastasis prediction were not computed.")

    attention = organs = None
    t = time.perf_counter()
    if inputs.organs is not None:
        from .anatomy.structures import map_structures, read_organs
        from .priors.attention import attention_map

        progress.step(0.1, "organ structures")
        organs = read_organs(inputs.organs, reference=grid_series or grid, resample=True, rois=inputs.organ_rois,
                             roi_option="--organs-roi")
        structure_map = map_structures(organs, inputs.organ_mapping)
        images.structures = structure_map.image
        if structure_map.absent:
            skipped.append("Attention map: " + structure_map.describe_absent())
        attention = attention_map(structure_map.image, progress=progress.sub(0.1, 0.2))
    else:
        skipped.append("No organ/vessel masks: no attention map.")
    timed("attention", t)
    case_site = inputs.site or case_site_from_tumour(tumor, images.structures)
    if ct is None:  # PET-only: every model reads the CT; each given model is recorded as not applied, with why
        not_applied.update({stage: NO_CT_REASON for stage in MODEL_STAGES if getattr(models, stage) is not None})
        models = ModelSelection(sites=dict(models.sites))
        notes.append("PET-only run (no CT): the PET's own grid is the reference; candidates are ranked by SUVpeak.")
    models = models_for_site(models, case_site, not_applied)

    # ---- stage 1: LN segmentation -> instances ---------------------------------------------------------------
    t = time.perf_counter()
    probability = None
    labels = _empty_labels(grid)
    stage1_ran = False
    if models.seg is not None:
        from .candidates.instances import instances_from_probability
        from .inference.segmentation import segment_lymph_nodes

        seg_model, seg_config, seg_payload = load_model(models.seg, models.sha256.get("seg"), options.device)
        if seg_config.use_attention and attention is None:
            not_applied["seg"] = "its model needs the attention map, which needs organ masks (--organs)"
            skipped.append("Stage-1 segmentation skipped: its model needs the attention map, which needs organ masks "
                           "(--organs)." + _no_attention_hint())
        else:
            if not seg_config.use_attention:
                notes.append(f"Stage 1 ran without distance-guided attention: model {models.ids.get('seg', 'seg')} "
                             "has no attention input (no organ masks needed).")
            progress.step(0.2, "stage 1: lymph node segmentation")
            parts: dict[str, float] = {}  # seconds of each part of stage 1, for provenance and benchmarks
            clock = time.perf_counter()
            grid = stage1_grid(ct, seg_payload.get("training_data", {}).get("spacing_mm"))
            on_grid = (ct, attention, pet)
            if grid is not ct:  # the model's voxel size: faster on fine CTs, and the size it was trained at
                on_grid = tuple(None if image is None else resample_to_reference(image, grid, "linear", fill)
                                for image, fill in zip(on_grid, (-1024.0, 0.0, 0.0)))
            parts["resample_in"], clock = time.perf_counter() - clock, time.perf_counter()
            probability, windows = segment_lymph_nodes(seg_model, *on_grid, skip_empty=options.skip_empty_windows,
                                                       device=options.device, progress=progress.sub(0.2, 0.6))
            del on_grid
            parts["sliding_windows"], clock = time.perf_counter() - clock, time.perf_counter()
            windows["grid_spacing_mm"] = list(grid.GetSpacing())
            if grid is not ct:
                probability = resample_to_reference(probability, ct, "linear", 0.0)
            parts["resample_out"], clock = time.perf_counter() - clock, time.perf_counter()
            labels = instances_from_probability(probability)
            stage1_ran = True
            parts["instances"] = time.perf_counter() - clock
            windows["seconds"] = {k: round(v, 3) for k, v in parts.items()}
    elif options.models.seg is None and ct is not None:
        skipped.append("No stage-1 model: lymph nodes were not segmented.")
    timed("stage1", t)

    sources: dict[int, str] = {i: "stage1" for i in np.unique(sitk.GetArrayViewFromImage(labels)) if i}
    pet_peaks: dict[int, float] = {}
    other_findings = None  # rows of other_findings.csv when the PET rules ran
    want_pet = _asks_for_pet_candidates(inputs)
    if want_pet or (not stage1_ran and inputs.candidates is None):
        t = time.perf_counter()
        progress.step(0.6, "PET candidates (SUV rules)")
        labels, sources, pet_peaks, line, other_findings = _add_pet_candidates(inputs, petct, tumor, labels, sources,
                                                                               site=case_site)
        notes.append(line)
        if not want_pet and ct is not None:
            skipped.append("No stage-1 model fits this case: candidates come from the PET's SUV rules instead."
                           + (_no_attention_hint() if models.seg is None and options.models.seg is not None else ""))
        timed("pet_candidates", t)
    if inputs.candidates is not None and not want_pet:
        labels, sources = _add_file_candidates(labels, read_candidate_file(Path(inputs.candidates)), sources,
                                               grid_name="CT" if ct is not None else "PET")

    from .candidates.measure import measure_instances

    candidates = measure_instances(labels, pet)
    for c in candidates:
        c.source = sources.get(c.id, "stage1")
        if c.id in pet_peaks:
            c.suv_peak = pet_peaks[c.id]
    if probability is not None and candidates:
        prob_array = sitk.GetArrayViewFromImage(probability)
        label_array = sitk.GetArrayViewFromImage(labels)
        boxes = ndimage.find_objects(label_array)  # each candidate's box instead of a pass over the volume per candidate
        for c in candidates:
            box = boxes[c.id - 1]
            c.scores["stage1"] = float(prob_array[box][label_array[box] == c.id].mean())

    # ---- spatial priors + stage 2 ------------------------------------------------------------------------------
    t = time.perf_counter()
    centroids = np.array([c.centroid_lps for c in candidates], np.float64).reshape(-1, 3)
    prior_table = None
    if candidates and ct is None:
        skipped.append("Spatial priors not computed: they are measured on the CT (lungs), and no CT was given.")
    elif candidates:
        from .priors.candidate_priors import candidate_priors

        progress.step(0.6, "spatial priors")
        try:
            landmarks = {}
            if organs is not None:
                from .anatomy.landmarks import landmark_values

                landmarks = dict(organs=organs.image, organ_values=landmark_values(organs, inputs.organ_mapping))
            prior_table = candidate_priors(ct, centroids, tumor=tumor, progress=progress.sub(0.6, 0.7), **landmarks)
        except LNStagingError as error:
            skipped.append(f"Spatial priors not computed: {error}")
        if prior_table is not None:
            for c, row in zip(candidates, prior_table.rows()):
                c.priors = row
            for name, why in prior_table.missing.items():
                skipped.append(f"Prior {name} missing: {why}")
    timed("priors", t)

    t = time.perf_counter()
    if models.cls is not None and not candidates:
        not_applied["cls"] = "there were no candidates to classify"
    if models.cls is not None and candidates:
        from .inference.classification import classify_candidates

        cls_model, cls_config, _ = load_model(models.cls, models.sha256.get("cls"), options.device)
        if getattr(cls_config, "use_priors", False) and prior_table is None:
            not_applied["cls"] = "its model needs the spatial priors, which could not be computed"
            skipped.append("Stage-2 classification skipped: its model needs the spatial priors, which could not be "
                           "computed (see above).")
        else:
            progress.step(0.7, f"stage 2: classifying {len(candidates)} candidates")
            probs = classify_candidates(cls_model, ct, centroids, pet=pet, label_map=labels,
                                        label_ids=[c.id for c in candidates], priors=prior_table, tumor=tumor,
                                        device=options.device, progress=progress.sub(0.7, 0.85))
            for c, p in zip(candidates, probs):
                c.scores["stage2"] = float(p)
    elif options.models.cls is None and ct is not None:
        skipped.append("No stage-2 model: candidates were not classified by CNN+GNN.")
    timed("stage2", t)

    t = time.perf_counter()
    if models.identification is not None and not candidates:
        not_applied["identification"] = "there were no candidates to identify"
    if models.identification is not None and candidates:
        from .models.identification import identify_instances
        from .models.seg_inputs import network_channels

        progress.step(0.85, "instance identification")
        id_model, id_config, _ = load_model(models.identification, models.sha256.get("identification"), options.device)
        box = _instances_box(labels, id_config.id_patch_size)
        scores = identify_instances(id_model, network_channels(id_config, ct[box], None if pet is None else pet[box]),
                                    sitk.GetArrayFromImage(labels[box]), progress=progress.sub(0.85, 0.9))
        for c in candidates:
            if c.id in scores:
                c.scores["identification"] = float(scores[c.id])
    timed("identification", t)

    # the probability shown is a metastasis probability (stage 2, else the instance identifier); a stage-1 score
    # says "lymph node tissue" and stays in c.scores: without a classifier the list is ranked by SUVpeak
    probability_score = next((key for key in PROBABILITY_SCORES if any(key in c.scores for c in candidates)), "")
    for c in candidates:
        c.probability = c.scores.get(probability_score) if probability_score else None

    # ---- patient level -----------------------------------------------------------------------------------------
    t = time.perf_counter()
    # V_max_pLN of eq. 7 from what paper 2 uses: its instance identifier when that ran, else the final probability;
    # null (not 0) when no classifier said which node is positive
    identified = any("identification" in c.scores for c in candidates)
    volume_score = (lambda c: c.scores.get("identification")) if identified else (lambda c: c.probability)
    largest_ml = None  # null when no classifier said which node is positive; 0 when one applied and none is
    if not candidates and (models.cls is not None or models.identification is not None):
        largest_ml = 0.0  # a classifier that fits this case, and no candidate: no positive node
    if probability_score:
        positives = [c for c in candidates if volume_score(c) is not None and volume_score(c) >= options.threshold]
        largest_ml = max((c.volume_ml for c in positives), default=0.0)
    if probability_score:
        operating_point = {"basis": "probability", "threshold": options.threshold}
        if models.froc and models.cls is not None and probability_score == "stage2":
            operating_point["expected_fp_per_patient"] = expected_fp_per_patient(models.froc, options.threshold)
    else:  # SUVpeak: the PET detector's own threshold when it found the candidates (it hides none of them), else 0
        pet_ran = bool(pet_peaks) or "pet_candidates" in timings
        operating_point = {"basis": "suv_peak", "threshold": float(inputs.pet_threshold)
                           if pet_ran and inputs.pet_threshold is not None else 0.0}
    patient = PatientResult(operating_point=operating_point, largest_positive_ln_volume_ml=largest_ml,
                            note="" if largest_ml is None else "largest positive LN volume from the " + (
                                "instance identifier" if identified else "candidate probabilities"))
    if models.patient is not None and tumor is None:
        not_applied["patient"] = "it needs the primary tumour mask (--tumor)"
    if models.patient is not None and tumor is not None:
        from .models.patient import patient_inputs, predict_patient

        progress.step(0.9, "patient-level metastasis")
        patient_model, patient_config, _ = load_model(models.patient, models.sha256.get("patient"), options.device)
        patient.metastasis_probability = predict_patient(
            patient_model, patient_inputs(ct, tumor, patient_config, ln_volume_mm3=largest_ml * 1000.0))
    elif options.models.patient is None and ct is not None:
        skipped.append("No patient-level model: the metastasis probability was not computed.")
    timed("patient", t)

    results = Results(gtv_ln=labels, attention=attention, ln_probability=probability, candidates=candidates,
                      patient=patient, skipped=skipped, notes=notes, probability_score=probability_score)
    results.other_findings = other_findings
    results.models = model_record(options.models, not_applied)
    domains = {models.sites.get(PROBABILITY_SCORES[probability_score], ("", ""))[1]} if probability_score else set()
    if patient.metastasis_probability is not None:
        domains.add(models.sites.get("patient", ("", ""))[1])
    if "synthetic phantom" in domains:
        results.probability_domain = "synthetic phantom"
    if not probability_score:
        results.ranking = "suv_peak"
        if candidates:
            skipped.append("No applicable classifier: candidates are ranked by SUVpeak, not by a learned "
                           "probability.")
    results.rank_candidates()
    results.provenance = provenance(inputs, options, petct, timings)
    if "cls" not in results.applied_models():
        results.provenance["froc"] = []  # the FROC belongs to the classifier: no figure from a model that did not run
    results.provenance["stage1_windows"] = windows
    if prior_table is not None and prior_table.z_source:
        results.provenance["z_norm_landmarks"] = prior_table.z_source
    results.provenance["case_site"] = case_site
    progress.step(1.0, "done")
    return results, images


def expected_fp_per_patient(froc: list, threshold: float) -> float:
    """FP per patient the model showed on its held-out set at ``threshold`` (from its catalogue FROC pairs)."""
    pairs = sorted((float(t), float(fp)) for fp, t in froc)
    thresholds, fps = zip(*pairs)
    return round(float(np.interp(threshold, thresholds, fps)), 3)


def model_record(selection: ModelSelection, not_applied: dict[str, str]) -> dict:
    """Results.models: every model the run was given, applied or not (with the reason), id, sha256, domain."""
    models = {}
    for stage in MODEL_STAGES:
        path = getattr(selection, stage)
        if path is None:
            continue
        # a catalogue model's sha256 was checked when it was loaded; a model given as a file is hashed here
        sha = selection.sha256.get(stage) or input_sha256(Path(path))
        models[stage] = {"id": selection.ids.get(stage, Path(path).name), "sha256": sha,
                         "training_domain": selection.sites.get(stage, ("", ""))[1],
                         "applied": stage not in not_applied, "reason": not_applied.get(stage, "")}
    return models


def provenance(inputs: CaseInputs, options: RunOptions, petct: PetCt, timings: dict) -> dict:
    """What produced these results: software, input checksums, how the images were read, timings (the models are
    Results.models, written here as models_applied / models_not_applied). No patient identifiers."""
    import torch

    from .io.case_inputs import recorded_inputs

    given = {k: getattr(inputs, k) for k in ("ct", "pet", "organs", "tumor", "candidates")}
    if _asks_for_pet_candidates(inputs):
        given.pop("candidates")  # "--candidates pet" names the detector, not a file
    return {
        "software": {"lnstaging": __version__, "python": platform.python_version(), "torch": torch.__version__,
                     "SimpleITK": sitk.Version_VersionString(), "numpy": np.__version__},
        "disclaimer": NOT_FOR_CLINICAL_USE,
        # [fp_per_patient, threshold] of the stage-2 model, for the operating point: only when it ran
        "froc": options.models.froc if options.models.cls is not None else [],
        "inputs": recorded_inputs(given),
        "image_reading": {k: getattr(inputs, k) for k in ("weight_kg", "dose_bq", "injection_time", "accept_timing",
                                                          "ct_series_uid", "pet_series_uid")},
        "suv_factor": None if petct.suv is None else getattr(petct.suv, "factor", None),
        # a tilted or irregular DICOM stack read onto a regular grid (io.slice_geometry), one line per image
        "resampled_inputs": {name: series.resampled for name, series in (("ct", petct.ct_series),
                             ("pet", petct.pet_series)) if series is not None and series.resampled},
        "options": {"device": options.device, "threshold": options.threshold,
                    "skip_empty_windows": options.skip_empty_windows, "threads": options.threads},
        "timings_s": timings,
    }


def named_inputs(inputs: CaseInputs, options: RunOptions | None = None) -> dict[str, Path]:
    """Every file or folder a run reads, by the option that gave it (an output may never be or contain one)."""
    named = {f"--{key}": getattr(inputs, key) for key in ("ct", "pet", "organs", "tumor", "candidates")}
    if _asks_for_pet_candidates(inputs):
        named.pop("--candidates")
    if isinstance(inputs.organ_mapping, (str, Path)) and str(inputs.organ_mapping).lower().endswith(".json"):
        named["--organ-mapping"] = inputs.organ_mapping
    for stage in ("seg", "cls", "identification", "patient"):
        named[f"--models {stage}"] = getattr(options.models, stage) if options else None
    return {name: Path(path) for name, path in named.items() if path is not None}


def check_results_folder(inputs: CaseInputs, out_dir: Path | str, options: RunOptions | None = None,
                         overwrite: bool = False, option: str = "--out") -> Path:
    """The output rule (LNStagingLib/io/outputs.py) for a results folder, before any work is done."""
    from .io.outputs import MB, RESULTS_MARKER, check_output, input_bytes

    named = named_inputs(inputs, options)
    needed = input_bytes([named.get("--ct"), named.get("--pet")]) + 10 * MB  # the maps are about the CT's size
    return check_output(out_dir, kind="folder", inputs=named, overwrite=overwrite, marker=RESULTS_MARKER,
                        needed_bytes=needed, option=option)


def run_to_folder(inputs: CaseInputs, out_dir: Path | str, options: RunOptions | None = None,
                  progress: Progress | None = None, overwrite: bool = False) -> Results:
    """Run and write the results folder atomically (a failed or cancelled run leaves no folder behind).

    The folder is checked first (LNStagingLib/io/outputs.py): an existing one is replaced only with ``overwrite``,
    and only when lnstaging wrote it, it holds no review, and it is neither an input nor the working folder."""
    from .io.case_inputs import add_relative_paths
    from .io.outputs import RESULTS_MARKER
    from .report import ReviewInfo, write_report

    progress = progress or Progress()
    options = options or RunOptions()
    check_results_folder(inputs, out_dir, options, overwrite)
    t = time.perf_counter()
    with atomic_directory(out_dir, replace_marker=RESULTS_MARKER if overwrite else None) as tmp:
        results, images = run_case(inputs, options, progress.sub(0.0, 0.95))
        progress.step(0.96, "writing results")
        write_report(tmp / "report.html", results, images.petct.ct, images.petct.pet_suv,
                     review=ReviewInfo(case_id=Path(out_dir).name))
        results.provenance["timings_s"]["total"] = round(time.perf_counter() - t, 3)
        add_relative_paths(results.provenance["inputs"], out_dir)
        results.write(tmp)
    return results
