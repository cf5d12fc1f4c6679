#!/usr/bin/env python
"""Copy the demo models trained by train_demo_models.py into Resources/: weights, model cards, Models.json entries
(sha256, headline metrics, the FROC operating points), and one held-out phantom case as Resources/DemoCase.
Also writes docs/RESULTS.md from the evaluation JSONs.

  python scripts/install_demo_models.py --work /path/to/work
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from LNStagingLib import NOT_FOR_CLINICAL_USE  # noqa: E402
from LNStagingLib.models.checkpoint import load_checkpoint, sha256_of  # noqa: E402

RESOURCES = ROOT / "Resources"
ABDOMEN = "abdomen/pancreas"  # where the phantom's anatomy (and so every attention or prior model) applies
DEMO_MODELS = {  # id -> (task, checkpoint inside the work folder, evaluation JSON, inputs, body site or "any")
    "demo-seg": ("seg", "seg_attention/seg_model.pt", "seg_attention/eval_seg_test.json", ["ct", "pet", "attention"],
                 ABDOMEN),
    # issue 13: stage 1 without the attention map (the paper's nnU-Net baseline, no organ masks needed), so that a
    # head-and-neck or thoracic case can run stage 1: `lnstaging run --models seg=demo-seg-noattention`
    "demo-seg-noattention": ("seg", "seg_plain/seg_model.pt", "seg_plain/eval_seg_test.json", ["ct", "pet"], "any"),
    "demo-identification": ("identification", "seg_attention/identifier.pt", "seg_attention/eval_seg_test.json",
                            ["ct", "pet", "gtv_ln instances"], ABDOMEN),
    "demo-cls": ("cls", "cls_gnnp/cls_model.pt", "cls_gnnp/eval_cls_test.json", ["ct", "pet", "candidates", "tumor"],
                 ABDOMEN),
    # issue 19: GNNp with the review state as input (train cls --reveal-labels); for lnstaging review --rescore-model
    "demo-cls-rescore": ("cls", "cls_gnnp_reveal/cls_model.pt", "cls_gnnp_reveal/eval_cls_test.json",
                         ["ct", "pet", "candidates", "tumor", "review decisions"], ABDOMEN),
    # issue 29: trained on cross-fitted predicted LN volumes (predict-volumes --cross-fit 4), tested on the volumes
    # demo-seg + demo-identification predict for the test patients: the volumes `lnstaging run` gives it
    "demo-patient": ("patient", "patient_predicted/patient_model.pt", "patient_predicted/eval_patient_test.json",
                     ["ct", "tumor", "ln_volume"], ABDOMEN),
}
NOT_DEFAULT = {"demo-cls-rescore", "demo-seg-noattention"}  # one default per task: demo-cls, demo-seg
WHAT_ELSE = {"demo-cls-rescore": ", re-scores from review decisions",  # the catalogue description beyond the task
             "demo-seg-noattention": ", without attention (any site)"}


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def headline(task: str, report: dict) -> dict:
    if task == "cls":
        m = report.get("metrics", {})
        return {k: m.get(k) for k in ("mFROC", "sens@2FP", "sens@3FP", "sens@4FP", "sens@6FP", "F1@0.5")}
    if task in ("seg", "identification"):
        return {k: report.get(k) for k in ("class_agnostic", "positive") if k in report}
    if task == "patient":
        metrics = {k: v.get("value") for k, v in report.get("metrics", {}).items()}
        if "auc" in report.get("metrics", {}):
            metrics["auc_95ci_bootstrap"] = [report["metrics"]["auc"]["low"], report["metrics"]["auc"]["high"]]
        delong = delong_interval(report)
        if delong:
            metrics["auc_95ci_delong"] = list(delong)
        if "n_patients" in report:
            metrics["test_patients"] = {"positive": report["n_positive"],
                                        "negative": report["n_patients"] - report["n_positive"]}
        if "ln_volume_source" in report:
            metrics["ln_volume_source"] = report["ln_volume_source"]
        return metrics
    return {}


def delong_interval(report: dict) -> tuple[float, float] | None:
    """DeLong's 95% AUC interval from the per-patient probabilities of an evaluate-patient JSON (None with fewer than
    2 patients of a class)."""
    from LNStagingLib.evaluation.compare import delong_auc_ci

    patients = report.get("patients", [])
    labels = [p["label"] for p in patients]
    if min(sum(labels), len(labels) - sum(labels)) < 2:
        return None
    return delong_auc_ci(labels, [p["probability"] for p in patients])[1:]


def froc_operating_points(report: dict) -> list[list[float]]:
    """[fp_per_patient, threshold] pairs for the FP-per-patient operating point control."""
    froc = report.get("froc", {})
    pairs = sorted(zip(froc.get("fp_per_patient", []), froc.get("thresholds", [])))
    return [[round(float(fp), 4), round(float(t), 6)] for fp, t in pairs]


def _rescore_figures(rescore: dict, patients: str) -> str:
    """One line per k of scripts/rescore_evaluation.py's output: the pending candidates' mFROC re-scored vs nothing
    revealed vs the CNN + priors."""
    lines = [f"  - k = {k} decided ({row['pending_lesions']} pending GTV_LN): re-scored "
             f"{row['rescored']['mFROC']:.3f}, nothing revealed {row['nothing']['mFROC']:.3f} (difference "
             f"{row['rescored_minus_nothing']['difference']:+.3f} [{row['rescored_minus_nothing']['95ci'][0]:+.3f}, "
             f"{row['rescored_minus_nothing']['95ci'][1]:+.3f}]), CNN + priors {row['baseline']['mFROC']:.3f}"
             for k, row in sorted(rescore.get("k", {}).items())]
    if not lines:
        return ""
    return (f"- Re-scoring measured on {rescore.get('patients')} {patients} (one training seed; "
            "`scripts/rescore_evaluation.py`), mFROC of the still-pending candidates after the k most probable are "
            "decided:\n" + "\n".join(lines) + "\n")


def _review_state_note(payload: dict, rescore: dict | None = None, rescore_external: dict | None = None) -> str:
    if not payload["config"].get("review_state"):
        return ""
    channel = ("Decided nodes also send a message built from explicit pair features (appearance similarity, "
               "nearness, accepted or rejected; the decision channel of models/gnn.py). "
               if payload["config"].get("decision_channel") else "")
    trained = ("the graph head alone on the CNN + priors' CNN (`--freeze-cnn`)"
               if payload.get("training_data", {}).get("freeze_cnn") else "the whole network")
    return (_rescore_figures(rescore or {}, "held-out phantom patients")
            + _rescore_figures(rescore_external or {}, "phantom patients of the independent test cohort") + (
            f"- Review state: each node's input also carries an explicit indicator of the reviewer's decision on it "
            f"(accepted / rejected / unknown). {channel}Trained ({trained}) on phantoms with a random subset of each "
            "patient's candidate labels revealed as that input and the loss on the hidden ones only (`lnstaging "
            "train cls --head gnnp --reveal-labels`). With nothing decided it is an ordinary stage-2 classifier. In "
            "review it re-scores the pending candidates after every accept/reject: `lnstaging review "
            "--rescore-model demo-cls-rescore`, or the Slicer module's **Re-scoring model** list. It is not the "
            "default cls model of `lnstaging run`. Its effect was measured on phantoms only (above; docs/RESULTS.md "
            "re-scoring section) and says nothing about patients.\n"))


def _patient_figures(report: dict) -> str:
    """The patient model's test figures with what a reader needs to weigh them: the class counts, each metric's
    interval, DeLong's AUC interval, and how little an interval says on fewer than FEW_NEGATIVES negatives."""
    from LNStagingLib.evaluation.coverage import FEW_NEGATIVES, auc_interval_coverage

    metrics = report["metrics"]
    positive, negative = report["n_positive"], report["n_patients"] - report["n_positive"]
    figure = lambda name: (f"{metrics[name]['value']:.3f} [{metrics[name]['low']:.3f}, "  # noqa: E731
                           f"{metrics[name]['high']:.3f}]")
    delong = delong_interval(report)
    auc = f"AUC {figure('auc')}" + (f" (DeLong 95% CI [{delong[0]:.3f}, {delong[1]:.3f}])" if delong else "")
    others = ", ".join(f"{name.replace('_', ' ')} {figure(name)}" for name in metrics if name != "auc")
    text = (f"- Held-out phantom test patients: {report['n_patients']} ({positive} positive, {negative} negative). "
            f"{auc}; at probability {report.get('threshold', 0.5)}: {others} (value [95% CI, "
            f"{report.get('bootstrap', {}).get('n', 1000)}-resample patient bootstrap]).\n")
    volumes = [(p["label"], p["ln_volume_mm3"]) for p in report.get("patients", []) if "ln_volume_mm3" in p]
    if volumes:
        nonzero = {label: sum(v > 0 for y, v in volumes if y == label) for label in (1, 0)}
        text += (f"- The LN volume the model was tested with is > 0 for {nonzero[1]} of the {positive} positive and "
                 f"{nonzero[0]} of the {negative} negative test patients.\n")
    if negative < FEW_NEGATIVES and min(positive, negative) >= 2:
        simulated = auc_interval_coverage(positive, negative, 0.75)
        text += (f"- These figures rest on {negative} negative patients (fewer than {FEW_NEGATIVES}): on {positive} "
                 f"positive / {negative} negative patients a nominal 95% AUC interval contains the true AUC in "
                 f"{simulated['coverage']['delong']:.3f} (DeLong) and {simulated['coverage']['bootstrap']:.3f} "
                 f"(bootstrap) of {simulated['n_sim']} simulated test sets (true AUC {simulated['true_auc']}; "
                 "LNStagingLib/evaluation/coverage.py). They show the pipeline runs; they do not show how well the "
                 "model separates patients.\n")
    return text


def _volume_note(task: str, payload: dict, volume_source: str | None) -> str:
    """Which LN volume the patient model's test metrics were measured with (never gtv_ln: install refuses it)."""
    if task != "patient" or not payload["config"].get("use_ln_volume", True):
        return ""
    return ("- LN volume of the training patients: cross-fitted (`lnstaging predict-volumes --cross-fit 4` with "
            "seg_attention's recipe: each training patient's volume predicted by one of 4 stage-1 models + "
            "identifiers trained without that patient), so that training sees volumes like those of new patients.\n"
            f"- LN volume of the test patients: the pipeline's ({volume_source}: stage 1 + identification of "
            "`seg_attention`, the demo-seg and demo-identification models, trained without them; `lnstaging "
            "predict-volumes --split test`), as `lnstaging run` feeds it. Never gtv_ln.nii.gz, which is > 0 exactly "
            "for the phantom's positive patients.\n")


def model_card(model_id: str, task: str, payload: dict, report: dict, size: int, site: str,
               rescore: dict | None = None, rescore_external: dict | None = None) -> str:
    figures = (_patient_figures(report) if task == "patient" and "n_patients" in report
               else f"- Held-out phantom test metrics: {json.dumps(headline(task, report))}\n")
    run = DEMO_MODELS[model_id][1].split("/")[0]
    notes = (_volume_note(task, payload, report.get("ln_volume_source"))
             + _review_state_note(payload, rescore, rescore_external))
    return f"""# Model card: {model_id}

{NOT_FOR_CLINICAL_USE} These weights were trained on **synthetic phantoms only** (`lnstaging phantom`); they
demonstrate the pipeline and are not expected to work on patient images. Train on your own cohort (docs/TRAINING.md).

- Task: {task}
{_site_note(site)}- Training domain: synthetic phantom (`lnstaging phantom`, abdominal anatomy)
- Network: `{payload['model']}`, configuration below (travels inside the checkpoint)
- File size: {size / 1e6:.2f} MB; sha256 in Resources/Models.json
- Training data: {json.dumps(payload.get('training_data', {}))}
- Reproduce: `python scripts/train_demo_models.py --work WORK --only {run}` (and the runs it starts from), then
  `python scripts/install_demo_models.py --work WORK --only {model_id}`
{figures}{notes}
## Configuration

```json
{json.dumps(payload['config'], indent=1)}
```

## Limitations

Phantom anatomy is simplified (tubes and ellipsoids), node appearance is synthetic, and the cohort is small (36
training/validation cases at 1.8 x 1.8 x 2.5 mm). `lnstaging run` resamples stage 1's input to that voxel size
(recorded in the checkpoint as training_data.spacing_mm) and the probabilities back onto the CT grid.
"""


def _site_note(site: str) -> str:
    if site != "any":
        return f"- Body site: {site} (not applied by `lnstaging run` to a case of another site)\n"
    return ("- Body site: any. It needs no organ masks (no attention map), so it runs on any site, but it learnt lymph "
            "nodes from abdominal phantoms only: on a head-and-neck or thoracic patient its output demonstrates the "
            "pipeline, nothing more.\n")


def install_models(work: Path, resources: Path = RESOURCES, only: list[str] | None = None) -> list[dict]:
    """Install every demo model (or those in ``only``) whose checkpoint and evaluation are in ``work`` into
    ``resources``; the catalogue keeps the entries of the others."""
    target = resources / "models"
    target.mkdir(parents=True, exist_ok=True)
    previous = {m["id"]: m for m in _json(resources / "Models.json").get("models", [])}
    entries = []
    for model_id, (task, checkpoint, evaluation, inputs, site) in DEMO_MODELS.items():
        source = work / checkpoint
        if not source.is_file() or not (work / evaluation).is_file() or (only and model_id not in only):
            if model_id in previous:
                entries.append(previous[model_id])
            print(f"not re-installed {model_id}: " + ("not asked for" if only and model_id not in only else
                                                       f"{source} or its evaluation is missing")
                  + (" (its current entry is kept)" if model_id in previous else ""))
            continue
        payload = load_checkpoint(source)
        report = _json(work / evaluation)
        if task == "patient" and payload["config"].get("use_ln_volume", True) \
                and report.get("ln_volume_source", "gtv_ln.nii.gz") == "gtv_ln.nii.gz":
            raise SystemExit(f"{work / evaluation} was measured with gtv_ln.nii.gz, which gives the phantom's label "
                             "away: evaluate the patient model with the pipeline's volumes (--ln-volumes, "
                             "train_demo_models.py does) before installing it.")
        if task == "patient" and payload["config"].get("use_ln_volume", True) and not (
                str(payload.get("training_data", {}).get("ln_volume_source", "")).endswith("(predicted)")
                and (source.parent / "cross_fit").is_dir()):
            raise SystemExit(f"{source} was not trained on cross-fitted volumes (its training_data must name "
                             f"predicted volumes and {source.parent / 'cross_fit'} hold their trainings): train it as "
                             "train_demo_models.py's patient_predicted run does (predict-volumes --cross-fit 4).")
        shutil.copyfile(source, target / f"{model_id}.pt")
        size = (target / f"{model_id}.pt").stat().st_size
        metrics = headline(task, report)
        if task == "cls":
            metrics["froc"] = froc_operating_points(report)
        rescore = _json((work / checkpoint).with_name("eval_rescore_test.json"))
        rescore_external = _json((work / checkpoint).with_name("eval_rescore_external.json"))
        (target / f"{model_id}.md").write_text(model_card(model_id, task, payload, report, size, site, rescore,
                                                          rescore_external))
        entries.append({"id": model_id, "version": "0.1.0", "task": task, "file": f"models/{model_id}.pt",
                        "sha256": sha256_of(target / f"{model_id}.pt"), "inputs": inputs,
                        "training_data": {"cohort": "phantom seed 11, 48 medium cases, 4 folds + 12 test",
                                          "kind": "synthetic", **payload.get("training_data", {})},
                        "body_site": site, "training_domain": "synthetic phantom",
                        "model_card": f"models/{model_id}.md", "metrics": metrics,
                        "default": model_id not in NOT_DEFAULT,
                        "size_bytes": size, "license": "Apache-2.0",
                        "description": f"Demo {task} model trained on phantoms (small preset)"
                                       f"{WHAT_ELSE.get(model_id, '')}. Not for clinical use."})
    catalogue = {"$schema": "Models.schema.json", "format": "lnstaging-models/1", "models": entries}
    (resources / "Models.json").write_text(json.dumps(catalogue, indent=2) + "\n")
    return entries


def install_demo_case(work: Path, case_id: str) -> None:
    from LNStagingLib.dataset.format import PDAC20_LABELS, read_dataset, write_description

    cohort = read_dataset(work / "phantom_medium")
    demo = RESOURCES / "DemoCase"
    shutil.rmtree(demo, ignore_errors=True)
    shutil.copytree(cohort.case(case_id).root, demo / "cases" / case_id)
    write_description(demo, name="lnstaging-demo", case_ids=[case_id], organ_labels=PDAC20_LABELS,
                      organ_mapping="pdac20", folds={}, test=[case_id],
                      description=f"One held-out phantom patient ({case_id} of lnstaging phantom --seed 11 --cases 48 "
                                  "--size medium --direction mixed). Synthetic, not patient data.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--demo-case", help="a test case id of the phantom cohort to bundle (default: keep the "
                                              "bundled demo case)")
    parser.add_argument("--only", nargs="*", choices=list(DEMO_MODELS), help="install only these models")
    args = parser.parse_args()
    entries = install_models(args.work, only=args.only)
    if args.demo_case:
        install_demo_case(args.work, args.demo_case)
    print(f"catalogue holds {len(entries)} models" + (f"; demo case {args.demo_case}" if args.demo_case else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
