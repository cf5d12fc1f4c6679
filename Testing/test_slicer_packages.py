"""The library under the Python packages each supported Slicer ships (issue 27: pydicom 2.4 vs 3 is what broke).

`make test-slicer-510` runs the library, export and scene tests in a venv pinned to Slicer 5.10.0's numpy, scipy,
pydicom, pillow and SimpleITK (Testing/slicer_versions/slicer-5.10.txt, read from Slicer's SuperBuild at v5.10.0)
and sets LNSTAGING_SLICER_PINS to that file, so the first test proves the run really used them."""

from __future__ import annotations

import os
from importlib.metadata import version
from pathlib import Path

import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from LNStagingLib.errors import DicomError
from LNStagingLib.export.dicom_common import save_file

DATA = Path(__file__).parent / "Data"


def test_the_pinned_run_uses_slicers_versions():
    pins = os.environ.get("LNSTAGING_SLICER_PINS")
    if not pins:
        pytest.skip("not the Slicer-pinned run (make test-slicer-510 sets LNSTAGING_SLICER_PINS)")
    lines = [line.split("#")[0].strip() for line in Path(pins).read_text().splitlines()]
    wanted = dict(line.split("==") for line in lines if "==" in line)
    assert wanted and {name: version(name) for name in wanted} == wanted


def test_save_file_writes_a_dicom_file_with_preamble_on_this_pydicom(tmp_path):
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Modality = "RTSTRUCT"
    save_file(ds, tmp_path / "x.dcm")
    raw = (tmp_path / "x.dcm").read_bytes()
    assert raw[128:132] == b"DICM"  # preamble and file meta: a conformant Part 10 file on pydicom 2.4 and 3
    assert pydicom.dcmread(tmp_path / "x.dcm").SOPInstanceUID == ds.SOPInstanceUID


def test_seg_export_is_refused_in_one_sentence_where_highdicom_is_too_old(tmp_path):
    """Beside pydicom 2.4 pip installs highdicom 0.22, which fails on numpy 2 (np.float_): refuse before any work."""
    import highdicom as hd

    from LNStagingLib.errors import ExportError
    from LNStagingLib.export.exporter import export_label_map
    from LNStagingLib.export.seg import require_seg_support

    if hasattr(hd.color.CIELabColor, "from_rgb"):
        require_seg_support()  # a usable highdicom passes (test_export_seg.py writes SEGs with it)
        return
    labels = sitk.Image(4, 4, 2, sitk.sitkUInt16)
    with pytest.raises(ExportError, match="needs highdicom 0.23 or later"):
        export_label_map(labels, DATA / "ibsi_validation_sts" / "dicom" / "STS_001" / "CT" / "image",
                         tmp_path / "SEG.dcm", kind="seg")
    assert not (tmp_path / "SEG.dcm").exists()


def test_a_dicom_seg_is_refused_in_one_sentence_where_highdicom_cannot_read_volumes():
    import highdicom as hd

    from LNStagingLib.io.seg_read import read_seg

    if hasattr(hd.seg.Segmentation, "get_volume"):
        pytest.skip(f"highdicom {hd.__version__} reads SEG volumes (test_io_readers checks them)")
    with pytest.raises(DicomError, match="needs highdicom 0.23 or later"):
        read_seg(DATA / "mirp_qin_headneck_0139" / "mask" / "mask.dcm")
