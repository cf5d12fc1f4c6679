"""Hostile inputs and actions across every command: each is refused with one line (or is a documented accepted
input), without a traceback, and leaves every file of the sandbox exactly as it was (issue 12).

CASES is the table docs/RELIABILITY.md is generated from (scripts/reliability_table.py); a test checks the document
is up to date. Paths in a case are relative to a sandbox folder (SB) holding a phantom cohort, a case folder, a
results folder, a reviewed results folder, a batch output and malformed files built from Testing/Data.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from LNStagingLib.cli import main
from option_names import unknown_options

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "Testing" / "Data"
RAW_PET = DATA / "mirp_sts_raw_pet/STS_001/FDG_PET/image"


@dataclass(frozen=True)
class Case:
    """One hostile input or action: ``argv`` after 'lnstaging' (SB/ = the sandbox, DATA/ = Testing/Data), the words
    the one-line message must hold, the exit code, and the folder (in SB) the command runs in."""

    area: str
    name: str
    argv: tuple[str, ...]
    expect: str
    code: int = 2
    cwd: str = "work"


def C(area, name, argv, expect, code=2, cwd="work"):
    return Case(area, name, tuple(argv.split()), expect, code, cwd)


CASE_IN = "--ct SB/case/ct.nii.gz --pet SB/case/pet.nii.gz --models none"
PET12 = "SB/pet12"  # 12 slices of the MIRP raw PET series (Bq/ml, real tags)
STS_CT, STS_PET = "DATA/ibsi_validation_sts/dicom/STS_001/CT/image", "DATA/ibsi_validation_sts/dicom/STS_001/PET/image"

CASES = [
    # --- data loss: the reproductions of issue 12 and their neighbours --------------------------------------------
    C("output", "run --out the input case folder", f"run {CASE_IN} --out SB/case", "contains the input --ct"),
    C("output", "run --out the input case folder, --overwrite", f"run {CASE_IN} --out SB/case --overwrite",
      "never replaces an input"),
    C("output", "run on real DICOM --out the patient's DICOM folder",
      "run --ct DATA/ibsi_validation_sts/dicom/STS_001/CT/image --pet DATA/ibsi_validation_sts/dicom/STS_001/PET/image "
      "--models none --out DATA/ibsi_validation_sts/dicom/STS_001 --overwrite", "contains the input --ct"),
    C("output", "run --out . in the case folder", f"run {CASE_IN} --out .", "is the current working folder", cwd="case"),
    C("output", "run --out . in an empty working folder", f"run {CASE_IN} --out . --overwrite",
      "is the current working folder"),
    C("output", "run --out .. (contains the working folder)", f"run {CASE_IN} --out .. --overwrite",
      "contains the current working folder"),
    C("output", "run --out /", f"run {CASE_IN} --out / --overwrite", "file-system root"),
    C("output", "run --out ~ (home)", f"run {CASE_IN} --out ~ --overwrite", "home folder"),
    C("output", "run --out an input file", f"run {CASE_IN} --out SB/case/ct.nii.gz --overwrite", "is the input --ct"),
    C("output", "re-run into a reviewed results folder", f"run {CASE_IN} --out SB/reviewed", "holds a review"),
    C("output", "re-run into a reviewed results folder, --overwrite", f"run {CASE_IN} --out SB/reviewed --overwrite",
      "holds a review"),
    C("output", "re-run into a batch folder holding a reviewed case", f"run {CASE_IN} --out SB/batch --overwrite",
      "holds a review"),
    C("output", "re-run into results without --overwrite", f"run {CASE_IN} --out SB/results", "already exists"),
    C("output", "--overwrite on a folder lnstaging did not write", f"run {CASE_IN} --out SB/notes --overwrite",
      "not a folder lnstaging wrote"),
    C("output", "--overwrite on results holding an input (--candidates)",
      f"run {CASE_IN} --candidates SB/results/candidates.json --out SB/results --overwrite", "contains the input --candidates"),
    C("output", "run --out a file", f"run {CASE_IN} --out SB/case/notes.txt", "is a file, not a folder"),
    C("output", "run --out below a file", f"run {CASE_IN} --out SB/case/notes.txt/results", "is a file, not a folder"),
    C("output", "run --out '' (empty: the working folder)", f"run {CASE_IN} --out=", "is the current working folder"),
    C("output", "run-batch --out COHORT/cases", "run-batch --data SB/cohort --out SB/cohort/cases --models none",
      "contains the input case"),
    C("output", "run-batch --out COHORT", "run-batch --data SB/cohort --out SB/cohort --models none", "is the input --data"),
    C("output", "run-batch --out one input case", "run-batch --data SB/cohort --out SB/cohort/cases/case000 --models none",
      "is the input case case000"),
    C("output", "run-batch --out .", "run-batch --data SB/cohort --out . --models none", "current working folder"),
    C("output", "run-batch --out a file", "run-batch --data SB/cohort --out SB/case/notes.txt --models none",
      "is a file, not a folder"),
    C("output", "run-batch with a corrupt batch_summary.json",
      "run-batch --data SB/cohort --out SB/batch_corrupt --models none", "move it away"),
    C("output", "attention --out equal to --organs", "attention --organs SB/case/organs.nii.gz --out SB/case/organs.nii.gz",
      "is the input --organs"),
    C("output", "attention --out equal to --organs, --overwrite",
      "attention --organs SB/case/organs.nii.gz --out SB/case/organs.nii.gz --overwrite", "is the input --organs"),
    C("output", "attention --structures-out equal to --organs",
      "attention --organs SB/case/organs.nii.gz --out SB/work/a.nii.gz --structures-out SB/case/organs.nii.gz",
      "is the input --organs"),
    C("output", "attention --out equal to --structures-out",
      "attention --organs SB/case/organs.nii.gz --out SB/work/a.nii.gz --structures-out SB/work/a.nii.gz", "same file"),
    C("output", "attention --out an existing file", "attention --organs SB/case/organs.nii.gz --out SB/results/gtv_ln.nii.gz",
      "already exists"),
    C("output", "attention --out inside an input folder, --overwrite",
      "attention --organs SB/case/organs.nii.gz --reference SB/case --out SB/case/pet.nii.gz --overwrite",
      "is part of the input --reference"),
    C("output", "attention --out unknown extension", "attention --organs SB/case/organs.nii.gz --out SB/work/a.png",
      "unknown extension"),
    C("output", "attention --out a folder", "attention --organs SB/case/organs.nii.gz --out SB/work/sub.nii.gz",
      "is a folder"),
    C("output", "suv --out the PET file itself", "suv SB/case/pet.nii.gz --out SB/case/pet.nii.gz --overwrite",
      "is the input PET"),
    C("output", "suv --out the PET DICOM folder", f"suv {PET12} --out {PET12}", "is the input PET"),
    C("output", "suv --out unknown extension", f"suv {PET12} --out SB/work/suv.png", "unknown extension"),
    C("output", "suv --stats-out unknown extension", f"suv {PET12} --out SB/work/suv.nii.gz --stats-out SB/work/s.txt",
      "unknown extension"),
    C("output", "suv --out an existing file", f"suv {PET12} --out SB/results/gtv_ln.nii.gz", "already exists"),
    C("output", "priors fit --out dataset.json of the cohort",
      "priors fit --data SB/cohort --out SB/cohort/dataset.json --overwrite --quiet", "is part of the input --data"),
    C("output", "priors fit --out unknown extension", "priors fit --data SB/cohort --out SB/work/p.csv --quiet",
      "unknown extension"),
    C("output", "priors candidates --out the candidate list",
      "priors candidates --ct SB/case/ct.nii.gz --candidates SB/case/cands.csv --out SB/case/cands.csv --overwrite",
      "is the input --candidates"),
    C("output", "export --out a slice of the CT DICOM series, --overwrite",
      f"export rtstruct --ct-dicom DATA/ibsi_validation_sts/dicom/STS_001/CT/image --results SB/results "
      f"--out DATA/ibsi_validation_sts/dicom/STS_001/CT/image/FIRST_SLICE --overwrite --quiet",
      "is part of the input --ct-dicom"),
    C("output", "export --out the CT DICOM folder",
      f"export rtstruct --ct-dicom DATA/ibsi_validation_sts/dicom/STS_001/CT/image --results SB/results "
      f"--out DATA/ibsi_validation_sts/dicom/STS_001/CT/image --quiet", "is the input --ct-dicom"),
    C("output", "export --out an existing RTSTRUCT", "export rtstruct --ct-dicom DATA/ibsi_validation_sts/dicom/STS_001/CT/image --results SB/results "
      "--out SB/reviewed/export/RS.dcm --quiet", "already exists"),
    C("output", "export --out unknown extension", "export seg --ct-dicom DATA/ibsi_validation_sts/dicom/STS_001/CT/image --results SB/results "
      "--out SB/work/seg.nii --quiet", "unknown extension"),
    C("output", "phantom --out .", "phantom --seed 1 --out . --overwrite", "current working folder"),
    C("output", "phantom --overwrite a folder it did not write", "phantom --seed 1 --out SB/case --overwrite",
      "not a folder lnstaging wrote"),
    C("output", "phantom --out an existing cohort", "phantom --seed 1 --out SB/cohort", "already exists"),
    C("output", "phantom --overwrite a reviewed folder", "phantom --seed 1 --out SB/reviewed --overwrite", "holds a review"),
    C("output", "train seg --out the cohort", "train seg --data SB/cohort --out SB/cohort --config tiny",
      "is the input --data"),
    C("output", "train patient --out .", "train patient --data SB/cohort --out . --config tiny", "current working folder"),
    C("output", "train cls into a folder holding a trained model", "train cls --data SB/cohort --out SB/trained --config tiny",
      "already holds a trained model"),
    C("output", "evaluate seg --out unknown extension",
      "evaluate seg --data SB/cohort --model SB/trained/cls_model.pt --out SB/work/m.txt", "unknown extension"),
    C("output", "evaluate patient --out the cohort's dataset.json",
      "evaluate patient --data SB/cohort --model SB/trained/cls_model.pt --out SB/cohort/dataset.json --overwrite",
      "is part of the input --data"),
    C("output", "evaluate cls --out an existing file",
      "evaluate cls --data SB/cohort --model SB/trained/cls_model.pt --out SB/results/candidates.json", "already exists"),
    C("output", "demo --out .", "demo --out . --overwrite", "current working folder"),
    C("output", "demo --out a reviewed folder", "demo --out SB/reviewed --overwrite", "holds a review"),
    # --- options ---------------------------------------------------------------------------------------------------
    C("options", "run --threshold nan", f"run {CASE_IN} --threshold nan --out SB/work/r", "not a probability"),
    C("options", "run --threshold 1.5", f"run {CASE_IN} --threshold 1.5 --out SB/work/r", "not a probability"),
    C("options", "run --threshold -0.1", f"run {CASE_IN} --threshold -0.1 --out SB/work/r", "not a probability"),
    C("options", "run --threshold inf", f"run {CASE_IN} --threshold inf --out SB/work/r", "not a probability"),
    C("options", "run --threads -1", f"run {CASE_IN} --threads -1 --out SB/work/r", "not a thread count"),
    C("options", "run --threads 0", f"run {CASE_IN} --threads 0 --out SB/work/r", "not a thread count"),
    C("options", "run-batch --threshold nan", "run-batch --data SB/cohort --out SB/work/b --threshold nan --models none",
      "not a probability"),
    C("options", "run-batch --workers 0", "run-batch --data SB/cohort --out SB/work/b --workers 0 --models none",
      "not a process count"),
    C("options", "run-batch --threads -4", "run-batch --data SB/cohort --out SB/work/b --threads -4 --models none",
      "not a thread count"),
    C("options", "run-batch --cases of another cohort", "run-batch --data SB/cohort --out SB/work/b --cases nobody --models none",
      "are not in"),
    C("options", "evaluate seg --threshold nan", "evaluate seg --data SB/cohort --model SB/trained/cls_model.pt "
      "--threshold nan --out SB/work/m.json", "not a probability"),
    C("options", "evaluate patient --threshold 2", "evaluate patient --data SB/cohort --model SB/trained/cls_model.pt "
      "--threshold 2", "not a probability"),
    C("options", "predict-volumes --cross-fit 1", "predict-volumes --data SB/cohort --cross-fit 1 --out SB/work/v.csv",
      "at least 2 groups"),
    C("options", "predict-volumes --cross-fit with --cases", "predict-volumes --data SB/cohort --cross-fit 2 --cases "
      "case000 --out SB/work/v.csv", "do not combine"),
    C("options", "train patient --tel-size 64by8", "train patient --data SB/cohort --out SB/work/t --tel-size 64by8",
      "DIMxCODEWORDS"),
    C("options", "phantom --spacing nan 1 1", "phantom --seed 1 --spacing nan 1 1 --out SB/work/p", "positive millimetres"),
    C("options", "priors fit --percentile 60", "priors fit --data SB/cohort --percentile 60 --out SB/work/p.json --quiet",
      "not in [0, 50)"),
    C("options", "priors fit --percentile nan", "priors fit --data SB/cohort --percentile nan --out SB/work/p.json --quiet",
      "not in [0, 50)"),
    C("options", "demo --threads -2", "demo --threads -2 --out SB/work/d", "not a thread count"),
    C("options", "run --models not stage=file", f"run {CASE_IN.replace('--models none', '--models bogus')} --out SB/work/r",
      "is not stage=ID_OR_FILE"),
    C("options", "checkpoint with an odd config", "run --ct SB/case/ct.nii.gz --pet SB/case/pet.nii.gz "
      "--models seg=SB/odd_config.pt --out SB/work/r", "do not fit the network"),
    C("options", "checkpoint without weights", "run --ct SB/case/ct.nii.gz --pet SB/case/pet.nii.gz "
      "--models seg=SB/no_weights.pt --out SB/work/r", "not a complete LNStaging checkpoint"),
    C("options", "text file as checkpoint", "run --ct SB/case/ct.nii.gz --pet SB/case/pet.nii.gz "
      "--models seg=SB/case/notes.txt --out SB/work/r", "not a readable LNStaging checkpoint"),
    C("options", "models import of a file that is not the weights", "models import SB/case/notes.txt --id demo-seg",
      "is not the weights file"),
    C("options", "models import with an unknown id", "models import SB/case/notes.txt --id nobody", "is not in the catalogue"),
    C("options", "run with a stage-2 model given as the stage-1 model",
      f"run {CASE_IN.replace('--models none', '--models seg=demo-cls')} --out SB/work/r", "model is needed here"),
    # --- images ------------------------------------------------------------------------------------------------------
    C("images", "CT with a gzip check-sum (CRC) failure", "run --ct SB/bad/ct_crc.nii.gz --pet SB/case/pet.nii.gz "
      "--models none --out SB/work/r", "check sum failed"),
    C("images", "truncated uncompressed NIfTI PET", "run --ct SB/case/ct.nii.gz --pet SB/bad/pet_short.nii "
      "--models none --out SB/work/r", "is truncated"),
    C("images", "truncated gzip CT", "run --ct SB/bad/ct_cut.nii.gz --pet SB/case/pet.nii.gz --models none --out SB/work/r",
      "truncated or corrupt"),
    C("images", "gzip NRRD CT with damaged voxel data (ITK returns garbage)", "run --ct SB/bad/ct_flip.nrrd --pet "
      "SB/case/pet.nii.gz --models none --out SB/work/r", "fail their check"),
    C("images", "compressed MHA PET cut short", "run --ct SB/case/ct.nii.gz --pet SB/bad/pet_cut.mha --models none "
      "--out SB/work/r", "is truncated"),
    C("images", "negative voxel size in the NIfTI header", "run --ct SB/bad/ct_negative_spacing.nii --pet "
      "SB/case/pet.nii.gz --models none --out SB/work/r", "negative or undefined voxel size"),
    C("images", "sheared (non-orthogonal) orientation", "run --ct SB/bad/ct_sheared.nii --pet SB/case/pet.nii.gz "
      "--models none --out SB/work/r", "not orthogonal"),
    C("images", "non-orthonormal direction in an MHA", "run --ct SB/bad/ct_sheared.mha --pet SB/case/pet.nii.gz "
      "--models none --out SB/work/r", "not orthonormal"),
    C("images", "NaN voxels in the PET", "run --ct SB/case/ct.nii.gz --pet SB/bad/pet_nan.nii.gz --models none "
      "--out SB/work/r", "NaN or infinite"),
    C("images", "infinite voxels in the CT", "run --ct SB/bad/ct_inf.nii.gz --pet SB/case/pet.nii.gz --models none "
      "--out SB/work/r", "NaN or infinite"),
    C("images", "a label map given as the PET", "run --ct SB/case/ct.nii.gz --pet SB/case/organs.nii.gz --models none "
      "--out SB/work/r", "looks like a label map"),
    C("images", "a CT DICOM folder given as the tumour", f"run {CASE_IN} --tumor DATA/ibsi_validation_sts/dicom/STS_001/CT/image --out SB/work/r",
      "not a label map"),
    C("images", "the CT given as the tumour", f"run {CASE_IN} --tumor SB/case/ct.nii.gz --out SB/work/r",
      "not a label map"),
    C("images", "an empty tumour mask", f"run {CASE_IN} --tumor SB/bad/empty_mask.nii.gz --out SB/work/r", "is empty"),
    C("images", "missing CT", "run --ct SB/case/nothing.nii.gz --pet SB/case/pet.nii.gz --models none --out SB/work/r",
      "does not exist"),
    C("images", "a text file as the CT", "run --ct SB/case/notes.txt --pet SB/case/pet.nii.gz --models none --out SB/work/r",
      "not an image"),
    C("images", "label map given as the PET to suv", "suv SB/case/organs.nii.gz --out SB/work/s.nii.gz",
      "looks like a label map"),
    C("images", "corrupt gzip PET to suv", "suv SB/bad/ct_crc.nii.gz --out SB/work/s.nii.gz", "check sum failed"),
    C("images", "report of a run with another patient's CT (issue 26)",
      "report SB/results --ct DATA/ibsi_validation_sts/nifti/STS_001/CT_image.nii.gz --out SB/work/r.html",
      "--allow-other-images"),
    C("images", "review of a run with another patient's PET (issue 26)",
      "review SB/results --pet DATA/ibsi_validation_sts/nifti/STS_001/PET_image.nii.gz --port 0", "is not the PET"),
    # --- candidates --------------------------------------------------------------------------------------------------
    C("candidates", "candidate radius NaN", f"run {CASE_IN} --candidates SB/bad/radius_nan.csv --out SB/work/r",
      "not a lymph node radius"),
    C("candidates", "candidate radius negative", f"run {CASE_IN} --candidates SB/bad/radius_negative.csv --out SB/work/r",
      "not a lymph node radius"),
    C("candidates", "candidate radius larger than the body", f"run {CASE_IN} --candidates SB/bad/radius_huge.csv "
      "--out SB/work/r", "not a lymph node radius"),
    C("candidates", "candidate coordinate NaN", f"run {CASE_IN} --candidates SB/bad/xyz_nan.csv --out SB/work/r",
      "not all numbers"),
    C("candidates", "candidates --site outside the four nodal regions",
      "candidates --pet SB/case/pet.nii.gz --site thigh --out SB/work/c.csv", "give one of head-neck"),
    C("candidates", "candidates --out beside another list's other_findings.csv",
      "candidates --pet SB/case/pet.nii.gz --out SB/bad/c.csv", "already exists beside --out"),
    C("candidates", "candidate file without x,y,z", f"run {CASE_IN} --candidates SB/case/notes.txt --out SB/work/r",
      "cannot be read"),
    C("candidates", "candidate outside the CT", f"run {CASE_IN} --candidates SB/bad/outside.csv --out SB/work/r",
      "outside the CT"),
    # --- PET-only runs (issue 26: 'run --pet' without --ct; SB/pet_only is such a run on an SUV image file) ----------
    C("pet-only", "export rtstruct of a PET-only run",
      f"export rtstruct --results SB/pet_only --ct-dicom {STS_CT} --out SB/work/rs.dcm", "needs the planning CT"),
    C("pet-only", "export seg of a PET-only run on an SUV image file", "export seg --results SB/pet_only "
      "--out SB/work/seg.dcm", "not a DICOM series"),
    C("pet-only", "export seg of a PET-only run onto a CT", f"export seg --results SB/pet_only --ct-dicom {STS_CT} "
      "--out SB/work/seg.dcm", "leave --ct-dicom out"),
    C("pet-only", "export of a PET/CT run without --ct-dicom", "export rtstruct --results SB/results --out SB/work/rs.dcm",
      "--ct-dicom CT_DICOM_FOLDER"),
    C("pet-only", "report of a PET-only run with a CT", "report SB/pet_only --ct SB/case/ct.nii.gz --out SB/work/r.html",
      "was run without a CT (PET-only)"),
    C("pet-only", "review of a PET-only run with a CT", "review SB/pet_only --ct SB/case/ct.nii.gz --port 0",
      "was run without a CT (PET-only)"),
    C("pet-only", "run --ct-series-uid without --ct", "run --pet SB/case/pet.nii.gz --ct-series-uid 1.2.3 --models none "
      "--out SB/work/r", "give --ct too"),
    C("pet-only", "PET-only run with a candidate outside the PET", "run --pet SB/case/pet.nii.gz --candidates "
      "SB/bad/outside.csv --models none --out SB/work/r", "lies outside the PET"),
    # --- dataset import (issue 30) ------------------------------------------------------------------------------------
    C("dataset", "dataset import of a folder without DICOM", "dataset import --dicom SB/case --out SB/work/c",
      "holds no CT, PET, RTSTRUCT or SEG files"),
    C("dataset", "dataset import of a PET without CT (nothing pairable: nothing written)",
      "dataset import --dicom SB/pet12 --out SB/work/c", "no patient of"),
    C("output", "dataset import --out inside the export", "dataset import --dicom SB/pet12 --out SB/pet12/cohort",
      "inside the export"),
    C("output", "dataset import --out the export itself", "dataset import --dicom SB/pet12 --out SB/pet12",
      "is the input --dicom"),
    C("output", "dataset import --out a cohort it did not write", "dataset import --dicom SB/pet12 --out SB/cohort",
      "not a cohort `lnstaging dataset import` wrote"),
    C("dataset", "dataset import --roi-map not JSON",
      "dataset import --dicom SB/pet12 --out SB/work/c --roi-map SB/case/notes.txt", "not valid JSON"),
    C("dataset", "phantom --dicom with --look-alikes spread",
      "phantom --seed 1 --dicom --look-alikes spread --out SB/work/p", "drop it"),
    # --- SUV (real MIRP PET tags) ----------------------------------------------------------------------------------------
    C("suv", "half-life NaN", f"suv {PET12} --half-life-s nan --out SB/work/s.nii.gz", "not a positive number"),
    C("suv", "half-life zero", f"suv {PET12} --half-life-s 0 --out SB/work/s.nii.gz", "not a positive number"),
    C("suv", "half-life negative", f"suv {PET12} --half-life-s -6586 --out SB/work/s.nii.gz", "not a positive number"),
    C("suv", "half-life given in hours", f"suv {PET12} --half-life-s 1.83 --out SB/work/s.nii.gz", "implausible"),
    C("suv", "weight NaN", f"suv {PET12} --weight-kg nan --out SB/work/s.nii.gz", "not a positive number"),
    C("suv", "weight zero", f"suv {PET12} --weight-kg 0 --out SB/work/s.nii.gz", "not a positive number"),
    C("suv", "weight in grams", f"suv {PET12} --weight-kg 71000 --out SB/work/s.nii.gz", "implausible"),
    C("suv", "dose negative", f"suv {PET12} --dose-bq=-3.7e8 --out SB/work/s.nii.gz", "not a positive number"),
    C("suv", "dose infinite", f"suv {PET12} --dose-bq inf --out SB/work/s.nii.gz", "not a positive number"),
    C("suv", "dose in MBq", f"suv {PET12} --dose-bq 370 --out SB/work/s.nii.gz", "MBq"),
    C("suv", "injection 30 min after the scan", f"suv {PET12} --injection-time AFTER30 --out SB/work/s.nii.gz",
      "is after the scan start"),
    C("suv", "injection 10.6 h after the scan, same day (was: the day before, SUV x55)",
      f"suv {PET12} --injection-time AFTER636 --out SB/work/s.nii.gz", "is after the scan start"),
    C("suv", "injection 10.6 h before the scan", f"suv {PET12} --injection-time BEFORE636 --out SB/work/s.nii.gz",
      "outside the plausible 10 min to 5 h"),
    C("suv", "uptake 6 h", f"suv {PET12} --injection-time BEFORE360 --out SB/work/s.nii.gz", "--accept-timing"),
    C("suv", "uptake 5 min", f"suv {PET12} --injection-time BEFORE5 --out SB/work/s.nii.gz", "--accept-timing"),
    C("suv", "uptake 6 h confirmed with --accept-timing (accepted)",
      f"suv {PET12} --injection-time BEFORE360 --accept-timing --out SB/work/s.nii.gz", "", code=0),
    C("suv", "injection after the scan even with --accept-timing",
      f"suv {PET12} --injection-time AFTER30 --accept-timing --out SB/work/s.nii.gz", "is after the scan start"),
    C("suv", "injection time not HHMMSS", f"suv {PET12} --injection-time 25h --out SB/work/s.nii.gz", "not a time of day"),
    C("suv", "injection time 24:00:00", f"suv {PET12} --injection-time 240000 --out SB/work/s.nii.gz",
      "not a time of day"),
    C("suv", "injection time written 10:35 (45 min before the scan; accepted)",
      f"suv {PET12} --injection-time 10:35 --out SB/work/s.nii.gz", "", code=0),
    # --- symbolic link loops (issue 25 item 16; SB/loop/a -> b -> a) ----------------------------------------------
    C("links", "--ct a symbolic link loop", f"run --ct SB/loop/a --pet {STS_PET} --models none --out SB/work/r",
      "loop/a goes through a symbolic link loop"),
    C("links", "--out inside a symbolic link loop", f"run --ct {STS_CT} --pet {STS_PET} --models none "
      "--out SB/loop/a/results", "loop/a/results goes through a symbolic link loop"),
    C("links", "run-batch --data a symbolic link loop", "run-batch --data SB/loop/a --out SB/work/batch",
      "loop/a goes through a symbolic link loop"),
    C("links", "priors fit --data a symbolic link loop", "priors fit --data SB/loop/b --out SB/work/p.json",
      "loop/b goes through a symbolic link loop"),
    C("links", "suv --out a symbolic link loop", f"suv {PET12} --out SB/loop/a", "loop/a goes through a symbolic link loop"),
    C("links", "report --ct a symbolic link loop", "report SB/results --ct SB/loop/a",
      "loop/a goes through a symbolic link loop"),
    C("links", "report --data a symbolic link loop (not silently ignored)", "report SB/results --data SB/loop/b",
      "loop/b goes through a symbolic link loop"),
    C("links", "review --ct a symbolic link loop (refused before the server starts)",
      "review SB/results --ct SB/loop/a --port 0", "loop/a goes through a symbolic link loop"),
    # --- real DICOM changed as scanners and archives change it (issue 25) --------------------------------------------
    C("geometry", "PET with a 15 degree gantry tilt (accepted: resampled onto a regular axial grid that keeps every "
      "slice at its recorded position; said in one line and in provenance.json)",
      "suv SB/dicom/tilted_pet --out SB/work/s.nii.gz", "", code=0),
    C("geometry", "PET slice spacing drifting 8 % after slice 29, each gap within 10 % (accepted: resampled, the "
      "warning names the largest displacement in mm)", "suv SB/dicom/pet_drift --out SB/work/s.nii.gz", "", code=0),
    C("geometry", "multi-frame (legacy-converted) PET with a missing frame",
      "suv SB/dicom/pet_mf_missing --out SB/work/s.nii.gz", "a slice file is probably missing"),
    C("suv", "PET acquired across midnight, AcquisitionDate empty (accepted: uptake 45 min, not 61)",
      "suv SB/dicom/pet_midnight --out SB/work/s.nii.gz", "", code=0),
    C("suv", "injection 674 days before the scan, with --accept-timing",
      "candidates --pet SB/dicom/pet_days --accept-timing --out SB/work/c.csv", "the dates (an uptake of 674.0 days)"),
    C("images", "PET with no positive uptake (all zero)", "candidates --pet SB/dicom/pet_zero --out SB/work/c.csv",
      "has no positive uptake"),
    C("masks", "two RTSTRUCT ROIs with one name as --tumor-roi",
      "candidates --pet DATA/mirp_sts_raw_pet/STS_001/FDG_PET/image --tumor SB/dicom/RS_duplicate.dcm --tumor-roi "
      "GTV_Mass --out SB/work/c.csv", "choose one by number with --tumor-roi NUMBER"),
    C("masks", "NaN in RTSTRUCT ContourData", "candidates --pet DATA/mirp_sts_raw_pet/STS_001/FDG_PET/image --tumor "
      "SB/dicom/RS_nan.dcm --tumor-roi GTV_Mass --out SB/work/c.csv", "coordinates that are not numbers"),
    C("masks", "fractional DICOM SEG as --tumor (accepted: a voxel is in a segment from fraction 0.5 on)",
      "candidates --pet DATA/mirp_qin_headneck_0139/derived/pet_suv_headneck_crop.nii.gz --tumor "
      "SB/dicom/seg_fractional.dcm --tumor-segment 1 --out SB/work/c.csv", "", code=0),
    C("options", "run --half-life-s nan", "run --ct DATA/ibsi_validation_sts/dicom/STS_001/CT/image --pet SB/pet12 "
      "--half-life-s nan --models none --out SB/work/r", "not a positive number"),
    C("options", "candidates --half-life-s given in hours", "candidates --pet SB/pet12 --half-life-s 1.83 "
      "--out SB/work/c.csv", "implausible"),
    C("options", "candidates --ct of another patient (another frame of reference)",
      "candidates --pet DATA/ibsi_validation_sts/dicom/STS_001/PET/image --ct "
      "DATA/ibsi_validation_sts/dicom/STS_002/CT/image --out SB/work/c.csv", "different frames of reference"),
    C("options", "run --ct of another patient (run has no --registration)",
      "run --ct DATA/ibsi_validation_sts/dicom/STS_002/CT/image --pet DATA/ibsi_validation_sts/dicom/STS_001/PET/image "
      "--models none --out SB/work/r", "give the CT acquired with this PET"),
    C("options", "candidates on a folder with two PET series", "candidates --pet SB/dicom/two_pets --out SB/work/c.csv",
      "(--pet-series-uid UID)"),
    C("options", "suv on a folder with two PET series", "suv SB/dicom/two_pets --out SB/work/s.nii.gz",
      "(--series-uid UID)"),
    C("options", "run --organs without names, --organ-mapping slicer (names the option run has)",
      f"run {CASE_IN} --organs SB/case/organs.nii.gz --organ-mapping slicer --out SB/work/r",
      "choose --organ-mapping pdac20/totalsegmentator"),
    C("options", "attention --organs without names, --mapping slicer",
      "attention --organs SB/case/organs.nii.gz --mapping slicer --out SB/work/a.nii.gz",
      "choose --mapping pdac20/totalsegmentator"),
    C("options", "candidates --organs as an RTSTRUCT (the message names no option candidates lacks)",
      "candidates --pet SB/pet12 --organs DATA/mirp_sts_raw_pet/STS_001/FDG_PET/mask/1-1.dcm --out SB/work/c.csv",
      "or the organs as a label map"),
    C("memory", "a CT whose header says 4000 x 4000 x 4000 voxels", "run --ct SB/dicom/ct_huge.nii.gz --pet "
      "DATA/ibsi_validation_sts/nifti/STS_001/PET_image.nii.gz --models none --out SB/work/r", "GB of memory"),
]


def _scan_time() -> "datetime":
    from LNStagingLib.io.suv import scan_start

    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(RAW_PET.iterdir())[100:112]]
    return scan_start(headers)


def _injection_time(token: str) -> str:
    """AFTERn / BEFOREn: n minutes after / before the scan start of SB/pet12, as HHMMSS."""
    import datetime as dt

    scan = _scan_time()
    minutes = int(token.lstrip("AFTERBO"))
    when = scan + dt.timedelta(minutes=minutes) if token.startswith("AFTER") else scan - dt.timedelta(minutes=minutes)
    return when.strftime("%H%M%S")


def build_sandbox(root: Path) -> Path:
    """Every file the cases read or must not lose (a few MB)."""
    from LNStagingLib.models.catalogue import Catalogue
    from LNStagingLib.models.checkpoint import FORMAT
    from LNStagingLib.phantom.cohort import write_cohort
    from LNStagingLib.pipeline import CaseInputs, run_to_folder
    import torch

    root.mkdir(parents=True)
    (root / "work").mkdir()
    (root / "work" / "sub.nii.gz").mkdir()
    cohort = write_cohort(root / "cohort", seed=3, cases=2, size="48x48x32", folds=1, test_fraction=0.5)
    case = root / "case"
    shutil.copytree(cohort / "cases" / "case000", case)
    (case / "notes.txt").write_text("the oncologist's notes, not an image\n")
    ct = sitk.ReadImage(str(case / "ct.nii.gz"))
    centre = ct.TransformContinuousIndexToPhysicalPoint([s / 2 for s in ct.GetSize()])
    (case / "cands.csv").write_text("id,x,y,z\n1,{},{},{}\n".format(*centre))
    run_to_folder(CaseInputs(ct=case / "ct.nii.gz", pet=case / "pet.nii.gz", candidates=case / "cands.csv"),
                  root / "results")
    run_to_folder(CaseInputs(ct=None, pet=case / "pet.nii.gz"), root / "pet_only")  # PET-only (issue 26)
    shutil.copytree(root / "results", root / "reviewed")
    (root / "reviewed" / "review").mkdir()
    (root / "reviewed" / "review" / "review.json").write_text(json.dumps({"decisions": {"1": "accepted"}}))
    (root / "reviewed" / "export").mkdir()
    (root / "reviewed" / "export" / "RS.dcm").write_bytes(b"corrected contours")
    shutil.copytree(root / "results", root / "batch" / "case000")
    shutil.copytree(root / "reviewed" / "review", root / "batch" / "case000" / "review")
    (root / "batch_corrupt").mkdir()
    (root / "batch_corrupt" / "batch_summary.json").write_text('{"finished": ["case000"')
    (root / "notes").mkdir()
    (root / "notes" / "letter.txt").write_text("not results\n")
    (root / "trained").mkdir()
    (root / "trained" / "cls_model.pt").write_bytes(b"weights of a week of training")
    (root / "loop").mkdir()
    (root / "loop" / "a").symlink_to("b")  # a symbolic link loop: a -> b -> a
    (root / "loop" / "b").symlink_to("a")
    pet12 = root / "pet12"
    pet12.mkdir()
    for f in sorted(RAW_PET.iterdir())[100:112]:
        shutil.copy(f, pet12 / f.name)

    bad = root / "bad"
    bad.mkdir()
    data = bytearray((case / "ct.nii.gz").read_bytes())
    data[-6] ^= 0xFF  # a flipped bit in the gzip trailer's CRC: the data decompress, the check sum fails
    (bad / "ct_crc.nii.gz").write_bytes(bytes(data))
    (bad / "ct_cut.nii.gz").write_bytes((case / "ct.nii.gz").read_bytes()[:300])
    pet = sitk.ReadImage(str(case / "pet.nii.gz"))
    sitk.WriteImage(pet, str(bad / "pet_full.nii"))
    raw = (bad / "pet_full.nii").read_bytes()
    (bad / "pet_short.nii").write_bytes(raw[: len(raw) - 4096])
    (bad / "pet_full.nii").unlink()
    sitk.WriteImage(ct, str(bad / "ct_flip.nrrd"), True)
    data = bytearray((bad / "ct_flip.nrrd").read_bytes())
    data[-200] ^= 0xFF
    (bad / "ct_flip.nrrd").write_bytes(bytes(data))
    sitk.WriteImage(pet, str(bad / "pet_cut.mha"), True)
    data = (bad / "pet_cut.mha").read_bytes()
    (bad / "pet_cut.mha").write_bytes(data[: len(data) - 300])
    sitk.WriteImage(ct, str(bad / "ct_negative_spacing.nii"))
    header = bytearray((bad / "ct_negative_spacing.nii").read_bytes())
    header[80:84] = np.float32(-abs(ct.GetSpacing()[0])).tobytes()  # pixdim[1]
    (bad / "ct_negative_spacing.nii").write_bytes(bytes(header))
    sitk.WriteImage(ct, str(bad / "ct_sheared.nii"))
    header = bytearray((bad / "ct_sheared.nii").read_bytes())
    srow_x = np.frombuffer(bytes(header[280:296]), "<f4").copy()
    srow_x[1] = 0.5 * max(ct.GetSpacing())  # x depends on j: a sheared grid
    header[280:296] = srow_x.tobytes()
    (bad / "ct_sheared.nii").write_bytes(bytes(header))
    text = "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n" \
           "TransformMatrix = 1 0 0 0.5 1 0 0 0 1\nOffset = 0 0 0\nElementSpacing = 1 1 1\nDimSize = 4 4 4\n" \
           "ElementType = MET_SHORT\nElementDataFile = LOCAL\n"
    (bad / "ct_sheared.mha").write_bytes(text.encode() + np.zeros(64, "<i2").tobytes())
    nan = sitk.Cast(pet, sitk.sitkFloat32)
    nan[5, 5, 5] = float("nan")
    sitk.WriteImage(nan, str(bad / "pet_nan.nii.gz"))
    inf = sitk.Cast(ct, sitk.sitkFloat32)
    inf[5, 5, 5] = float("inf")
    sitk.WriteImage(inf, str(bad / "ct_inf.nii.gz"))
    empty = sitk.Image(ct.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(ct)
    sitk.WriteImage(empty, str(bad / "empty_mask.nii.gz"))
    x, y, z = centre
    for name, row in {"radius_nan": f"{x},{y},{z},nan", "radius_negative": f"{x},{y},{z},-4",
                      "radius_huge": f"{x},{y},{z},900", "xyz_nan": f"nan,{y},{z},5",
                      "outside": f"{x},{y},{z + 5000},5"}.items():
        (bad / f"{name}.csv").write_text(f"x,y,z,radius_mm\n{row}\n")
    (bad / "other_findings.csv").write_text(f"x,y,z,reason\n{x},{y},{z},primary\n")  # another list's other findings

    catalogue = Catalogue.read()
    payload = torch.load(catalogue.resolve(catalogue.default_id("seg"), "seg"), weights_only=True)
    odd = copy.deepcopy(payload)
    odd["config"] = {k: (-3 if isinstance(v, int) and not isinstance(v, bool) else v) for k, v in odd["config"].items()}
    torch.save(odd, root / "odd_config.pt")
    torch.save({"format": FORMAT, "model": payload["model"], "config": payload["config"]}, root / "no_weights.pt")
    build_dicom_variants(root / "dicom", pet12)
    return root


def build_dicom_variants(root: Path, pet12: Path) -> None:
    """Real DICOM changed the way scanners, archives and planning systems change it (issue 25; built with the
    helpers of the test_io_* modules that check each variant's result in detail)."""
    import datetime as dt

    import highdicom as hd
    from test_io_hostile_dicom import _with_names, fractional_seg
    from test_io_slice_geometry import drift, legacy_multiframe, rewrite, tilt
    from test_io_suv import _across_midnight

    ibsi_pet = DATA / "ibsi_validation_sts/dicom/STS_001/PET/image"
    root.mkdir()
    rewrite(ibsi_pet, root / "tilted_pet", tilt(15.0))
    rewrite(ibsi_pet, root / "pet_drift", drift(29, 1.08))
    (root / "pet_mf_missing").mkdir()
    files = sorted(ibsi_pet.iterdir())
    legacy_multiframe(files[:20] + files[21:], "PT").save_as(root / "pet_mf_missing" / "mf.dcm")
    _across_midnight(pet12, root / "pet_midnight")
    (root / "pet_zero").mkdir()
    (root / "pet_days").mkdir()
    (root / "two_pets").mkdir()
    other_series = hd.UID()
    for path in sorted(pet12.iterdir()):
        ds = pydicom.dcmread(path)
        shutil.copy(path, root / "two_pets" / path.name)
        ds.SeriesInstanceUID, ds.SOPInstanceUID = other_series, hd.UID()
        ds.save_as(root / "two_pets" / f"other_{path.name}")
        ds = pydicom.dcmread(path)
        ds.PixelData = bytes(len(ds.PixelData))
        ds.save_as(root / "pet_zero" / path.name)
        ds = pydicom.dcmread(path)
        scan = dt.datetime.strptime(ds.SeriesDate + ds.SeriesTime.split(".")[0], "%Y%m%d%H%M%S")
        item = ds.RadiopharmaceuticalInformationSequence[0]
        item.RadiopharmaceuticalStartDateTime = (scan - dt.timedelta(days=674)).strftime("%Y%m%d%H%M%S")
        ds.save_as(root / "pet_days" / path.name)
    (root / "rs").mkdir()
    _with_names(root / "rs", {2: "GTV_Mass"}).rename(root / "RS_duplicate.dcm")
    ds = pydicom.dcmread(DATA / "mirp_sts_raw_pet/STS_001/FDG_PET/mask/1-1.dcm")
    data = list(ds.ROIContourSequence[0].ContourSequence[5].ContourData)
    data[4] = "NaN"
    ds.ROIContourSequence[0].ContourSequence[5].ContourData = data
    ds.save_as(root / "RS_nan.dcm")
    (root / "rs").rmdir()
    fractional_seg(root / "seg_fractional.dcm")
    raw = bytearray(gzip.decompress((DATA / "ibsi_validation_sts/nifti/STS_001/CT_image.nii.gz").read_bytes()))
    raw[42:48] = np.array([4000, 4000, 4000], "<i2").tobytes()  # the header's dim[1..3]: 64e9 voxels
    (root / "ct_huge.nii.gz").write_bytes(gzip.compress(bytes(raw)))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return build_sandbox(tmp_path_factory.mktemp("reliability") / "SB")


def snapshot(root: Path) -> dict:
    """Every file and folder under root with its content hash: what 'nothing was written or lost' compares."""
    state = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        state[relative] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
    return state


def expand(argv, sandbox: Path) -> list[str]:
    out = []
    for arg in argv:
        arg = arg.replace("SB/", f"{sandbox}/").replace("DATA/", f"{DATA}/")
        if arg.startswith(("AFTER", "BEFORE")):
            arg = _injection_time(arg)
        if arg.endswith("/FIRST_SLICE"):
            arg = str(sorted(Path(arg).parent.iterdir())[0])
        out.append(arg)
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(case, pristine, tmp_path, monkeypatch, capsys):
    sandbox = tmp_path / "SB"
    shutil.copytree(pristine, sandbox, symlinks=True)
    before = snapshot(sandbox)
    real = DATA  # every real file a case names (DATA/...) must be left as it was
    data_before = snapshot(real) if "DATA/" in " ".join(case.argv) else None
    monkeypatch.chdir(sandbox / case.cwd)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir(exist_ok=True)
    code = main(expand(case.argv, sandbox))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert code == case.code, captured.err
    if case.code == 0:
        return
    errors = [line for line in captured.err.splitlines() if line.strip()]
    assert len(errors) == 1, captured.err
    assert errors[0].startswith("lnstaging ") and ": error: " in errors[0]
    assert case.expect in errors[0], errors[0]
    assert not unknown_options(list(case.argv), errors[0]), f"the message names options {case.argv[0]} lacks"
    assert snapshot(sandbox) == before, "a refused command changed files"
    if data_before is not None:
        assert snapshot(real) == data_before


def test_enough_cases_and_every_command():
    assert len(CASES) >= 80
    commands = {c.argv[0] for c in CASES}
    assert {"run", "run-batch", "attention", "suv", "phantom", "priors", "train", "evaluate", "export", "demo"} <= commands


def test_reliability_document_is_up_to_date():
    pytest.importorskip("trame_slicer")  # the review server's rows live in test_web_security, which needs it
    from test_web_security import REVIEW_HOSTILE_CASES

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from reliability_table import render
    finally:
        sys.path.pop(0)
    document = (ROOT / "docs" / "RELIABILITY.md").read_text()
    assert document == render(CASES, REVIEW_HOSTILE_CASES), \
        "docs/RELIABILITY.md is out of date: run python scripts/reliability_table.py"
    assert len(CASES) + len(REVIEW_HOSTILE_CASES) >= 80
