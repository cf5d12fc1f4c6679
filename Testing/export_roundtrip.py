"""Test support for the DICOM exporters: phantom CT series writer, independent readers, Dice.

The readers here do not use LNStagingLib: rt-utils (its own slice sorting and OpenCV fillPoly rasteriser) and
dicompyler-core (its parser; rasterised with the even-odd point-in-polygon rule of its dvhcalc module, through
dicompyler's own get_contour_mask for axial CTs). CT geometry for dicompyler comes from SimpleITK's series reader.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from LNStagingLib.export.dicom_common import save_file  # pydicom 2.4 (Slicer 5.10) and 3


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(a, b).sum() / total)


def sitk_ct(folder: Path) -> tuple[sitk.Image, list[str]]:
    """The CT as SimpleITK/GDCM sees it, and the SOP Instance UID of each of its slices (in its order)."""
    reader = sitk.ImageSeriesReader()
    files = reader.GetGDCMSeriesFileNames(str(folder))
    reader.SetFileNames(files)
    image = reader.Execute()
    uids = [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files]
    return image, uids


def write_phantom_ct(folder: Path, rows: int, columns: int, slices: int, pixel_spacing: tuple[float, float],
                     slice_spacing: float, row_direction, column_direction, origin, seed: int = 0) -> None:
    """A minimal but valid CT Image Storage series, with any orientation (IOP) and non-isotropic voxels."""
    folder.mkdir(parents=True, exist_ok=True)
    row_direction, column_direction = np.asarray(row_direction, float), np.asarray(column_direction, float)
    normal = np.cross(row_direction, column_direction)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    rng = np.random.default_rng(seed)
    order = rng.permutation(slices)  # files on disk not in slice order, as in real exports
    for k in range(slices):
        ds = pydicom.Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Phantom^Oblique", "PHANTOM01", "", "O"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "20240101", "120000", "1", "A1", ""
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber, ds.Manufacturer = "CT", 3, k + 1, "Test"
        ds.PositionReferenceIndicator, ds.PatientPosition = "", "HFS"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row_direction, *column_direction)]
        ds.ImagePositionPatient = [f"{v:.4f}" for v in np.asarray(origin) + k * slice_spacing * normal]
        ds.PixelSpacing = [f"{pixel_spacing[0]}", f"{pixel_spacing[1]}"]
        ds.SliceThickness = f"{slice_spacing}"
        ds.Rows, ds.Columns = rows, columns
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.KVP = "0", "1", "120"
        ds.PixelData = np.full((rows, columns), -1000 + 10 * k, dtype=np.int16).tobytes()
        save_file(ds, folder / f"slice_{order[k]:03d}.dcm")


def ball_labels(image: sitk.Image, nodes: list[tuple[int, list, float, float]]) -> np.ndarray:
    """Label array [z, y, x] on ``image``: each node is (label, centre LPS, outer radius mm, inner radius mm)."""
    size = image.GetSize()
    k, j, i = np.meshgrid(np.arange(size[2]), np.arange(size[1]), np.arange(size[0]), indexing="ij")
    ijk = np.stack([i, j, k], axis=-1).reshape(-1, 3).astype(float)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    lps = np.asarray(image.GetOrigin()) + (ijk * np.asarray(image.GetSpacing())) @ direction.T
    labels = np.zeros(len(lps), np.uint16)
    for value, centre, outer, inner in nodes:
        d = np.linalg.norm(lps - np.asarray(centre, float), axis=1)
        labels[(d <= outer) & (d > inner)] = value
    return labels.reshape(size[2], size[1], size[0])


def rtutils_masks(ct_folder: Path, rtstruct: Path, our_uids: list[str]) -> dict[str, np.ndarray]:
    """ROI masks [z, y, x] in our slice order, read and rasterised by rt-utils.

    rt-utils allocates its mask as (Columns, Rows, slices) but fills it [row, column]: for a non-square image
    only the leading min(Rows, Columns) square is usable, which the tests respect.
    """
    from rt_utils import RTStructBuilder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rt = RTStructBuilder.create_from(str(ct_folder), str(rtstruct))
        their_uids = [str(s.SOPInstanceUID) for s in rt.series_data]
        rows, columns = int(rt.series_data[0].Rows), int(rt.series_data[0].Columns)
        n = min(rows, columns)
        masks = {}
        for name in rt.get_roi_names():
            m = rt.get_roi_mask_by_name(name)
            out = np.zeros((len(our_uids), rows, columns), bool)
            for i, uid in enumerate(their_uids):
                out[our_uids.index(uid), :n, :n] = m[:n, :n, i]
            masks[name] = out
    return masks


def import_dicompyler():
    """dicompyler-core 0.5.6 (the last release) imports ``pydicom.dicomio.read_file``, which pydicom 3 removed;
    point that one name at ``pydicom.dcmread`` (same signature) so its unmodified parser runs."""
    import pydicom.dicomio

    if not hasattr(pydicom.dicomio, "read_file"):
        pydicom.dicomio.read_file = pydicom.dcmread
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from dicompylercore import dicomparser, dvhcalc
    return dicomparser, dvhcalc


def dicompyler_masks(ct_folder: Path, rtstruct: Path) -> dict[str, np.ndarray]:
    """ROI masks [z, y, x] on SimpleITK's CT grid, parsed by dicompyler-core, even-odd rasterised per slice."""
    dicomparser, dvhcalc = import_dicompyler()
    from matplotlib.path import Path as PolygonPath

    ct, _ = sitk_ct(ct_folder)
    size = ct.GetSize()
    axial = np.allclose(ct.GetDirection(), (1, 0, 0, 0, 1, 0, 0, 0, 1), atol=1e-6)
    origin, spacing = np.array(ct.GetOrigin()), np.array(ct.GetSpacing())
    if axial:  # dicompyler's own plane rasteriser, on a lookup table of the CT's pixel centres
        xlut = origin[0] + spacing[0] * np.arange(size[0])
        ylut = origin[1] + spacing[1] * np.arange(size[1])
        xx, yy = np.meshgrid(xlut, ylut)
        grid_points = np.column_stack([xx.ravel(), yy.ravel()])
        dd = {"lut": [xlut, ylut], "x_lut_index": 0, "rows": size[1], "columns": size[0]}
    jj, ii = np.meshgrid(np.arange(size[1]), np.arange(size[0]), indexing="ij")
    centres = np.column_stack([ii.ravel(), jj.ravel()]).astype(float)
    parser = dicomparser.DicomParser(str(rtstruct))
    masks = {}
    for roi_id, structure in parser.GetStructures().items():
        mask = np.zeros((size[2], size[1], size[0]), bool)
        for plane in parser.GetStructureCoordinates(roi_id).values():
            for contour in plane:
                points = np.asarray(contour["data"], float)
                index = np.array([ct.TransformPhysicalPointToContinuousIndex(tuple(p)) for p in points])
                k = int(round(index[:, 2].mean()))
                assert np.allclose(index[:, 2], k, atol=1e-3), "contour points off the slice plane"
                if axial:
                    inside = dvhcalc.get_contour_mask(dd, roi_id, grid_points, points[:, :2].tolist())
                else:
                    inside = PolygonPath(index[:, :2]).contains_points(centres).reshape(size[1], size[0])
                mask[k] ^= inside
        masks[structure["name"]] = mask
    return masks


def lnstaging_masks(ct_folder: Path, rtstruct: Path) -> dict[str, np.ndarray]:
    """ROI masks [z, y, x] read back by our own reader (LNStagingLib.io.rtstruct_read), on the CT series."""
    from LNStagingLib.io.dicom_series import read_dicom_series
    from LNStagingLib.io.rtstruct_read import read_rtstruct

    masks = read_rtstruct(rtstruct, read_dicom_series(ct_folder))
    return {name: sitk.GetArrayFromImage(mask) > 0 for name, mask in masks.items()}
