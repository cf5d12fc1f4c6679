"""A clinical DICOM export (CT, PET, RTSTRUCT/SEG) to a cohort folder: ``lnstaging dataset import``."""
