#!/usr/bin/env python
"""Write docs/RESULTS.md from the evaluation JSONs of scripts/train_demo_models.py (nothing is typed by hand).

  python scripts/results_tables.py --work /path/to/work [--notes NOTES.md]
  python scripts/results_tables.py --work /path/to/work --table mask   (one table, replaced in place in --out;
      also mask-seed2, mask-comparisons, sphere-seed1, sphere-seed2, table1, strong)

Seed 1 runs are read from WORK, seed 2 runs from WORK/seed2 (train_demo_models.py --work WORK/seed2 --cohorts WORK
--seed 2 --replicates). A comparison (COMPARISONS) is stated as a conclusion only when both seeds' differences have
the same sign and both 95% intervals exclude 0; otherwise it reads "not supported". A run that is missing reads
"not run" (a partly finished work folder gives a partial document, never a crash or an invented figure).
Sections of the existing output whose heading starts with "## Real" (figures on real data, written by hand) are
kept verbatim at the end.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from train_demo_models import COHORT_ARGS, COHORTS, EXTERNAL, REPLICATED, experiments  # noqa: E402

sys.path.insert(0, str(ROOT))
from LNStagingLib.evaluation.coverage import FEW_NEGATIVES, auc_interval_coverage  # noqa: E402
from LNStagingLib.evaluation.froc import candidate_detections, paired_mfroc_difference  # noqa: E402

CLS_ROWS = (("CNN (CT)", "cls_cnn_ct"), ("+PET", "cls_cnn_pet"), ("+spatial prior", "cls_cnn_prior"),
            ("+GNNb", "cls_gnnb"), ("+GNNp", "cls_gnnp"),
            ("control: +spatial prior, 20 epochs more", "cls_cnn_prior_more"))
STRONG_ROWS = (("CNN + spatial prior", "strong_cls_cnn_prior"), ("+GNNb", "strong_cls_gnnb"),
               ("+GNNp", "strong_cls_gnnp"), ("+GNNp, first layer initialised (paper)", "strong_cls_gnnp_first"),
               ("control: CNN + spatial prior, 20 epochs more", "strong_cls_cnn_prior_more"))
# Table 1 with the paper's ROI-GAP over the candidate's mask (--roi label); CLS_ROWS pool over a sphere
MASK_ROWS = (("CNN (CT), mask ROI", "cls_cnn_ct_mask"), ("+PET, mask ROI", "cls_cnn_pet_mask"),
             ("+spatial prior, mask ROI", "cls_cnn_prior_mask"))
# The seed-2 replicate of the mask table, labelled apart: all its rows are replicated, so without the label it would
# be a second table with the rows of the first.
MASK_SEED2_ROWS = tuple((f"{label}, seed 2", name) for label, name in MASK_ROWS)
# The sphere rows the mask rows are compared with (MASK_QUESTIONS), each seed in a table of its own: the pairs are
# trained with the same code, which Table 1's figures need not be when it was written earlier.
SPHERE_ROWS = (("CNN (CT), sphere ROI", "cls_cnn_ct"), ("+PET, sphere ROI", "cls_cnn_pet"),
               ("+spatial prior, sphere ROI", "cls_cnn_prior"))
SPHERE_SEED_ROWS = {seed: tuple((f"{label}, seed {seed}", name) for label, name in SPHERE_ROWS) for seed in (1, 2)}
# Tables --table writes on its own: name -> (rows, reference row of the paired differences, training seed). Each
# replaces, in an existing document, the one table whose row labels are exactly its own, so a table can be brought up
# to date from a work folder that holds only its runs without turning the rest of the document into "not run". Seed 2
# runs are read from WORK/seed2.
NAMED_TABLES = {"table1": (CLS_ROWS, "cls_cnn_prior", 1), "mask": (MASK_ROWS, "cls_cnn_prior_mask", 1),
                "mask-seed2": (MASK_SEED2_ROWS, "cls_cnn_prior_mask", 2),
                "sphere-seed1": (SPHERE_SEED_ROWS[1], "cls_cnn_prior", 1),
                "sphere-seed2": (SPHERE_SEED_ROWS[2], "cls_cnn_prior", 2),
                "strong": (STRONG_ROWS, "strong_cls_cnn_prior", 1)}
SEG_ROWS = (("nnU-Net-style baseline (no attention)", "seg_plain"),
            ("ablation: informative negatives, no gate", "seg_negatives_only"),
            ("distance-guided attention", "seg_attention"))
SPREAD_SEG_ROWS = (("nnU-Net-style baseline (no attention)", "spread_seg_plain"),
                   ("distance-guided attention", "spread_seg_attention"))


def _load(path: str) -> dict | None:
    """An evaluation JSON, or None when it is not there (or not complete yet: a run still writing it)."""
    if not path or not Path(path).is_file():
        return None
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError:
        print(f"warning: {path} is not complete JSON; its run is shown as not run", file=sys.stderr)
        return None


def _f(value, digits: int = 3) -> str:
    return "–" if value is None or value != value else f"{value:.{digits}f}"


def _command(spec: dict, argv: list[str] | None = None) -> str:
    """A command of the run (default: its training) with the work folder written WORK (a seed replicate's runs:
    WORK/seedN)."""
    runs = Path(spec["result"]).parents[1]
    text = " ".join(shlex.quote(a) for a in (spec["train"] if argv is None else argv))
    if runs.name.startswith("seed"):  # runs in WORK/seedN, cohorts in WORK
        text = text.replace(str(runs) + "/", f"WORK/{runs.name}/").replace(str(runs.parent) + "/", "WORK/")
    return "`lnstaging " + text.replace(str(runs) + "/", "WORK/") + "`"


def run_commands(specs: dict, rows) -> str:
    """Every command behind a table's rows, in order (LN volume files, training, evaluation), seeds included;
    the same commands with --seed 2 in WORK/seed2 for the replicates."""
    lines = []
    for label, name in rows:
        spec = specs[name]
        steps = [*spec.get("prepare", []), spec["train"], spec["evaluate"]]
        lines.append(f"- {label} (`{name}`): " + "; then ".join(_command(spec, argv) for argv in steps))
    return "\n".join(lines)


def _detections(report: dict) -> tuple[list, list]:
    """Per-patient detections and lesion counts from an eval_cls JSON (patients in a fixed order)."""
    cases = sorted(report["truth"])
    detections = [candidate_detections(report["probabilities"][c], report["truth"][c]["labels"],
                                       report["truth"][c]["node_ids"]) for c in cases]
    return detections, [report["truth"][c]["n_lesions"] for c in cases]


def _paired(report: dict | None, reference: dict | None) -> str:
    """mFROC(report) - mFROC(reference) with its paired 1000-bootstrap 95% CI, or a dash."""
    if report is None or reference is None or "truth" not in report or "truth" not in reference:
        return "–"
    (a, lesions), (b, _) = _detections(report), _detections(reference)
    ci = paired_mfroc_difference(a, b, lesions)
    return f"{ci.value:+.3f} [{ci.low:+.3f}, {ci.high:+.3f}]"


def _counts(metrics: dict, candidates: bool = True) -> str:
    """patients / GTV_LN (/ candidates) of an eval_cls report's test set."""
    parts = [metrics.get("patients"), metrics.get("lesions")] + ([metrics.get("candidates")] if candidates else [])
    return " / ".join("?" if v is None else str(v) for v in parts)


def _mfroc_cell(report: dict | None) -> str:
    if report is None:
        return "not run"
    m = report["metrics"]
    ci = m.get("mFROC_95ci")
    return _f(m["mFROC"]) + (f" [{_f(ci[0])}, {_f(ci[1])}]" if ci else "")


def cls_table(specs: dict, rows=CLS_ROWS, reference: str = "cls_cnn_prior") -> str:
    """Table 1 rows on the cohort's 12 held-out patients, then mFROC and the paired difference to the CNN + prior row
    on the independent 48-patient test cohort (EXTERNAL in train_demo_models.py)."""
    lines = ["| row | test set: patients / GTV_LN / candidates | mFROC [95% CI] | sens@2 FP | @3 FP | @4 FP | @6 FP | "
             "F1@0.5 | best F1 | - CNN+prior [paired 95% CI] | 48 new patients: patients / GTV_LN, mFROC [95% CI] | "
             "- CNN+prior [paired 95% CI] | training + evaluation |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    base = _load(specs[reference]["result"])
    base_external = _load(specs[reference].get("external_result", ""))
    for label, name in rows:
        report = _load(specs[name]["result"])
        external = _load(specs[name].get("external_result", ""))
        if report is None:
            lines.append(f"| {label} | not run | | | | | | | | | | | {_command(specs[name])} |")
            continue
        m = report["metrics"]
        own = name == reference
        ext = external["metrics"] if external else None
        lines.append(f"| {label} | {_counts(m)} | {_mfroc_cell(report)} | {_f(m['sens@2FP'])} | {_f(m['sens@3FP'])} | "
                     f"{_f(m['sens@4FP'])} | {_f(m['sens@6FP'])} | {_f(m['F1@0.5'])} | {_f(m['best_F1']['f1'])} | "
                     f"{'–' if own else _paired(report, base)} | "
                     f"{(_counts(ext, False) + ', ') if ext else ''}{_mfroc_cell(external)} | "
                     f"{'–' if own else _paired(external, base_external)} | {_command(specs[name])} |")
    return "\n".join(lines)


def against_control(specs: dict, heads: tuple[str, ...], control: str) -> str:
    """GNN heads against the CNN trained as long (the control): isolates what the graph adds from the extra epochs."""
    lines = []
    for name in heads:
        cells = []
        for key, what in (("result", "12 test patients"), ("external_result", "48 new patients")):
            a, b = _load(specs[name].get(key, "")), _load(specs[control].get(key, ""))
            cells.append(f"{_paired(a, b)} ({what})")
        lines.append(f"- {name} - {control}: " + ", ".join(cells))
    return "\n".join(lines)


def attention_coverage_table(work: Path, cohort: str = "phantom_medium") -> str:
    r = _load(str(work / f"attention_coverage_{cohort}.json"))
    if r is None:
        return "Not run."
    lines = [f"Attention > 0 in {r['volume_with_attention_percent']:.1f} % of the volume ({r['cases']} {r['split']} cases).",
             "", "| candidate centres | n | attention = 0 | mean attention |", "|---|---|---|---|"]
    for kind, v in r["centres"].items():
        lines.append(f"| {kind} | {v['n']} | {v['attention_zero_percent']:.1f} % | {_f(v['mean_attention'])} |")
    return "\n".join(lines)


def relational_signal_table(work: Path) -> str:
    lines = ["| cohort | patients | GTV_LN | oracle, own features: mFROC | own + neighbours: mFROC | gain |",
             "|---|---|---|---|---|---|"]
    for cohort in COHORTS:
        r = _load(str(work / f"relational_signal_{cohort}.json"))
        if r is not None:
            lines.append(f"| {cohort} | {r['patients']} | {r['gtv_ln']} | {_f(r['own']['mFROC'])} | "
                         f"{_f(r['own_and_neighbours']['mFROC'])} | {r['neighbour_gain_mFROC']:+.3f} |")
    return "\n".join(lines)


def seg_variant(spec: dict) -> str:
    """What the stage-1 run used the attention map for, read from its checkpoint (runs before issue 17 drew
    informative negatives even with --no-attention: that is the gate-only ablation, not the paper's baseline)."""
    path = Path(spec["result"]).with_name("seg_model.pt")
    if not path.is_file():
        return "not trained yet"
    from LNStagingLib.errors import LNStagingError
    from LNStagingLib.models.checkpoint import load_checkpoint

    try:
        payload = load_checkpoint(path)
    except LNStagingError:  # a run still writing its checkpoint
        return "checkpoint not readable yet"
    gate = payload["config"].get("use_attention", True)
    negatives = payload.get("extra", {}).get("train_config", {}).get("informative_negatives", True)
    return {(True, True): "method (gate + informative negatives)",
            (False, False): "baseline (attention map unused)",
            (False, True): "ablation: informative negatives only (no gate)",
            (True, False): "ablation: gate only (negatives anywhere)"}[(bool(gate), bool(negatives))]


def _with_ci(report: dict, group: str, key: str) -> str:
    value = report.get(group, {}).get(key)
    ci = report.get("ci95", {}).get(group, {}).get(key)
    return _f(value) + (f" [{_f(ci[0])}, {_f(ci[1])}]" if ci else " (no CI in this run's JSON)")


def seg_table(specs: dict, rows=SEG_ROWS) -> str:
    lines = ["| model | what the run used the attention map for | test patients / nodes (GTV_LN) | Dice (all LN) "
             "[95% CI] | instance F, all LN (IoU >= 0.3) [95% CI] | positive LN after identification: recall | "
             "precision | F [95% CI] |", "|---|---|---|---|---|---|---|---|"]
    for label, name in rows:
        report = _load(specs[name]["result"])
        if report is None:
            lines.append(f"| {label} | | not run | | | | | |")
            continue
        a, p = report["class_agnostic"], report.get("positive", {})
        counts = f"{report.get('n_cases', '?')} / {a.get('n_ref', '?')} ({p.get('n_ref', '?')})"
        lines.append(f"| {label} | {seg_variant(specs[name])} | {counts} | {_with_ci(report, 'class_agnostic', 'dice')} | "
                     f"{_with_ci(report, 'class_agnostic', 'f_measure')} | {_f(p.get('recall'))} | "
                     f"{_f(p.get('precision'))} | {_with_ci(report, 'positive', 'f_measure')} |")
    return "\n".join(lines)


def seg_paired(specs: dict, a_name: str, b_name: str) -> str:
    """F(a) - F(b) (positive LN after identification, and all LN) with a paired 1000-bootstrap CI over patients."""
    from LNStagingLib.evaluation.bootstrap import bootstrap_ci
    from LNStagingLib.evaluation.seg import pooled_from_counts

    a, b = _load(specs[a_name]["result"]), _load(specs[b_name]["result"])
    if a is None or b is None or "per_case" not in a or "per_case" not in b:
        return "no paired interval: the runs' JSONs hold no per-case counts (rerun evaluate seg)"
    rows_a = {r["case"]: r for r in a["per_case"]}
    rows_b = {r["case"]: r for r in b["per_case"]}
    cases = sorted(set(rows_a) & set(rows_b))
    cells = []
    for group, what in (("positive", "positive LN F"), ("class_agnostic", "all-LN F")):
        ci = bootstrap_ci(lambda idx, g=group: pooled_from_counts([rows_a[cases[i]] for i in idx], g)["f_measure"]
                          - pooled_from_counts([rows_b[cases[i]] for i in idx], g)["f_measure"], len(cases))
        cells.append(f"{what} {ci.value:+.3f} [{ci.low:+.3f}, {ci.high:+.3f}]")
    return f"{', '.join(cells)} ({len(cases)} patients)"


PATIENT_ROWS = (("trained on the ground-truth largest positive LN volume", "patient"),
                ("trained on cross-fitted predicted volumes (paper 2's eq. 7)", "patient_predicted"),
                ("tumour slices only (--no-ln-volume)", "patient_image_only"))


WITHHELD = "withheld: tested with gtv_ln.nii.gz, the phantom's label"


def patient_label(label: str, name: str, specs: dict) -> str:
    """The column's label; the predicted-volume run is called cross-fitted only when its cross_fit/ folder exists
    (an earlier recipe trained it on volumes predicted in-sample)."""
    if name == "patient_predicted" and not (Path(specs[name]["result"]).parent / "cross_fit").is_dir():
        return "trained on predicted volumes, in-sample (an earlier recipe, not cross-fitted)"
    return label


def patient_table(specs: dict) -> str:
    """The patient runs' metrics. A run that reads the LN volume and was tested with gtv_ln.nii.gz shows no figure:
    that volume is > 0 exactly for the phantom's positive patients (issue 29)."""
    rows = PATIENT_ROWS
    reports = [(patient_label(label, name, specs), _load(specs[name]["result"])) for label, name in rows]
    if all(r is None for _, r in reports):
        return "Not run."
    counts = [f"{name}: {r['n_patients']} patients ({r['n_positive']} positive, {r['n_patients'] - r['n_positive']} "
              f"negative), tested with the LN volume from {r.get('ln_volume_source', '?')}"
              + (" (the phantom's label: not a result)" if name in USES_LN_VOLUME and ground_truth_volume(r) else "")
              + (f", trained with the LN volume from {trained}" if name in USES_LN_VOLUME and (
                  trained := r.get("model", {}).get("training_data", {}).get("ln_volume_source")) else "")
              for (_, r), (_, name) in zip(reports, rows) if r]
    lines = ["Test set: " + "; ".join(counts) + ".", "",
             "| metric | " + " | ".join(f"{label}: value [95% CI, 1000 bootstrap]" for label, _ in reports) + " |",
             "|---|" + "---|" * len(reports)]
    keys = next(r for _, r in reports if r is not None)["metrics"]
    for key in keys:
        cells = []
        for (_, report), (_, name) in zip(reports, rows):
            v = report["metrics"].get(key) if report else None
            if v and name in USES_LN_VOLUME and ground_truth_volume(report):
                cells.append(WITHHELD)
                continue
            cells.append(f"{_f(v['value'])} [{_f(v['low'])}, {_f(v['high'])}]" if v else "not run")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---- seed-replicated comparisons ---------------------------------------------------------------------------------
TEST_SETS = {"result": "12 test patients", "external_result": "48 new patients"}
# Table 1 with the paper's mask ROI: what PET and the spatial priors add, and the mask ROI against the sphere
# (question, A, B, run A, run B)
MASK_QUESTIONS = (("CT + PET + priors vs CT only (mask ROI)", "CNN + priors", "CNN (CT)", "cls_cnn_prior_mask",
                   "cls_cnn_ct_mask"),
                  ("PET (mask ROI)", "CNN (CT + PET)", "CNN (CT)", "cls_cnn_pet_mask", "cls_cnn_ct_mask"),
                  ("spatial priors (mask ROI)", "CNN + priors", "CNN (CT + PET)", "cls_cnn_prior_mask",
                   "cls_cnn_pet_mask"),
                  # the paper's ROI against the sphere ablation, row by row (same recipe, patients and seed)
                  *((f"mask ROI vs sphere ({label})", "mask ROI", "sphere", f"{run}_mask", run)
                    for label, run in (("CT", "cls_cnn_ct"), ("CT + PET", "cls_cnn_pet"),
                                       ("CT + PET + priors", "cls_cnn_prior"))))
MASK_COMPARISONS = tuple((question, a_label, b_label, "mFROC", a, b, key)
                         for question, a_label, b_label, a, b in MASK_QUESTIONS for key in TEST_SETS)
# (question, what A is, what B is, kind, run A, run B, test set). The difference is always A - B on the same patients.
COMPARISONS = tuple(
    [(question, a_label, b_label, "mFROC", a, b, key)
     for question, a_label, b_label, a, b in (
         ("GNNp vs CNN + priors", "GNNp", "CNN + priors", "cls_gnnp", "cls_cnn_prior"),
         ("GNNp vs CNN + priors", "GNNp", "CNN + priors trained as long", "cls_gnnp", "cls_cnn_prior_more"),
         ("GNNp vs GNNb", "GNNp", "GNNb", "cls_gnnp", "cls_gnnb"),
         ("GNNp vs CNN + priors (--relations strong)", "GNNp", "CNN + priors", "strong_cls_gnnp",
          "strong_cls_cnn_prior"),
         ("GNNp vs CNN + priors (--relations strong)", "GNNp", "CNN + priors trained as long", "strong_cls_gnnp",
          "strong_cls_cnn_prior_more"),
         ("GNNp vs GNNb (--relations strong)", "GNNp", "GNNb", "strong_cls_gnnp", "strong_cls_gnnb"))
     for key in TEST_SETS]
    + list(MASK_COMPARISONS)
    + [("attention vs the paper's baseline", "attention", "baseline (seg_plain)", kind, "seg_attention", "seg_plain",
        "result") for kind in ("positive-LN F", "all-LN F")]
    + [("patient model with vs without the LN volume", label, "tumour slices only", "AUC", a, "patient_image_only",
        "result") for label, a in (("LN volume (trained on ground truth)", "patient"),
                                   ("LN volume (trained on predicted volumes)", "patient_predicted"))])
# Comparison tables --table writes on its own, as NAMED_TABLES: name -> the comparisons that are its rows
COMPARISON_TABLES = {"mask-comparisons": MASK_COMPARISONS}
# Patient runs that read the LN volume: tested with gtv_ln.nii.gz they are given the phantom's label (the volume is
# > 0 exactly for its positive patients), so such a row is never a conclusion (issue 29).
USES_LN_VOLUME = ("patient", "patient_predicted")


def ground_truth_volume(report: dict | None) -> bool:
    """Whether a patient evaluation read the LN volume from gtv_ln.nii.gz (old runs, or no --ln-volumes)."""
    return report is not None and report.get("ln_volume_source", "gtv_ln.nii.gz") == "gtv_ln.nii.gz"


def patient_row_caveat(seeds: dict[int, dict], run: str) -> tuple[str | None, str | None]:
    """(why a patient comparison is no conclusion, or None; the few-negatives note, or None)."""
    reports = {seed: _load(specs[run]["result"]) for seed, specs in seeds.items()}
    leaked = [seed for seed, r in reports.items() if run in USES_LN_VOLUME and ground_truth_volume(r)]
    why = (f"no conclusion: seed {' and '.join(map(str, leaked))} tested with the ground-truth LN volume "
           "(gtv_ln.nii.gz, > 0 exactly for the phantom's positive patients)") if leaked else None
    negatives = sorted({r["n_patients"] - r["n_positive"] for r in reports.values() if r and "n_patients" in r})
    few = (f"rests on {' / '.join(map(str, negatives))} negative patients (fewer than {FEW_NEGATIVES})"
           if negatives and min(negatives) < FEW_NEGATIVES else None)
    return why, few
RESCORE_ROWS = (("phantom_strong", "strong_cls_gnnp_reveal"), ("phantom_medium", "cls_gnnp_reveal"))
# scripts/rescore_evaluation.py's report on each test set (the 12 held-out patients, the 48 of the external cohort)
RESCORE_FILES = (("eval_rescore_test.json", "result"), ("eval_rescore_external.json", "external_result"))


def _seg_difference(report_a: dict, report_b: dict, group: str) -> tuple[float, float, float] | str:
    from LNStagingLib.evaluation.bootstrap import bootstrap_ci
    from LNStagingLib.evaluation.seg import pooled_from_counts

    if "per_case" not in report_a or "per_case" not in report_b:
        return "no interval (no per-case counts in the JSON)"
    rows_a = {r["case"]: r for r in report_a["per_case"]}
    rows_b = {r["case"]: r for r in report_b["per_case"]}
    cases = sorted(set(rows_a) & set(rows_b))
    if not cases:
        return "no patients in common"
    ci = bootstrap_ci(lambda idx: pooled_from_counts([rows_a[cases[i]] for i in idx], group)["f_measure"]
                      - pooled_from_counts([rows_b[cases[i]] for i in idx], group)["f_measure"], len(cases))
    return ci.value, ci.low, ci.high


def _auc_difference(report_a: dict, report_b: dict) -> tuple[float, float, float] | str:
    from LNStagingLib.evaluation.compare import delong_test

    scores_a = {p["case"]: p for p in report_a["patients"]}
    scores_b = {p["case"]: p for p in report_b["patients"]}
    cases = sorted(set(scores_a) & set(scores_b))
    try:
        result = delong_test([scores_a[c]["label"] for c in cases], [scores_a[c]["probability"] for c in cases],
                             [scores_b[c]["probability"] for c in cases])
    except ValueError as error:
        return f"no interval ({error})"
    return result.difference, result.ci95[0], result.ci95[1]


def measure(kind: str, spec_a: dict, spec_b: dict, key: str = "result") -> tuple[float, float, float] | str:
    """A - B with its paired 95% CI on the same patients: (difference, low, high), or why there is none.

    mFROC: paired 1000-bootstrap over patients; F: paired bootstrap of the pooled instance F; AUC: DeLong."""
    report_a, report_b = _load(spec_a.get(key, "")), _load(spec_b.get(key, ""))
    if report_a is None or report_b is None:
        return "not run"
    if kind == "mFROC":
        if "truth" not in report_a or "truth" not in report_b:
            return "no interval (no per-patient detections in the JSON)"
        (a, lesions), (b, _) = _detections(report_a), _detections(report_b)
        ci = paired_mfroc_difference(a, b, lesions)
        return clipped((ci.value, ci.low, ci.high))
    if kind.endswith("F"):
        return clipped(_seg_difference(report_a, report_b, "positive" if kind.startswith("positive")
                                       else "class_agnostic"))
    return clipped(_auc_difference(report_a, report_b))


def clipped(value):
    """A difference of two quantities in [0, 1] lies in [-1, 1]: so does its interval (DeLong's normal interval
    can overshoot on a few patients)."""
    if isinstance(value, str):
        return value
    return value[0], max(-1.0, value[1]), min(1.0, value[2])


def difference_cell(value) -> str:
    return value if isinstance(value, str) else f"{value[0]:+.3f} [{value[1]:+.3f}, {value[2]:+.3f}]"


EXCLUDES = 0.0005  # half the last printed digit


def conclusion(seed1, seed2, a_label: str, b_label: str) -> str:
    """A conclusion only when both seeds agree in sign and both intervals exclude 0; otherwise "not supported"."""
    missing = [f"seed {k}: {v}" for k, v in ((1, seed1), (2, seed2)) if isinstance(v, str)]
    if missing:
        return "not supported (" + "; ".join(missing) + ")"
    # an interval excludes 0 only when it does as printed (3 decimals): a lower bound printed +0.000 does not
    signs = [1 if low >= EXCLUDES else -1 if high <= -EXCLUDES else 0 for _, low, high in (seed1, seed2)]
    if signs[0] == signs[1] != 0:
        return f"**{a_label} higher**" if signs[0] > 0 else f"**{b_label} higher**"
    if 0 in signs:
        return "not supported (" + " and ".join(f"seed {k}" for k, sign in zip((1, 2), signs) if sign == 0) + \
            " interval contains 0)"
    return "not supported (the seeds disagree in sign)"


def comparison_rows(seeds: dict[int, dict], rescores: dict[int, Path] | None = None,
                    comparisons=COMPARISONS) -> list[dict]:
    """Every comparison of ``comparisons`` (and, when ``rescores`` is given, the re-scoring rows) measured per seed,
    with its conclusion.

    ``seeds``: seed -> experiments() of that seed's work folder; ``rescores``: seed -> work folder (re-scoring
    JSONs)."""
    rows = []
    for question, a_label, b_label, kind, a, b, key in comparisons:
        values = {seed: measure(kind, specs[a], specs[b], key) for seed, specs in seeds.items()}
        verdict_text = conclusion(values.get(1, "not run"), values.get(2, "not run"), a_label, b_label)
        if kind == "AUC":
            values = {seed: WITHHELD if a in USES_LN_VOLUME and ground_truth_volume(_load(specs[a]["result"]))
                      else value for (seed, specs), value in zip(seeds.items(), values.values())}
            why, few = patient_row_caveat(seeds, a)
            verdict_text = why or verdict_text
            if few:
                verdict_text += f"; {few}"
        rows.append({"question": question, "comparison": f"{a_label} - {b_label}", "metric": kind,
                     "test_set": TEST_SETS[key], "values": values, "conclusion": verdict_text})
    for (cohort, run), (file, test_set) in [(r, f) for r in RESCORE_ROWS for f in RESCORE_FILES if rescores]:
        reports = {seed: _load(str(folder / run / file)) for seed, folder in rescores.items()}
        ks = sorted({k for r in reports.values() if r for k in r["k"]}, key=int) or ["–"]
        for k in ks:
            for first, a_label, other, b_label in RESCORE_COMPARISONS:
                values = {}
                for seed, report in reports.items():
                    row = (report or {}).get("k", {}).get(k, {}).get(f"{first}_minus_{other}")
                    values[seed] = (row["difference"], *row["95ci"]) if row else "not run"
                rows.append({"question": f"re-scoring from review decisions ({cohort}, k = {k})",
                             "comparison": f"{a_label} - {b_label}", "metric": "pending mFROC",
                             "test_set": TEST_SETS[test_set], "values": values,
                             "conclusion": conclusion(values.get(1, "not run"), values.get(2, "not run"), a_label,
                                                      b_label)})
    return rows


# (A, its label, B, its label) of each re-scoring row; the reference regression reads the decisions with a handful of
# parameters (scripts/rescore_evaluation.py): what the decisions can tell with this CNN.
RESCORE_COMPARISONS = (("rescored", "re-scored", "nothing", "nothing revealed"),
                       ("rescored", "re-scored", "baseline", "CNN + priors"),
                       ("regression", "reference regression", "baseline", "CNN + priors"))


def comparisons_table(rows: list[dict]) -> str:
    lines = ["| question | difference (A - B) | metric | test set | seed 1: A - B [95% CI] | seed 2: A - B [95% CI] | "
             "conclusion (both seeds agree, both intervals exclude 0) |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['question']} | {row['comparison']} | {row['metric']} | {row['test_set']} | "
                     f"{difference_cell(row['values'].get(1, 'not run'))} | "
                     f"{difference_cell(row['values'].get(2, 'not run'))} | {row['conclusion']} |")
    return "\n".join(lines)


def verdict(rows: list[dict]) -> str:
    """One answer from the rows of one question: supported only when some row concludes and none concludes the
    opposite way."""
    supported = sorted({r["conclusion"].split("**")[1] for r in rows if r["conclusion"].startswith("**")})
    if all(value == "not run" for r in rows for value in r["values"].values()):
        return "Not run"
    if not supported:
        return "Not supported (no row has both seeds agreeing with intervals that exclude 0)"
    if len(supported) == 1:
        return "Supported: " + supported[0]
    return "Contradictory: " + " in some rows, ".join(supported) + " in others"


def headline(rows: list[dict], seed1_specs: dict) -> str:
    """The two questions of issue 17, answered from the seed-replicated comparisons (both seeds side by side), one
    verdict per cohort."""
    def answer(question_prefix: str) -> str:
        parts = []
        for question in dict.fromkeys(r["question"] for r in rows if r["question"].startswith(question_prefix)):
            chosen = [r for r in rows if r["question"] == question]
            cohort = "on `--relations strong`" if "strong" in question else "on the default cohort"
            details = "; ".join(f"{r['comparison']}, {r['metric']}, {r['test_set']}: "
                                f"seed 1 {difference_cell(r['values'].get(1, 'not run'))}, "
                                f"seed 2 {difference_cell(r['values'].get(2, 'not run'))}" for r in chosen)
            parts.append(f"{cohort}: **{verdict(chosen)}**. {details}.")
        return "\n  - " + "\n  - ".join(parts)

    return "\n".join([
        "- Does GNNp beat the CNN + spatial priors (same inputs: CT + PET + priors)?" + answer("GNNp vs CNN + priors"),
        "- Does the distance-guided attention beat the paper's true baseline (no gate, no informative negatives, "
        f"`seg_plain`, seed 1 checkpoint: {seg_variant(seed1_specs['seg_plain'])})?" + answer("attention vs"),
        "- Do the reviewer's decisions, fed through the review-state GNNp, raise the still-pending candidates' mFROC "
        "(issue 19), and do the decisions carry that signal at all (the reference regression)?" + rescore_answer(rows),
        "- A conclusion needs both training seeds to agree in sign with both paired 95% intervals excluding 0 as "
        "printed (a bound printed +0.000 does not); every other case reads \"not supported\" (an interval containing "
        "0 is a difference these test patients cannot show either way). Each row is its own test at the 95% level, "
        f"without a correction for the number of rows ({tested(rows)} rows with both seeds measured). Both seeds are "
        "tested on the same patients with the same bootstrap seed, so the rule guards against training noise, not "
        "against the chance of which patients were drawn; on the 12 test patients the nominal 95% intervals cover "
        "less than 95% (the coverage note below the comparison table)."])


def tested(rows: list[dict]) -> int:
    """Comparison rows whose two seeds both have a measured difference."""
    return sum(all(not isinstance(r["values"].get(seed, "not run"), str) for seed in (1, 2)) for r in rows)


def coverage_note(specs: dict) -> str:
    """What a nominal 95% AUC interval covers on the patient test set's class counts (evaluation/coverage.py)."""
    report = next((r for r in (_load(specs[name]["result"]) for name in ("patient", "patient_image_only",
                                                                         "patient_predicted")) if r), None)
    if report is None or "n_patients" not in report:
        return "Coverage note: no patient run yet (the note is computed from the test set's class counts)."
    positive, negative = report["n_positive"], report["n_patients"] - report["n_positive"]
    if min(positive, negative) < 2:
        return f"Coverage note: {positive} positive / {negative} negative test patients give no AUC interval."
    r = auc_interval_coverage(positive, negative, 0.75)
    return (f"Coverage note ({positive} positive / {negative} negative test patients): nominal 95% AUC intervals "
            f"contain the true AUC in {r['coverage']['delong']:.3f} (DeLong) and {r['coverage']['bootstrap']:.3f} "
            f"(1000-resample patient bootstrap) of {r['n_sim']} simulated test sets of these class counts (binormal "
            f"scores, true AUC {r['true_auc']}, seed {r['seed']}; LNStagingLib/evaluation/coverage.py). Read every "
            f"interval on these patients as narrower than it should be; a conclusion on fewer than {FEW_NEGATIVES} "
            "negative patients says so in its row. The 12-patient mFROC and F intervals rest on the same few "
            "patients; the 48 new patients are the larger test set.")


def rescore_answer(rows: list[dict]) -> str:
    """The re-scoring rows answered one comparison at a time (re-scored vs nothing revealed, the reference regression
    vs the CNN + priors), per cohort and number of decisions k."""
    parts = []
    for question, test_set in dict.fromkeys((r["question"], r["test_set"]) for r in rows
                                            if r["question"].startswith("re-scoring")):
        cohort = "`--relations strong`" if "strong" in question else "the default cohort"
        k = question.split(", k = ")[1].rstrip(")")
        answers = [f"{r['comparison']}: {r['conclusion']} (seed 1 {difference_cell(r['values'].get(1, 'not run'))}, "
                   f"seed 2 {difference_cell(r['values'].get(2, 'not run'))})"
                   for r in rows if (r["question"], r["test_set"]) == (question, test_set)
                   and r["comparison"] in ("re-scored - nothing revealed", "reference regression - CNN + priors")]
        parts.append(f"on {cohort}, {test_set}, after k = {k} decisions: " + "; ".join(answers) + ".")
    return "\n  - " + "\n  - ".join(parts) if parts else " Not run."


def rescore_table(work: Path) -> str:
    """Issue 19: pending-candidate mFROC after the top-k decisions, per cohort, seed (WORK and WORK/seed2) and k."""
    lines = ["| cohort | test set | seed | k | pending GTV_LN | re-scored: mFROC [95% CI] | nothing revealed | "
             "CNN + priors | reference regression | re-scored - nothing [paired 95% CI] | re-scored - CNN + priors "
             "[paired 95% CI] | reference regression - CNN + priors [paired 95% CI] |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (cohort, run), (file, test_set) in [(r, f) for r in RESCORE_ROWS for f in RESCORE_FILES]:
        for seed, folder in ((1, work), (2, work / "seed2")):
            report = _load(str(folder / run / file))
            if report is None:
                lines.append(f"| {cohort} | {TEST_SETS[test_set]} | {seed} | – | not run | | | | | | | |")
                continue
            for k, row in report["k"].items():
                cells = [f"{_f(row[n]['mFROC'])} [{_f(row[n]['95ci'][0])}, {_f(row[n]['95ci'][1])}]" if n in row
                         else "not run" for n in ("rescored", "nothing", "baseline", "regression")]
                diffs = [f"{row[d]['difference']:+.3f} [{row[d]['95ci'][0]:+.3f}, {row[d]['95ci'][1]:+.3f}]"
                         if d in row else "not run"
                         for d in ("rescored_minus_nothing", "rescored_minus_baseline", "regression_minus_baseline")]
                lines.append(f"| {cohort} | {TEST_SETS[test_set]} | {seed} | {k} | {row['pending_lesions']} | "
                             + " | ".join(cells + diffs) + " |")
    return "\n".join(lines)


def replace_table(text: str, rows, table: str) -> str:
    """``text`` with the Markdown table whose row labels are exactly those of ``rows`` (in order) replaced by
    ``table``. Refuses (ValueError) unless exactly one table of ``text`` has these rows."""
    lines = text.split("\n")
    labels = [label for label, _ in rows]
    blocks, start = [], None
    for i, line in enumerate([*lines, ""]):
        if line.startswith("|") and start is None:
            start = i
        elif not line.startswith("|") and start is not None:
            blocks.append((start, i))
            start = None
    matches = [(a, b) for a, b in blocks if [line.split("|")[1].strip() for line in lines[a + 2:b]] == labels]
    if len(matches) != 1:
        raise ValueError(f"{len(matches)} tables with the rows {', '.join(labels)} (expected exactly 1); "
                         "write the whole document instead (without --table)")
    a, b = matches[0]
    return "\n".join([*lines[:a], table, *lines[b:]])


def seed_experiments(work: Path, seed: int) -> dict:
    """experiments() of one training seed: seed 1 in ``work``, seed 2 in ``work``/seed2 (reading ``work``'s
    cohorts)."""
    return experiments(work) if seed == 1 else experiments(work / f"seed{seed}", seed, cohorts=work)


def write_one_table(work: Path, name: str, out: Path) -> str:
    """The table ``name`` (NAMED_TABLES or COMPARISON_TABLES) from the runs in ``work`` (seed 2: ``work``/seed2),
    put into ``out`` in place of the same table."""
    if name in COMPARISON_TABLES:
        rows = comparison_rows({seed: seed_experiments(work, seed) for seed in (1, 2)},
                               comparisons=COMPARISON_TABLES[name])
        table = comparisons_table(rows)
        labels = [(row["question"], None) for row in rows]
    else:
        labels, reference, seed = NAMED_TABLES[name]
        table = cls_table(seed_experiments(work, seed), labels, reference)
    out.write_text(replace_table(out.read_text(), labels, table))
    return table


def rows_of(rows: list[dict], comparisons) -> list[dict]:
    """The rows of ``rows`` (comparison_rows) that ask one of the questions of ``comparisons``."""
    questions = {question for question, *_ in comparisons}
    return [row for row in rows if row["question"] in questions]


def replicated(rows):
    """The rows of a table whose run has a seed replicate (REPLICATED)."""
    return tuple((label, name) for label, name in rows if name in REPLICATED)


def hand_written_sections(old_text: str) -> str:
    """The sections of the previous document whose heading starts with "## Real" (real-data figures, not generated):
    each from its heading to the next level-2 heading, verbatim."""
    kept, keep = [], False
    for line in old_text.splitlines(keepends=True):
        if line.startswith("## "):
            keep = line.startswith("## Real")
        if keep:
            kept.append(line)
    return "".join(kept)


def run_times(folder: Path, names) -> dict[str, str]:
    """Seconds of each finished run (NAME.seconds). The clock of train_demo_models.py restarts when a run is resumed
    after an interruption, so a run whose last training command in its log is a ``--resume`` is marked: its figure
    is the last part only (a run started again with ``--overwrite`` after a failed attempt is whole)."""
    times = {}
    for name in names:
        path = folder / f"{name}.seconds"
        if path.is_file():
            log = folder / f"{name}.log"
            commands = [line.rstrip() for line in (log.read_text(errors="replace").splitlines() if log.is_file() else [])
                        if line.startswith("$ lnstaging train")]
            resumed = bool(commands) and commands[-1].endswith("--resume")
            times[name] = path.read_text().strip() + (" (resumed: last part only)" if resumed else "")
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "RESULTS.md")
    parser.add_argument("--notes", type=Path, help="a Markdown file of observations appended verbatim")
    parser.add_argument("--table", choices=sorted([*NAMED_TABLES, *COMPARISON_TABLES]),
                        help="write only this table: printed, and put into --out (which must exist) in place of the "
                             "same table; the rest of --out is left as it is")
    args = parser.parse_args()
    if args.table:
        if not args.out.is_file():
            parser.error(f"--table replaces a table in an existing document; {args.out} does not exist")
        try:
            print(write_one_table(args.work, args.table, args.out))
        except ValueError as error:
            parser.error(f"{args.out}: {error}")
        return 0
    specs, seed2 = seed_experiments(args.work, 1), seed_experiments(args.work, 2)
    rows = comparison_rows({1: specs, 2: seed2}, {1: args.work, 2: args.work / "seed2"})
    seconds = {seed: run_times(folder, specs) for seed, folder in ((1, args.work), (2, args.work / "seed2"))}
    text = f"""# Results on the phantom cohort

Research software: not for clinical use. Every table below is written by `scripts/results_tables.py` from the
evaluation JSONs of `scripts/train_demo_models.py --work WORK`; no table figure is typed by hand. The observations at
the end quote those tables. Cohort: `lnstaging phantom {' '.join(COHORT_ARGS)}` (48 synthetic PET/CT patients, 1.8 x 1.8 x 2.5 mm, mixed
identity/oblique/RAS orientations; 4 folds of 9 cases, fold 0 for validation, 12 held-out test patients). All models
use the `small` preset and were trained on 2 CPU cores with one torch thread per run. These are phantom figures: they
show the code paths work and compare the variants, they say nothing about accuracy on patients. Training seed 1 for
every row (each row's command has its `--seed`); seed 2 for every run a conclusion rests on
(`scripts/train_demo_models.py --work WORK/seed2 --cohorts WORK --seed 2 --replicates`, same cohorts and patients);
cohort seeds 11 (training and 12 test patients) and 12 (48 new test patients). "not run" marks a run whose
evaluation JSON was not there when this document was written.

## Headline: like-for-like comparisons, two training seeds

{headline(rows, specs)}

## Every comparison a conclusion may be drawn from, seed 1 and seed 2

A - B on the same test patients, per training seed: mFROC with a paired 1000-bootstrap 95% CI over patients,
stage 1's instance F (IoU >= 0.3, pooled) with a paired 1000-bootstrap CI, the patient AUC with DeLong's 95% CI
(needs 2 positive and 2 negative patients); intervals clipped to [-1, 1]. A conclusion is stated only when both
seeds agree in sign and both intervals exclude 0. A patient model that reads the LN volume is compared only when it
was tested with the volume the pipeline predicts: tested with gtv_ln.nii.gz it is given the phantom's label.

{comparisons_table(rows)}

{coverage_note(specs)}

## Paper 1 (Chao et al. 2020), Table 1: GTV_LN classification of ground-truthed candidates

Held-out test patients; candidates are the phantom's true nodes and look-alikes (candidates.csv). FROC counts a
GTV_LN once (its best candidate); FP per patient over all test patients. The last columns evaluate the same models
on an independent cohort of 48 test patients (`lnstaging phantom {' '.join(EXTERNAL['phantom_medium'][1])}`),
four times the test patients, for the rows whose differences are small. The paired difference resamples patients
1000 times with both models on the same patients: an interval that excludes 0 is a difference the test set shows.

ROI: every row of this table and of the `--relations strong` tables pools ROI-GAP over a sphere around each
candidate (`--roi sphere` in the recipe), an **ablation** of the paper's ROI-GAP, which pools over the candidate's
mask: the phantom's look-alikes are point candidates without a mask while its nodes have one, so mask pooling lets
a classifier learn "has a mask". The paper's mask ROI (`--roi label`) is the next table.

{cls_table(specs)}

Table 1 with the paper's ROI-GAP over the candidate's own mask (`--roi label`; look-alikes, which have no mask, pool
over the sphere), difference to its own CNN + prior row; `python scripts/train_demo_models.py --work WORK --only
{' '.join(name for _, name in MASK_ROWS)}`:

{cls_table(specs, MASK_ROWS, "cls_cnn_prior_mask")}

The same three rows trained with seed 2 (`scripts/train_demo_models.py --work WORK/seed2 --cohorts WORK --seed 2
--replicates`), and what PET and the priors add with the mask ROI, both seeds (a conclusion only when both agree with
intervals that exclude 0):

{cls_table(seed2, MASK_SEED2_ROWS, "cls_cnn_prior_mask")}

{comparisons_table(rows_of(rows, MASK_COMPARISONS))}

The sphere rows of these pairs, seed 1 and seed 2:

{cls_table(specs, SPHERE_SEED_ROWS[1])}

{cls_table(seed2, SPHERE_SEED_ROWS[2])}

The graph heads against the control, which has the same training budget (mFROC difference [paired 95% CI]):

{against_control(specs, ("cls_gnnb", "cls_gnnp"), "cls_cnn_prior_more")}

## Paper 1 on phantoms whose relations matter (`--relations strong`)

The same cohort recipe with `--relations strong`: metastasis spreads along chains of positive nodes whatever the
edge length and the metastases of a patient share one phenotype, so a node's status follows its neighbours' more
than its own distance to the tumour. `lnstaging phantom {' '.join(COHORTS['phantom_strong'])}`; same splits,
same recipe; the independent test cohort adds `--relations strong` too.

{cls_table(specs, STRONG_ROWS, "strong_cls_cnn_prior")}

The graph heads against the control with the same training budget (mFROC difference [paired 95% CI]):

{against_control(specs, ("strong_cls_gnnb", "strong_cls_gnnp", "strong_cls_gnnp_first"), "strong_cls_cnn_prior_more")}

The replicated rows of both cohorts trained with seed 2 (WORK/seed2):

{cls_table(seed2, replicated(CLS_ROWS))}

{cls_table(seed2, replicated(STRONG_ROWS), "strong_cls_cnn_prior")}

How much the neighbours can tell at best: `scripts/relational_signal.py --data COHORT` fits two logistic
regressions, cross-validated by patient, on the phantom's ground-truth appearance (SUVmax, diameter, lesion kind,
which no CNN sees) and the distance to the tumour, without and with the scores of the patient's other nodes (the
best one, the best within 40 mm, the nearest). Their mFROC difference estimates what the neighbours add when the appearance is known perfectly.

{relational_signal_table(args.work)}

## Re-scoring from review decisions (issue 19)

A GNNp whose node input carries the review state (accepted / rejected / unknown), trained with a random subset of
each patient's labels revealed and the loss on the hidden ones (`lnstaging train cls ... --head gnnp --reveal-labels
--init-cnn WORK/<cohort's CNN + prior>/cls_model.pt`, same recipe as above). On the held-out test patients the
reviewer decides the k most probable candidates first (ground truth as decision); the still-pending candidates are
scored by the model with those decisions fed in, by the same model with nothing revealed and by the CNN + priors,
on the same pending set. Lesions already found by an accepted candidate are no longer counted. The reference
regression is a logistic regression on the CNN + priors logit and what the decisions say about each candidate
(nearness to, and appearance similarity with, the nearest accepted and rejected candidate; 13 weights), fitted on the
cohort's training patients: its difference from the CNN + priors is what the decisions can tell with this CNN.
`python scripts/rescore_evaluation.py --data WORK/<cohort> --model WORK/<run>/cls_model.pt --baseline
WORK/<CNN + prior run>/cls_model.pt --out WORK/<run>/eval_rescore_test.json`, and on the 48 new patients with
`--data WORK/<cohort>_test --fit-data WORK/<cohort> --out WORK/<run>/eval_rescore_external.json`; seed 2 in
WORK/seed2.

{rescore_table(args.work)}

## Paper 2: LN segmentation with and without distance-guided attention, before/after identification

Held-out test patients; instances are connected components of the probability map (threshold 0.5, 30 mm^3 minimum);
"all LN" are positive and negative nodes; instance metrics at IoU >= 0.3, pooled over patients; Dice is the mean
over patients.

{seg_table(specs)}

Seed 2 (WORK/seed2):

{seg_table(seed2, replicated(SEG_ROWS))}

Commands (seed 1; seed 2 adds `--seed 2` and WORK/seed2):

{run_commands(specs, SEG_ROWS + SPREAD_SEG_ROWS)}

Where the attention map puts the phantom's nodes and look-alikes (`scripts/attention_coverage.py --data
WORK/phantom_medium`, held-out test cases; the gate can only suppress what lies where attention = 0):

{attention_coverage_table(args.work)}

## Paper 2 on phantoms whose look-alikes lie partly beyond the attention bands (`--look-alikes spread`)

The same cohort recipe with `--look-alikes spread` (`lnstaging phantom {' '.join(COHORTS['phantom_spread'])}`): every
second look-alike is placed where the attention map is 0, as much real bowel and non-nodal uptake is. Same
training recipe, both models trained straight for 60 epochs.

{seg_table(specs, SPREAD_SEG_ROWS)}

{attention_coverage_table(args.work, "phantom_spread")}

## Paper 2: patient-level metastasis

The LN volume the runs are tested with is the one the pipeline predicts for the test patients (stage 1 +
identification of `seg_attention`, trained without them: `lnstaging predict-volumes --split test`); the
cross-fitted run trains on volumes each predicted by one of 4 stage-1 models trained without that patient
(`lnstaging predict-volumes --cross-fit 4`). A run tested with gtv_ln.nii.gz (an earlier recipe) is marked: that
volume is > 0 exactly for the phantom's positive patients.

{patient_table(specs)}

Seed 2 (WORK/seed2):

{patient_table(seed2)}

Commands (seed 1; seed 2 adds `--seed 2` and WORK/seed2):

{run_commands(specs, PATIENT_ROWS)}

## Run times (training + evaluation, seconds, 1 torch thread, 2 runs sharing 2 cores)

Seed 1: {json.dumps(seconds[1])}

Seed 2: {json.dumps(seconds[2])}
"""
    if args.notes and args.notes.is_file():
        text += "\n" + args.notes.read_text()
    kept = hand_written_sections(args.out.read_text()) if args.out.is_file() else ""
    if kept:
        text += "\n" + kept
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
