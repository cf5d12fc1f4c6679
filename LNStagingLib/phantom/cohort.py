"""Write phantom patients as a cohort folder in the format of docs/DATASET.md."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..dataset.format import (
    CASES_DIR, PDAC20_LABELS, assign_splits, write_candidates, write_description,
)
from ..io.atomic import atomic_directory
from ..progress import Progress
from .case import PhantomCase, generate_case

DIRECTION_CYCLE = ("identity", "oblique", "ras")


def case_seed(seed: int, index: int) -> int:
    """The generator seed of case ``index`` of cohort ``seed`` (recorded in patient.json)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def write_case(case: PhantomCase, case_dir: Path, compression_level: int = 1) -> None:
    """Images as compressed NIfTI, candidates.csv and patient.json into an existing folder."""
    case_dir = Path(case_dir)
    case_dir.mkdir(parents=True, exist_ok=True)
    for key, image in case.images().items():
        sitk.WriteImage(image, str(case_dir / f"{key}.nii.gz"), True, compression_level)
    write_candidates(case_dir / "candidates.csv", case.candidates)
    (case_dir / "patient.json").write_text(json.dumps({"metastasis": case.metastasis, **case.info}, indent=1) + "\n")


def write_cohort(out_dir, seed: int, cases: int = 10, size="small", folds: int = 5, test_fraction: float = 0.2,
                 direction: str = "identity", spacing=None, relations: str = "default", look_alikes: str = "near",
                 progress: Progress | None = None, overwrite: bool = False) -> Path:
    """Generate ``cases`` phantom patients into ``out_dir`` (complete or absent: written atomically).

    ``overwrite`` replaces a cohort folder lnstaging wrote (one holding dataset.json and no review).
    ``direction='mixed'`` cycles identity / oblique / ras over the cases so consumers meet every orientation.
    """
    if cases < 1:
        raise ValueError("cases must be at least 1")
    progress = progress or Progress()
    case_ids = [f"case{k:03d}" for k in range(cases)]
    with atomic_directory(out_dir, replace_marker="dataset.json" if overwrite else None) as tmp:
        for k, case_id in enumerate(case_ids):
            progress.step(k / cases, f"case {k + 1}/{cases}")
            case_direction = DIRECTION_CYCLE[k % 3] if direction == "mixed" else direction
            case = generate_case(case_seed(seed, k), size=size, spacing=spacing, direction=case_direction,
                                 relations=relations, look_alikes=look_alikes, progress=progress.sub(k / cases, (k + 0.8) / cases))
            case.info["direction"] = case_direction
            write_case(case, tmp / CASES_DIR / case_id)
        fold_map, test = assign_splits(case_ids, folds=folds, test_fraction=test_fraction, seed=seed)
        write_description(tmp, name=f"phantom-seed{seed}", case_ids=case_ids, organ_labels=PDAC20_LABELS,
                          organ_mapping="pdac20", folds=fold_map, test=test,
                          description=f"Synthetic PET/CT phantoms: lnstaging phantom --seed {seed} --cases {cases} "
                                      f"--size {size if isinstance(size, str) else 'x'.join(map(str, size))} "
                                      f"--direction {direction}"
                                      f"{'' if relations == 'default' else ' --relations ' + relations}"
                                      f"{'' if look_alikes == 'near' else ' --look-alikes ' + look_alikes}. "
                                      "Not patient data.")
        progress.step(1.0, "done")
    return Path(out_dir)
