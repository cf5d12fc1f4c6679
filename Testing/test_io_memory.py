"""A volume too large for the machine is refused in one line with the figure (issue 25 item 15): early, from the
headers, for ``run``; and ITK's own allocation failure ("Failed to allocate memory for image") becomes one line
instead of a traceback or a misleading "not an image"."""

from __future__ import annotations

import gzip
import hashlib
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from LNStagingLib.cli import main
from LNStagingLib.io.memory import BASE_BYTES, BYTES_PER_VOXEL, GB, estimate_run_bytes, voxel_count

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "Testing/Data/ibsi_validation_sts"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_voxel_count_from_headers_of_real_images():
    assert voxel_count(DATA / "dicom/STS_001/CT/image") == 198 * 202 * 59
    assert voxel_count(DATA / "nifti/STS_001/CT_image.nii.gz") == sitk.ReadImage(
        str(DATA / "nifti/STS_001/CT_image.nii.gz")).GetNumberOfPixels()
    assert estimate_run_bytes(DATA / "dicom/STS_001/CT/image") == BASE_BYTES + BYTES_PER_VOXEL * 198 * 202 * 59


def test_run_refuses_a_ct_too_large_for_memory_before_any_work(tmp_path, capsys):
    """The real IBSI CT NIfTI whose header says 4000 x 4000 x 4000 voxels (1.5 TB to process)."""
    source = DATA / "nifti/STS_001/CT_image.nii.gz"
    before = _digest(source)
    raw = bytearray(gzip.decompress(source.read_bytes()))
    raw[42:48] = np.array([4000, 4000, 4000], "<i2").tobytes()  # dim[1..3]
    huge = tmp_path / "ct_huge.nii.gz"
    huge.write_bytes(gzip.compress(bytes(raw)))
    code = main(["run", "--ct", str(huge), "--pet", str(DATA / "nifti/STS_001/PET_image.nii.gz"), "--models", "none",
                 "--out", str(tmp_path / "r")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1, err
    expected = (BASE_BYTES + BYTES_PER_VOXEL * 4000**3) / GB
    assert f"needs about {expected:.1f} GB of memory for a CT of 64000 million voxels" in err[0], err[0]
    assert not (tmp_path / "r").exists() and _digest(source) == before


def _limit_memory():  # about 3 GB of address space: Python, SimpleITK and the command fit, a 100 GB image does not
    resource.setrlimit(resource.RLIMIT_AS, (3 * GB, 3 * GB))


def test_itk_allocation_failure_is_one_line(tmp_path):
    """The real IBSI PET as an uncompressed MHA whose header claims 3000^3 float voxels: ITK fails to allocate."""
    pet = sitk.ReadImage(str(DATA / "nifti/STS_001/PET_image.nii.gz"), sitk.sitkFloat32)
    path = tmp_path / "pet_huge.mha"
    sitk.WriteImage(pet, str(path), False)
    data = path.read_bytes()
    size = " ".join(str(s) for s in pet.GetSize())
    assert f"DimSize = {size}".encode() in data
    path.write_bytes(data.replace(f"DimSize = {size}".encode(), b"DimSize = 3000 3000 3000", 1))
    result = subprocess.run([sys.executable, "-m", "LNStagingLib.cli", "suv", str(path), "--out",
                             str(tmp_path / "s.nii.gz")], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=_limit_memory, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert "does not fit in memory (27000 million voxels)" in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "s.nii.gz").exists()
