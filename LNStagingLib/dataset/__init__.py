"""The cohort folder format (docs/DATASET.md) and its checker."""

from .format import CaseFiles, Dataset, read_dataset

__all__ = ["CaseFiles", "Dataset", "read_dataset"]
