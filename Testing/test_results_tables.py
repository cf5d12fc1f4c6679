"""scripts/results_tables.py: a comparison is a conclusion only when both training seeds agree in sign and both
paired intervals exclude 0; missing runs read "not run"; a partly finished work folder gives a document, and the
hand-written "## Real" sections of the previous RESULTS.md are kept. Small fake evaluation JSONs, no training."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import results_tables as rt  # noqa: E402
from train_demo_models import REPLICATED, experiments, with_prerequisites  # noqa: E402

N_PATIENTS = 16


def _cls_report(quality: float) -> dict:
    """Each patient: 2 GTV_LN and 4 false candidates. ``quality`` of the patients rank their nodes on top, the rest
    rank them below every false candidate (so a better model differs on many patients, not on one)."""
    probabilities, truth = {}, {}
    for i in range(N_PATIENTS):
        good = i < quality * N_PATIENTS
        nodes = [0.9, 0.8] if good else [0.05, 0.04]
        probabilities[f"p{i:02d}"] = nodes + [0.5, 0.4, 0.3, 0.2]
        truth[f"p{i:02d}"] = {"labels": [1, 1, 0, 0, 0, 0], "node_ids": [1, 2, 0, 0, 0, 0], "n_lesions": 2}
    metrics = {"mFROC": quality, "mFROC_95ci": [0.0, 1.0], "patients": N_PATIENTS, "lesions": 2 * N_PATIENTS,
               "candidates": 6 * N_PATIENTS, "sens@2FP": quality, "sens@3FP": quality, "sens@4FP": quality,
               "sens@6FP": quality, "F1@0.5": quality, "best_F1": {"f1": quality}}
    return {"metrics": metrics, "probabilities": probabilities, "truth": truth}


def _patient_report(separation: float, ln_volume_source: str = "test_volumes.csv") -> dict:
    """8 positive and 4 negative patients; positives score ``separation`` above the negatives on average."""
    patients = [{"case": f"p{i:02d}", "label": int(i < 8), "probability": 0.4 + separation * (i < 8) + 0.01 * (i % 5)}
                for i in range(12)]
    metrics = {"auc": {"value": 0.9, "low": 0.8, "high": 1.0}}
    return {"n_patients": 12, "n_positive": 8, "metrics": metrics, "patients": patients,
            "ln_volume_source": ln_volume_source}


def _seg_report(tp: int) -> dict:
    rows = [{"case": f"p{i:02d}", "positive": {"dice": 0.5, "tp": tp, "n_pred": 3, "n_ref": 3},
             "class_agnostic": {"dice": 0.6, "tp": tp, "n_pred": 3, "n_ref": 3}} for i in range(N_PATIENTS)]
    return {"n_cases": N_PATIENTS, "class_agnostic": {"dice": 0.6, "f_measure": tp / 3, "n_ref": 3 * N_PATIENTS},
            "positive": {"recall": tp / 3, "precision": tp / 3, "f_measure": tp / 3, "n_ref": 3 * N_PATIENTS},
            "per_case": rows}


def _write(path: str, report: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report))


def test_conclusion_needs_both_seeds_to_agree_with_intervals_excluding_zero():
    assert rt.conclusion((0.1, 0.02, 0.2), (0.05, 0.01, 0.1), "GNNp", "CNN") == "**GNNp higher**"
    assert rt.conclusion((-0.1, -0.2, -0.02), (-0.05, -0.1, -0.01), "GNNp", "CNN") == "**CNN higher**"
    assert rt.conclusion((0.1, 0.02, 0.2), (0.05, -0.01, 0.1), "GNNp", "CNN") == \
        "not supported (seed 2 interval contains 0)"
    assert rt.conclusion((0.1, 0.02, 0.2), (-0.1, -0.2, -0.02), "A", "B") == \
        "not supported (the seeds disagree in sign)"
    assert rt.conclusion((0.1, 0.02, 0.2), "not run", "A", "B") == "not supported (seed 2: not run)"
    assert rt.conclusion("not run", "not run", "A", "B") == "not supported (seed 1: not run; seed 2: not run)"
    # a lower bound printed +0.000 does not exclude 0 (issue 29: a bold row whose bound read +0.000)
    assert rt.conclusion((0.025, 0.0003, 0.05), (0.059, 0.006, 0.091), "A", "B") == \
        "not supported (seed 1 interval contains 0)"
    assert rt.conclusion((0.025, 0.0006, 0.05), (0.059, 0.006, 0.091), "A", "B") == "**A higher**"


def test_difference_intervals_are_clipped_to_plus_minus_one():
    assert rt.clipped((0.9, 0.7, 1.12)) == (0.9, 0.7, 1.0) and rt.clipped((-0.8, -1.3, -0.2)) == (-0.8, -1.0, -0.2)
    assert rt.clipped("not run") == "not run"


def test_comparison_rows_from_fake_runs(tmp_path):
    """GNNp better than the CNN on both seeds: a conclusion; vs GNNb only on seed 1: not supported; the control of
    seed 2 missing: "not run" and not supported; the patient AUC and stage 1's F measured on the same patients."""
    work = tmp_path / "work"
    seeds = {1: experiments(work), 2: experiments(work / "seed2", 2, cohorts=work)}
    for seed, specs in seeds.items():
        _write(specs["cls_gnnp"]["result"], _cls_report(0.75))
        _write(specs["cls_cnn_prior"]["result"], _cls_report(0.25))
        _write(specs["cls_gnnb"]["result"], _cls_report(0.25 if seed == 1 else 0.75))
        _write(specs["patient"]["result"], _patient_report(0.5))
        # an old run tested with gtv_ln.nii.gz (seed 1): the phantom's label, never a conclusion
        _write(specs["patient_predicted"]["result"],
               _patient_report(0.5, "gtv_ln.nii.gz" if seed == 1 else "test_volumes.csv"))
        _write(specs["patient_image_only"]["result"], _patient_report(-0.05))
        _write(specs["seg_attention"]["result"], _seg_report(2))
        _write(specs["seg_plain"]["result"], _seg_report(2 if seed == 1 else 1))
    _write(seeds[1]["cls_cnn_prior_more"]["result"], _cls_report(0.25))
    rescore = {"k": {"3": {"pending_lesions": 20, "rescored_minus_nothing": {"difference": 0.1, "95ci": [0.02, 0.2]},
                           "rescored_minus_baseline": {"difference": 0.1, "95ci": [-0.02, 0.2]},
                           "regression_minus_baseline": {"difference": 0.05, "95ci": [0.01, 0.1]}}}}
    for folder in (work, work / "seed2"):
        _write(str(folder / "cls_gnnp_reveal" / "eval_rescore_test.json"), rescore)
    rows = rt.comparison_rows(seeds, {1: work, 2: work / "seed2"})
    by = {(r["question"], r["comparison"], r["test_set"]): r for r in rows}

    gnnp = by[("GNNp vs CNN + priors", "GNNp - CNN + priors", "12 test patients")]
    assert gnnp["conclusion"] == "**GNNp higher**"
    assert all(v[1] > 0 for v in gnnp["values"].values())
    assert by[("GNNp vs CNN + priors", "GNNp - CNN + priors", "48 new patients")]["values"] == \
        {1: "not run", 2: "not run"}
    gnnb = by[("GNNp vs GNNb", "GNNp - GNNb", "12 test patients")]
    assert gnnb["values"][2][0] == 0 and gnnb["conclusion"] == "not supported (seed 2 interval contains 0)"
    control = by[("GNNp vs CNN + priors", "GNNp - CNN + priors trained as long", "12 test patients")]
    assert control["values"][2] == "not run" and control["conclusion"] == "not supported (seed 2: not run)"
    auc = by[("patient model with vs without the LN volume",
              "LN volume (trained on ground truth) - tumour slices only", "12 test patients")]
    assert auc["values"][1][0] == pytest.approx(1.0 - auc_of_image_only())
    assert auc["conclusion"] == ("**LN volume (trained on ground truth) higher**; rests on 4 negative patients "
                                 "(fewer than 10)")
    predicted = by[("patient model with vs without the LN volume",
                    "LN volume (trained on predicted volumes) - tumour slices only", "12 test patients")]
    # seed 1 was tested with gtv_ln.nii.gz: its difference is withheld (no figure), seed 2's is shown; no conclusion
    assert predicted["values"][1] == "withheld: tested with gtv_ln.nii.gz, the phantom's label"
    assert predicted["values"][2][1] > 0
    assert predicted["conclusion"].startswith("no conclusion: seed 1 tested with the ground-truth LN volume")
    seg = by[("attention vs the paper's baseline", "attention - baseline (seg_plain)", "12 test patients")]
    assert seg["values"][1] == (0.0, 0.0, 0.0) and seg["values"][2][0] == pytest.approx(1 / 3)
    assert seg["conclusion"] == "not supported (seed 1 interval contains 0)"
    medium = [r for r in rows if r["question"] == "re-scoring from review decisions (phantom_medium, k = 3)"
              and r["test_set"] == "12 test patients"]
    assert [r["conclusion"] for r in medium] == ["**re-scored higher**",
                                                  "not supported (seed 1 and seed 2 interval contains 0)",
                                                  "**reference regression higher**"]
    strong = [r for r in rows if r["question"].startswith("re-scoring from review decisions (phantom_strong")]
    assert strong and all(r["values"] == {1: "not run", 2: "not run"} for r in strong)

    table = rt.comparisons_table(rows)
    assert table.count("\n") == len(rows) + 1 and "| not run | not run |" in table
    head = rt.headline(rows, seeds[1]).splitlines()
    assert head[0].startswith("- Does GNNp beat the CNN + spatial priors")
    assert head[1].startswith("  - on the default cohort: **Supported: GNNp higher**")
    assert "seed 1 +0.250 [+0.125, +0.375], seed 2 +0.250 [" in head[1]
    assert head[2].startswith("  - on `--relations strong`: **Not run**")
    assert head[4].startswith("  - on the default cohort: **Not supported") and "seed 2 +0.333 [" in head[4]
    rescoring = head[head.index(next(line for line in head if line.startswith("- Do the reviewer's decisions"))):]
    assert ("  - on the default cohort, 12 test patients, after k = 3 decisions: re-scored - nothing revealed: "
                                   "**re-scored higher** (seed 1 +0.100 [+0.020, +0.200], seed 2 +0.100 "
                                   "[+0.020, +0.200]); reference regression - CNN + priors: **reference "
                                   "regression higher** (seed 1 +0.050 [+0.010, +0.100], seed 2 +0.050 [+0.010, "
                                   "+0.100]).") in rescoring
    assert ("  - on `--relations strong`, 48 new patients, after k = – decisions: re-scored - nothing revealed: not supported (seed 1: "
            "not run; seed 2: not run) (seed 1 not run, seed 2 not run); reference regression - CNN + priors: not "
            "supported (seed 1: not run; seed 2: not run) (seed 1 not run, seed 2 not run).") \
        in rescoring
    opposite = dict(gnnp, conclusion="**CNN + priors higher**")
    assert rt.verdict([gnnp, opposite]).startswith("Contradictory")
    assert rt.verdict([r for r in rows if r["question"].startswith("GNNp vs CNN + priors (--relations")]) == "Not run"


def auc_of_image_only() -> float:
    from LNStagingLib.evaluation.metrics import roc_auc

    report = _patient_report(-0.05)
    return roc_auc([p["label"] for p in report["patients"]], [p["probability"] for p in report["patients"]])


def test_every_compared_run_has_a_seed_replicate():
    specs = experiments(Path("/nonexistent"))
    compared = {name for row in rt.COMPARISONS for name in row[4:6]} | {run for _, run in rt.RESCORE_ROWS}
    assert compared <= set(REPLICATED)
    replicates = with_prerequisites(REPLICATED, specs)
    assert set(replicates) == set(REPLICATED)  # the replicated runs start only from replicated runs
    for name in replicates:
        assert all(replicates.index(before) < replicates.index(name) for before in specs[name]["after"])
    seed2 = experiments(Path("/w/seed2"), 2, cohorts=Path("/w"))
    assert "/w/phantom_medium" in seed2["cls_gnnp"]["train"] and "/w/seed2/cls_gnnp" in seed2["cls_gnnp"]["train"]
    assert seed2["cls_gnnp"]["train"][seed2["cls_gnnp"]["train"].index("--seed") + 1] == "2"


def test_script_on_a_partly_finished_work_folder_keeps_real_sections(tmp_path):
    work = tmp_path / "work"
    specs = experiments(work)
    _write(specs["cls_cnn_prior"]["result"], _cls_report(0.25))
    _write(specs["patient"]["result"], _patient_report(0.5))
    (work / "seg_plain").mkdir(parents=True)
    (work / "seg_plain" / "seg_model.pt").write_bytes(b"half written")  # a run still training
    Path(specs["seg_attention"]["result"]).parent.mkdir(parents=True)
    Path(specs["seg_attention"]["result"]).write_text('{"n_cases": 12, "per_')  # a JSON being written
    out = tmp_path / "RESULTS.md"
    real = "## Real PET: hand-written\n\nQIN figures 9 / 10 nodes.\n\n### a subsection\n\nkept too\n"
    out.write_text("# old\n\n## Headline\n\nold generated text\n\n" + real + "## Old generated tail\n\ngone\n")
    for _ in range(2):  # run twice: the kept section appears once
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / "results_tables.py"), "--work", str(work),
                               "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "eval_seg_test.json is not complete JSON" in done.stderr
    text = out.read_text()
    assert text.count(real) == 1 and text.endswith(real) and "old generated text" not in text and "gone" not in text
    assert "| not run | not run | not supported (seed 1: not run; seed 2: not run) |" in text
    assert "checkpoint not readable yet" in text
    assert "8 positive, 4 negative" in text  # the class counts of the patient test set
    assert "Coverage note (8 positive / 4 negative test patients): nominal 95% AUC intervals contain" in text
    # the tables name their exact commands and seeds, the LN volume files included
    assert "--split test --models seg=WORK/seg_attention/seg_model.pt" in text
    assert "`lnstaging predict-volumes --data WORK/phantom_medium --cross-fit 4 --config small --seed 1" in text
    assert "`lnstaging train seg --data WORK/phantom_medium --out WORK/seg_attention --config small --seed 1" in text
    assert "**ablation**" in text and "`--roi label`" in text  # Table 1's sphere rows are labelled as such
    assert "| phantom_strong | 12 test patients | 2 | – | not run |" in text


def test_reveal_runs_are_evaluated_on_both_test_sets(tmp_path):
    """The re-scoring evaluation runs on the 12 held-out patients and on the 48 of the external cohort, whose
    reference regression is fitted on the training cohort (the external cohort has a single non-test patient)."""
    specs = experiments(tmp_path)
    for run, cohort in (("cls_gnnp_reveal", "phantom_medium"), ("strong_cls_gnnp_reveal", "phantom_strong")):
        spec = specs[run]
        assert spec["rescore"][spec["rescore"].index("--data") + 1] == str(tmp_path / cohort)
        external = spec["rescore_external"]
        assert external[external.index("--data") + 1] == str(tmp_path / f"{cohort}_test")
        assert external[external.index("--fit-data") + 1] == str(tmp_path / cohort)
        assert spec["rescore_external_result"].endswith(f"{run}/eval_rescore_external.json")


def test_run_times_mark_a_resumed_run(tmp_path):
    """train_demo_models.py's clock restarts when a run is resumed: such a figure must not read as the whole run."""
    (tmp_path / "seg_plain.seconds").write_text("3293\n")
    (tmp_path / "seg_plain.log").write_text("\n$ lnstaging train seg --out x --overwrite\n...\n$ lnstaging evaluate seg\n")
    (tmp_path / "cls_gnnb.seconds").write_text("284\n")
    (tmp_path / "cls_gnnb.log").write_text("\n$ lnstaging train cls --out y --overwrite\n"
                                           "\n$ lnstaging train cls --out y --resume\n\n$ lnstaging evaluate cls\n")
    (tmp_path / "seg_attention.seconds").write_text("2014\n")  # a resumed attempt, then started again from scratch
    (tmp_path / "seg_attention.log").write_text("\n$ lnstaging train seg --out z --resume\n"
                                                "\n$ lnstaging train seg --out z --overwrite\n")
    times = rt.run_times(tmp_path, ["seg_plain", "cls_gnnb", "seg_attention", "patient"])
    assert times == {"seg_plain": "3293", "cls_gnnb": "284 (resumed: last part only)", "seg_attention": "2014"}


def test_one_table_replaced_in_place_from_a_work_folder_of_its_runs_only(tmp_path):
    """--table mask writes the mask-ROI table from a work folder holding only its runs and replaces that table alone:
    every other line of the document (the sphere Table 1 with its figures included) stays as it was."""
    full, only_mask = tmp_path / "full", tmp_path / "mask"
    _write(experiments(full)["cls_cnn_prior"]["result"], _cls_report(0.25))
    out = tmp_path / "RESULTS.md"
    script = [sys.executable, str(ROOT / "scripts" / "results_tables.py"), "--out", str(out)]
    done = subprocess.run([*script, "--work", str(full)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    before = out.read_text().splitlines()
    specs = experiments(only_mask)
    _write(specs["cls_cnn_prior_mask"]["result"], _cls_report(0.25))
    _write(specs["cls_cnn_pet_mask"]["result"], _cls_report(0.75))
    _write(specs["cls_cnn_pet_mask"]["external_result"], _cls_report(0.5))
    done = subprocess.run([*script, "--work", str(only_mask), "--table", "mask"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    after = out.read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(before) == len(after) and [a.split("|")[1].strip() for a, _ in changed] == \
        ["+PET, mask ROI", "+spatial prior, mask ROI"]
    pet, prior = (b for _, b in changed)
    assert pet.startswith("| +PET, mask ROI | 16 / 32 / 96 | 0.750 [0.000, 1.000] |") and pet in done.stdout
    assert float(pet.split("|")[10].split()[0]) > 0  # the paired difference to the mask CNN + prior row
    assert "| 16 / 32, 0.500 [0.000, 1.000] | – |" in pet  # the new patients; the reference has no external JSON
    assert prior.startswith("| +spatial prior, mask ROI | 16 / 32 / 96 | 0.250 ")
    assert "| CNN (CT), mask ROI | not run |" in out.read_text()
    assert "| +spatial prior | 16 / 32 / 96 | 0.250 [0.000, 1.000] |" in out.read_text()  # the sphere row kept


def test_mask_seed2_table_and_comparisons_replaced_in_place(tmp_path):
    """The mask rows' seed 2 (WORK/seed2) and what PET and the priors add with the mask ROI, both seeds, are written
    from a work folder holding only the mask runs: CT only worse on both seeds is a conclusion, PET and the priors
    (each better on one seed only) are not; nothing else of the document changes."""
    full, only_mask = tmp_path / "full", tmp_path / "mask"
    out = tmp_path / "RESULTS.md"
    script = [sys.executable, str(ROOT / "scripts" / "results_tables.py"), "--out", str(out)]
    done = subprocess.run([*script, "--work", str(full)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    before = out.read_text().splitlines()
    assert any(line.startswith("| CNN (CT), mask ROI, seed 2 | not run |") for line in before)
    for seed, specs in ((1, experiments(only_mask)), (2, experiments(only_mask / "seed2", 2, cohorts=only_mask))):
        _write(specs["cls_cnn_prior_mask"]["result"], _cls_report(0.75))
        _write(specs["cls_cnn_ct_mask"]["result"], _cls_report(0.25))
        _write(specs["cls_cnn_pet_mask"]["result"], _cls_report(0.25 if seed == 1 else 0.75))
    for table in ("mask-seed2", "mask-comparisons"):
        done = subprocess.run([*script, "--work", str(only_mask), "--table", table], capture_output=True,
                              text=True, cwd=ROOT, timeout=120)
        assert done.returncode == 0, done.stderr
    after = out.read_text().splitlines()
    changed = [b for a, b in zip(before, after) if a != b]
    # the 3 seed-2 rows and the 2 comparisons on the 12 test patients (no run has the 48 new patients' JSON)
    assert len(before) == len(after) and [line.split("|")[1].strip() for line in changed] == \
        [f"{label}, seed 2" for label in ("CNN (CT), mask ROI", "+PET, mask ROI", "+spatial prior, mask ROI")] + \
        ["CT + PET + priors vs CT only (mask ROI)", "PET (mask ROI)", "spatial priors (mask ROI)"]
    rows = {tuple(c.strip() for c in line.split("|")[1:5]): line for line in after
            if line.startswith(("| CT + PET + priors vs CT only", "| PET (mask ROI)", "| spatial priors (mask ROI)"))}
    ct = rows[("CT + PET + priors vs CT only (mask ROI)", "CNN + priors - CNN (CT)", "mFROC", "12 test patients")]
    assert ct.endswith("| **CNN + priors higher** |")
    pet = rows[("PET (mask ROI)", "CNN (CT + PET) - CNN (CT)", "mFROC", "12 test patients")]
    assert pet.endswith("| not supported (seed 1 interval contains 0) |")  # equal on seed 1, better on seed 2
    priors = rows[("spatial priors (mask ROI)", "CNN + priors - CNN (CT + PET)", "mFROC", "12 test patients")]
    assert priors.endswith("| not supported (seed 2 interval contains 0) |")
    assert rows[("spatial priors (mask ROI)", "CNN + priors - CNN (CT + PET)", "mFROC", "48 new patients")] \
        .endswith("| not run | not run | not supported (seed 1: not run; seed 2: not run) |")
    assert any(line.startswith("| +PET, mask ROI, seed 2 | 16 / 32 / 96 | 0.750 ") for line in after)
    assert any(line.startswith("| CNN (CT), mask ROI | not run |") for line in after)  # seed 1's: not asked for


def test_one_table_refused_when_the_document_does_not_hold_it(tmp_path):
    out = tmp_path / "RESULTS.md"
    out.write_text("# Results\n\n| row | mFROC |\n|---|---|\n| CNN (CT) | 0.2 |\n")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "results_tables.py"), "--work", str(tmp_path),
                           "--out", str(out), "--table", "mask"], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert done.returncode != 0 and "0 tables with the rows CNN (CT), mask ROI" in done.stderr
    assert out.read_text() == "# Results\n\n| row | mFROC |\n|---|---|\n| CNN (CT) | 0.2 |\n"  # nothing lost


def test_patient_table_shows_no_figure_of_a_volume_model_tested_with_the_label(tmp_path):
    """A patient model that reads the LN volume and was tested with gtv_ln.nii.gz (> 0 exactly for the phantom's
    positive patients) shows no metric; the predicted-volume run is called cross-fitted only with its cross_fit/."""
    from results_tables import patient_table

    specs = experiments(tmp_path / "work")
    _write(specs["patient"]["result"], _patient_report(0.5, "gtv_ln.nii.gz"))
    _write(specs["patient_predicted"]["result"], _patient_report(0.3))
    _write(specs["patient_image_only"]["result"], _patient_report(-0.05, "gtv_ln.nii.gz"))
    table = patient_table(specs)
    auc_row = next(line for line in table.splitlines() if line.startswith("| auc |"))
    cells = [c.strip() for c in auc_row.strip("|").split("|")][1:]
    assert cells[0] == "withheld: tested with gtv_ln.nii.gz, the phantom's label"
    assert cells[1][0].isdigit() and cells[2][0].isdigit()  # pipeline-tested, and the image-only model (no volume)
    assert "in-sample (an earlier recipe, not cross-fitted)" in table
    (Path(specs["patient_predicted"]["result"]).parent / "cross_fit").mkdir()
    assert "trained on cross-fitted predicted volumes" in patient_table(specs)
