"""Synthetic PET/CT patients with known lymph-node ground truth, in the cohort format of docs/DATASET.md."""

from .case import SIZES, PhantomCase, generate_case
from .cohort import write_case, write_cohort

__all__ = ["SIZES", "PhantomCase", "generate_case", "write_case", "write_cohort"]
