"""LNStagingLib: lymph node detection, classification and contouring on PET/CT.

Research software. Not for clinical use until validated.
"""

__version__ = "0.1.0"

NOT_FOR_CLINICAL_USE = "Research software: not for clinical use until validated."
