"""Reading inputs: images (images.py), DICOM series (dicom_series.py), SUV (suv.py), resampling (resample.py),
PET/CT pairs (petct.py), RTSTRUCT (rtstruct_read.py), DICOM SEG (seg_read.py), any mask source (labels.py), and
atomic writing (atomic.py). See docs/IO.md."""
