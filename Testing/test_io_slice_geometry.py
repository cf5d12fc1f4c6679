"""Slice geometry on real DICOM changed the way scanners and archives change it (issue 25 items 1-3): a gantry tilt
(CT and PET), slice spacing that drifts within the per-gap tolerance, and enhanced / legacy-converted multi-frame
objects with a missing or unevenly spaced frame. The oracle is each file's own header: every pixel of every recorded
slice must be found at ImagePositionPatient + i * PixelSpacing * row + j * PixelSpacing * column in the image read."""

from __future__ import annotations

import hashlib
import math
import shutil
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from scipy.ndimage import map_coordinates

from LNStagingLib.errors import DicomError
from LNStagingLib.io.dicom_series import read_dicom_series

CT = "ibsi_validation_sts/dicom/STS_001/CT/image"
PET = "ibsi_validation_sts/dicom/STS_001/PET/image"


def _tree_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def rewrite(source: Path, target: Path, edit) -> Path:
    """Copy a real series with ``edit(ds, k)`` applied to slice k (files in the order of their z position)."""
    target.mkdir(parents=True)
    files = sorted(source.iterdir(), key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]))
    for k, path in enumerate(files):
        ds = pydicom.dcmread(path)
        edit(ds, k)
        ds.save_as(target / path.name)
    return target


def tilt(degrees: float):
    """Slice planes tilted about the patient's x axis; the positions still step along the table (as scanners write)."""
    angle = math.radians(degrees)

    def edit(ds, _k):
        ds.ImageOrientationPatient = [1, 0, 0, 0, round(math.cos(angle), 8), round(-math.sin(angle), 8)]
        ds.GantryDetectorTilt = degrees
    return edit


def recorded_voxels(folder: Path, stride: int = 3):
    """World points (LPS mm) and real values of every ``stride``-th pixel of every file, from the file's own header."""
    points, values = [], []
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        orientation = np.array([float(v) for v in ds.ImageOrientationPatient])
        row, column = orientation[:3], orientation[3:]
        spacing_row, spacing_column = float(ds.PixelSpacing[1]), float(ds.PixelSpacing[0])
        pixels = ds.pixel_array.astype(float) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
        jj, ii = np.mgrid[0:pixels.shape[0]:stride, 0:pixels.shape[1]:stride]
        origin = np.array([float(v) for v in ds.ImagePositionPatient])
        points.append(origin + ii.reshape(-1, 1) * spacing_row * row + jj.reshape(-1, 1) * spacing_column * column)
        values.append(pixels[jj, ii].ravel())
    return np.concatenate(points), np.concatenate(values)


def sample(image: sitk.Image, points: np.ndarray) -> np.ndarray:
    """Linear interpolation of the image at world points (NaN outside)."""
    direction = np.array(image.GetDirection()).reshape(3, 3) @ np.diag(image.GetSpacing())
    index = np.linalg.solve(direction, (points - np.array(image.GetOrigin())).T)  # (x, y, z) continuous indices
    array = sitk.GetArrayViewFromImage(image).astype(np.float32)
    return map_coordinates(array, index[::-1], order=1, mode="constant", cval=np.nan)


SHIFTS = [np.zeros(3)] + [sign * 2.0 * axis for axis in np.eye(3) for sign in (-1, 1)]


def placement_error(image: sitk.Image, folder: Path, complete: bool = True) -> tuple[float, float]:
    """(median absolute difference between the image at each recorded pixel's world point and that pixel's value,
    the same with the image moved by 2 mm along x, y or z, whichever is smallest): the first is much smaller when
    every slice is where its header says."""
    points, values = recorded_voxels(folder)
    reads = [sample(image, points + shift) for shift in SHIFTS]
    if complete:  # every recorded pixel is inside the image
        assert np.mean(~np.isnan(reads[0])) > 0.999, "recorded slices fall outside the image read"
    inside = ~np.any(np.isnan(reads), axis=0)
    errors = [float(np.median(np.abs(read[inside] - values[inside]))) for read in reads]
    return errors[0], min(errors[1:])


@pytest.mark.parametrize("modality, relative", [("CT", CT), ("PT", PET)])
@pytest.mark.parametrize("degrees", [15.0, -7.5])
def test_gantry_tilt_keeps_every_slice_at_its_recorded_position(data_dir, tmp_path, modality, relative, degrees):
    source = data_dir / relative
    before = _tree_hash(source)
    folder = rewrite(source, tmp_path / "tilted", tilt(degrees))
    series = read_dicom_series(folder, modality=modality)
    assert series.resampled and f"gantry tilt {abs(degrees):.1f} degrees" in series.resampled
    direction = np.array(series.image.GetDirection()).reshape(3, 3)
    assert np.allclose(direction[:, 2], [0, 0, 1], atol=1e-6)  # a regular grid along the table (axial)
    in_place, moved = placement_error(series.image, folder)
    assert in_place < 0.9 * moved, (in_place, moved)
    # the stack along the tilted normal (what ITK alone writes) does not hold the recorded values there
    naive = sitk.ReadImage([str(p) for p in sorted(folder.iterdir(), key=lambda p: float(
        pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]))], sitk.sitkFloat32)
    assert placement_error(naive, folder, complete=False)[0] > 2 * in_place
    assert _tree_hash(source) == before


def test_regular_real_series_are_not_resampled(data_dir):
    for relative in (CT, PET, "mirp_sts_raw_pet/STS_001/FDG_PET/image", "totalsegmentator/example_ct_dicom"):
        assert read_dicom_series(data_dir / relative).resampled is None, relative


def drift(first_count: int, factor: float):
    """Slices after ``first_count`` are spaced ``factor`` times wider: each gap within the 10 % tolerance."""
    def edit(ds, k):
        z = float(ds.ImagePositionPatient[2]) + max(0, k - first_count) * 3.27 * (factor - 1.0)
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], round(z, 4)]
        ds.SliceLocation = round(z, 4)
    return edit


def test_drifting_slice_spacing_is_resampled_with_every_slice_in_place(data_dir, tmp_path):
    source = data_dir / CT
    before = _tree_hash(source)
    folder = rewrite(source, tmp_path / "drift", drift(29, 1.08))
    series = read_dicom_series(folder)
    assert series.resampled and "irregular slice spacing" in series.resampled
    moved = float(series.resampled.split(" mm from")[0].rsplit(" ", 1)[1])
    assert moved > 1.0  # the largest displacement a single spacing would have left, in mm
    in_place, moved = placement_error(series.image, folder)
    assert in_place < 0.9 * moved, (in_place, moved)
    assert _tree_hash(source) == before


def legacy_multiframe(files: list[Path], modality: str) -> pydicom.Dataset:
    datasets = [pydicom.dcmread(f) for f in files]
    build = hd.legacy.LegacyConvertedEnhancedCTImage if modality == "CT" else hd.legacy.LegacyConvertedEnhancedPETImage
    return build(datasets, series_instance_uid=hd.UID(), series_number=99, sop_instance_uid=hd.UID(), instance_number=1)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("modality, relative", [("CT", CT), ("PT", PET)])
def test_multiframe_reads_like_the_slices_and_refuses_a_missing_frame(data_dir, tmp_path, modality, relative):
    source = data_dir / relative
    before = _tree_hash(source)
    files = sorted(source.iterdir())
    (tmp_path / "mf").mkdir()
    legacy_multiframe(files, modality).save_as(tmp_path / "mf" / "mf.dcm")
    classic = read_dicom_series(source)
    frames = read_dicom_series(tmp_path / "mf")
    assert frames.resampled is None
    assert np.allclose(frames.image.GetOrigin(), classic.image.GetOrigin(), atol=1e-3)
    assert np.allclose(frames.image.GetSpacing(), classic.image.GetSpacing(), atol=1e-4)
    assert np.allclose(frames.image.GetDirection(), classic.image.GetDirection(), atol=1e-6)
    assert np.allclose(sitk.GetArrayViewFromImage(frames.image), sitk.GetArrayViewFromImage(classic.image), atol=1e-3)

    (tmp_path / "missing").mkdir()
    legacy_multiframe(files[:20] + files[21:], modality).save_as(tmp_path / "missing" / "mf.dcm")
    with pytest.raises(DicomError, match="a slice file is probably missing"):
        read_dicom_series(tmp_path / "missing")

    uneven = rewrite(source, tmp_path / "uneven", drift(29, 1.08))
    (tmp_path / "uneven_mf").mkdir()
    legacy_multiframe(sorted(uneven.iterdir()), modality).save_as(tmp_path / "uneven_mf" / "mf.dcm")
    series = read_dicom_series(tmp_path / "uneven_mf")
    assert series.resampled and "irregular slice spacing" in series.resampled
    in_place, moved = placement_error(series.image, uneven)
    assert in_place < 0.9 * moved, (in_place, moved)
    assert _tree_hash(source) == before


def hottest_recorded_point(folder: Path) -> np.ndarray:
    points, values = recorded_voxels(folder, stride=1)
    return points[int(np.argmax(values))]


def test_run_on_tilted_pet_ct_finds_the_hottest_lesion_where_it_was_recorded(data_dir, tmp_path, caplog):
    """lnstaging run on a tilted CT and PET: exit 0, one line per resampled image, provenance.json records both, and
    the hottest lesion is reported at the recorded position of the PET's hottest pixel (not 49 mm away)."""
    import json

    from LNStagingLib.cli import main

    case = data_dir / "ibsi_validation_sts/dicom/STS_001"
    before = _tree_hash(case)
    ct = rewrite(case / "CT/image", tmp_path / "ct", tilt(15.0))
    pet = rewrite(case / "PET/image", tmp_path / "pet", tilt(15.0))
    assert main(["run", "--ct", str(ct), "--pet", str(pet), "--models", "none", "--out", str(tmp_path / "r")]) == 0
    err = caplog.text  # the warnings a real process prints on stderr
    assert err.count("resampled onto a regular grid along the table (gantry tilt 15.0 degrees") == 2, err
    provenance = json.loads((tmp_path / "r/provenance.json").read_text())
    assert set(provenance["resampled_inputs"]) == {"ct", "pet"}
    assert "49.5 mm from its recorded position" in provenance["resampled_inputs"]["ct"]
    candidates = json.loads((tmp_path / "r/candidates.json").read_text())["candidates"]
    hottest = max(candidates, key=lambda c: c["suv_max"])
    distance = float(np.linalg.norm(np.array(hottest["centroid_lps"]) - hottest_recorded_point(pet)))
    assert distance < 10.0, distance  # within two PET voxels (4.7 mm) of the recorded hottest pixel
    assert _tree_hash(case) == before


def test_export_refuses_a_resampled_ct(data_dir, tmp_path):
    """Contours on the regular grid cannot reference the slices of a tilted CT: export says so instead of writing
    an RTSTRUCT whose planes match no CT slice."""
    from LNStagingLib.errors import ExportError
    from LNStagingLib.export.ct_reference import read_ct_reference

    ct = rewrite(data_dir / CT, tmp_path / "ct", tilt(15.0))
    with pytest.raises(ExportError, match="tilted or irregularly spaced"):
        read_ct_reference(ct)


@pytest.mark.filterwarnings("ignore")
def test_tilted_multiframe_ct_keeps_every_frame_at_its_recorded_position(data_dir, tmp_path):
    """The tilted IBSI CT as one legacy-converted multi-frame object: the same regularisation as the files."""
    tilted = rewrite(data_dir / CT, tmp_path / "tilted", tilt(15.0))
    (tmp_path / "mf").mkdir()
    legacy_multiframe(sorted(tilted.iterdir()), "CT").save_as(tmp_path / "mf" / "mf.dcm")
    frames = read_dicom_series(tmp_path / "mf")
    assert frames.resampled and "gantry tilt 15.0 degrees" in frames.resampled
    in_place, moved = placement_error(frames.image, tilted)
    assert in_place < 0.9 * moved, (in_place, moved)
    files = read_dicom_series(tilted)
    assert frames.image.GetSize() == files.image.GetSize()
    assert np.allclose(frames.image.GetOrigin(), files.image.GetOrigin(), atol=1e-3)
    assert np.allclose(sitk.GetArrayViewFromImage(frames.image), sitk.GetArrayViewFromImage(files.image), atol=1e-2)


@pytest.mark.filterwarnings("ignore")
def test_multiframe_raw_pet_gives_the_same_suv_as_its_slices(data_dir, tmp_path):
    """The raw STS PET (Bq/ml, per-slice rescale slopes) as one legacy-converted object: the SUV tags moved into the
    shared functional groups and the per-frame slopes give the oracle factor and the same SUV image."""
    from LNStagingLib.io.petct import load_pet_suv

    source = tmp_path / "slices"  # 60 of the 267 slices keep the test quick
    source.mkdir()
    for path in sorted((data_dir / "mirp_sts_raw_pet/STS_001/FDG_PET/image").iterdir())[100:160]:
        shutil.copy(path, source / path.name)
    (tmp_path / "mf").mkdir()
    legacy_multiframe(sorted(source.iterdir()), "PT").save_as(tmp_path / "mf" / "mf.dcm")
    slices, slice_factor, _ = load_pet_suv(source)
    frames, frame_factor, _ = load_pet_suv(tmp_path / "mf")
    assert frame_factor.factor == pytest.approx(2.4290298e-4, rel=1e-7) == slice_factor.factor
    assert frame_factor.decay_time_s == pytest.approx(2711.0)
    assert frames.GetSize() == slices.GetSize() == (128, 128, 60)
    assert np.allclose(frames.GetOrigin(), slices.GetOrigin(), atol=1e-3)
    assert float(np.abs(sitk.GetArrayViewFromImage(frames) - sitk.GetArrayViewFromImage(slices)).max()) < 1e-4
    assert float(sitk.GetArrayViewFromImage(frames).max()) > 5.0


def test_a_slice_of_another_orientation_is_refused(data_dir, tmp_path):
    """A localizer-like slice (another ImageOrientationPatient) mixed into the real CT cannot be placed: refused."""
    def edit(ds, k):
        if k == 30:
            ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    folder = rewrite(data_dir / CT, tmp_path / "mixed", edit)
    with pytest.raises(DicomError, match="mixes slice orientations \\(slice 30 differs"):
        read_dicom_series(folder)
