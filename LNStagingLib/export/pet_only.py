"""What the nodes of a PET-only run (``lnstaging run`` without --ct) can be exported onto.

They are on the PET's grid. An RTSTRUCT is for the planning system, which plans on the CT: refused, saying to run
again with --ct. A DICOM SEG may reference the PET series itself when the run read the PET as a DICOM folder (the
same files, checked by sha256 against provenance.json); a PET read from an image file (NIfTI, NRRD) has no SOP
instances to reference, so its SEG is refused too. Both refusals are one line saying what to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import ExportError
from ..io import case_inputs
from ..io.checksums import input_sha256


def pet_only_reference(results_dir: Path | str, kind: str, ct_dicom: Optional[Path] = None) -> Optional[Path]:
    """None for a run with a CT (the caller's CT DICOM folder applies); for a PET-only run, the PET DICOM folder its
    SEG references, or ExportError."""
    results_dir = Path(results_dir)
    if not case_inputs.is_pet_only_run(results_dir):
        return None
    if kind == "rtstruct":
        raise ExportError(f"{results_dir} is a PET-only run (no CT): an RTSTRUCT needs the planning CT; run "
                          "'lnstaging run' again with the planning CT given, and export that run.")
    if ct_dicom is not None:
        raise ExportError(f"{results_dir} is a PET-only run: its nodes are on the PET, not on a CT; leave --ct-dicom "
                          "out (the SEG then references the run's PET series), or run 'lnstaging run' again with the "
                          "CT given.")
    pet = case_inputs.recorded_input_path(results_dir, "pet")
    if pet is None:
        raise case_inputs.missing_recorded_image(results_dir, "pet")
    if not pet.is_dir():
        raise ExportError(f"{results_dir} is a PET-only run on an image file ({pet.name}), not a DICOM series: a DICOM "
                          "SEG must reference DICOM images; run 'lnstaging run' again on the PET's DICOM folder (or "
                          "with the CT given, to export onto the CT).")
    recorded = case_inputs.read_recorded_inputs(results_dir)["pet"].get("sha256")
    if recorded and input_sha256(pet) != recorded:
        raise ExportError(f"The PET DICOM folder {pet} is not the one {results_dir} was run on (its sha256 differs "
                          "from provenance.json): put the run's PET series back there, or run 'lnstaging run' again.")
    return pet


def pet_series_uid(results_dir: Path | str) -> Optional[str]:
    """The PET SeriesInstanceUID the run chose (--pet-series-uid), for a folder holding several series."""
    return case_inputs.recorded_image_reading(results_dir).get("pet_series_uid")
