"""DICOM Segmentation (highdicom) of the same nodes as the RTSTRUCT, for PACS and viewers.

Segments carry the nodal-target terminology: category Morphologically Altered Structure (SCT 49755003),
type Neoplasm, Secondary (SCT 14799000), anatomic region Lymph node (SCT 59441001). BINARY segmentation
type, because every SEG reader understands it.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from .. import __version__
from ..errors import ExportError
from ..progress import Progress
from ..io.dicom_series import DicomSeries
from .dicom_common import MANUFACTURER, MODEL_NAME, SERIES_DESCRIPTION, SOFTWARE_VERSION, copy_patient_study, new_uid
from .rois import RoiSpec

CATEGORY = Code("49755003", "SCT", "Morphologically Altered Structure")
TYPE = Code("14799000", "SCT", "Neoplasm, Secondary")
REGION = Code("59441001", "SCT", "Lymph node")


def require_seg_support() -> None:
    """highdicom 0.23 or later, or one sentence. Beside pydicom 2.4 (Slicer 5.10) pip can only install highdicom 0.22,
    which predates numpy 2 (it uses np.float_) and lacks CIELabColor.from_rgb: no SEG can be written there."""
    if not hasattr(hd.color.CIELabColor, "from_rgb"):
        raise ExportError(f"Writing a DICOM SEG needs highdicom 0.23 or later (installed: {hd.__version__}, the newest "
                          "that works with pydicom 2.4 as in Slicer 5.10): use Slicer 5.12 or the command line's own "
                          "environment (lnstaging export seg) for a SEG, or export an RTSTRUCT instead (a PET/CT "
                          "run only: an RTSTRUCT needs the planning CT).")


def segment_descriptions(rois: list[RoiSpec]) -> list[hd.seg.SegmentDescription]:
    algorithm = hd.AlgorithmIdentificationSequence(name="LNStaging", family=codes.cid7162.ArtificialIntelligence,
                                                   version=__version__)
    descriptions = []
    for roi in rois:
        manual = roi.algorithm == "MANUAL"
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=roi.number,
            segment_label=roi.name,
            segmented_property_category=CATEGORY,
            segmented_property_type=TYPE,
            algorithm_type=roi.algorithm,
            algorithm_identification=None if manual else algorithm,
            anatomic_regions=[REGION],
            tracking_uid=new_uid(),
            tracking_id=roi.name,
            display_color=hd.color.CIELabColor.from_rgb(*roi.colour),
        ))
    return descriptions


def build_seg(ct: DicomSeries, label_array: np.ndarray, rois: list[RoiSpec], progress: Progress | None = None) -> pydicom.Dataset:
    """A highdicom Segmentation of ``rois`` on the CT slices (frames in the CT's slice order)."""
    progress = progress or Progress()
    progress.step(0.0, "reading CT headers for the SEG")
    sources = [pydicom.dcmread(path) for path in ct.files]  # highdicom wants full source datasets, in slice order
    # A label map of segment numbers (frames, rows, cols): nodes never overlap, and a stack of one binary volume
    # per segment would need gigabytes on a 512 x 512 x 300 CT with 20 nodes.
    lookup = np.zeros(int(label_array.max()) + 1, np.uint16)
    for roi in rois:
        lookup[list(roi.label_values)] = roi.number
    pixels = lookup[label_array]
    progress.step(0.3, "encoding the SEG")
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segment_descriptions(rois),
        series_instance_uid=new_uid(),
        series_number=902,
        sop_instance_uid=new_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL_NAME,
        software_versions=SOFTWARE_VERSION,
        device_serial_number="0",
        content_description=SERIES_DESCRIPTION,
        content_label="LNSTAGING_GTVN",
        series_description=SERIES_DESCRIPTION,
    )
    copy_patient_study(ct.first_dataset, seg)  # highdicom copies most of these already; keep them identical to the RTSTRUCT
    progress.step(1.0, "SEG built")
    return seg
