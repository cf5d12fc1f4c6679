#!/usr/bin/env python
"""Train every model of both papers on a phantom cohort and evaluate each on its held-out test cases.
scripts/install_demo_models.py then copies the demo weights into Resources/ and scripts/results_tables.py writes
docs/RESULTS.md.

Reproduces every number of docs/RESULTS.md. Not run in CI (about three hours on 2 CPU cores). Each experiment is
skipped when its evaluation JSON exists, so an interrupted run resumes. Experiments run one per process with one
torch thread each; --jobs N runs N at once (2 on a 2-core machine).

RESULTS.md states a conclusion only when two training seeds agree (scripts/results_tables.py). The second seed of
every experiment behind a conclusion (REPLICATED, with the runs they start from) goes to WORK/seed2 and reads the
cohorts of WORK (the same patients, drawn once):

  python scripts/train_demo_models.py --work WORK [--jobs 2] [--only NAME ...]            (seed 1, everything)
  python scripts/train_demo_models.py --work WORK/seed2 --cohorts WORK --seed 2 --replicates  (seed 2)
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COHORT_ARGS = ["--seed", "11", "--cases", "48", "--size", "medium", "--direction", "mixed", "--folds", "4",
               "--test-fraction", "0.25"]
# CPU recipe for the small preset: more optimiser steps than the paper's (Adam 1e-4, accumulation 8), which on 27
# training patients would give only ~3 steps an epoch.
# --roi sphere: the phantom's look-alikes are point candidates without a mask while its nodes have one, so mask
# ROIs would let the classifier learn "has a mask" (training/cls.py warns about it); spheres for all keep it fair.
# Stage-1 recipe (seg_attention and the cross-fitted stage-1 models behind the patient model's training volumes).
SEG_RECIPE = ["--pet", "--epochs", "60"]
CLS_RECIPE = ["--epochs", "20", "--lr", "5e-4", "--accumulate", "2", "--roi", "sphere"]
# The same cohort drawn with --relations strong: a node's status follows its neighbours (does GNNp then beat the CNN?).
# And drawn with --look-alikes spread: half the false candidates beyond the attention bands (does attention help then?).
COHORTS = {"phantom_medium": COHORT_ARGS, "phantom_strong": [*COHORT_ARGS, "--relations", "strong"],
           "phantom_spread": [*COHORT_ARGS, "--look-alikes", "spread"]}
# Independent test cohorts (another seed, 48 of 49 cases held out): four times the test patients of the cohorts
# above, for the classifier rows whose differences are small.
EXTERNAL_ARGS = ["--seed", "12", "--cases", "49", "--size", "medium", "--direction", "mixed", "--folds", "1",
                 "--test-fraction", "0.98"]
EXTERNAL = {"phantom_medium": ("phantom_medium_test", EXTERNAL_ARGS),
            "phantom_strong": ("phantom_strong_test", [*EXTERNAL_ARGS, "--relations", "strong"])}


# The runs behind every comparison docs/RESULTS.md may draw a conclusion from (scripts/results_tables.py COMPARISONS):
# GNNp vs CNN + priors (and vs the CNN trained as long), GNNp vs GNNb, on both cohorts; the re-scoring rows;
# attention vs the paper's baseline; the patient model with vs without the LN volume; Table 1 with the paper's mask
# ROI (what PET and the priors add) and its sphere ablation. --replicates trains these.
REPLICATED = ("cls_cnn_prior", "cls_gnnp", "cls_gnnb", "cls_cnn_prior_more", "strong_cls_cnn_prior", "strong_cls_gnnp",
              "strong_cls_gnnb", "strong_cls_cnn_prior_more", "cls_gnnp_reveal", "strong_cls_gnnp_reveal",
              "seg_attention", "seg_plain", "patient", "patient_predicted", "patient_image_only",
              "cls_cnn_ct_mask", "cls_cnn_pet_mask", "cls_cnn_prior_mask", "cls_cnn_ct", "cls_cnn_pet")


def experiments(work: Path, seed: int = 1, cohorts: Path | None = None) -> dict[str, dict]:
    """name -> {train: argv, evaluate: argv, after: [names it needs]}. Runs are inside ``work``, cohorts inside
    ``cohorts`` (default ``work``); ``seed`` is every training run's seed (a replicate in another work folder, e.g.
    --seed 2, shows the seed-to-seed spread)."""
    run = lambda name: str(work / name)  # noqa: E731
    cohorts = Path(cohorts or work)

    def cls(name, *flags, init=None, cohort="phantom_medium"):
        recipe = CLS_RECIPE if "--roi" not in flags else [a for a in CLS_RECIPE if a not in ("--roi", "sphere")]
        train = ["train", "cls", "--data", str(cohorts / cohort), "--out", run(name), "--config", "small", *recipe,
                 "--seed", str(seed), *flags]
        if init:
            train += ["--init-cnn", str(work / init / "cls_model.pt")]
        external = str(cohorts / EXTERNAL[cohort][0])
        return {"train": train,
                "evaluate": ["evaluate", "cls", "--data", str(cohorts / cohort), "--model",
                             run(name) + "/cls_model.pt"],
                "result": run(name) + "/eval_cls_test.json", "after": [init] if init else [],
                "external": ["evaluate", "cls", "--data", external, "--model", run(name) + "/cls_model.pt",
                             "--out", run(name) + "/eval_cls_external.json"],
                "external_result": run(name) + "/eval_cls_external.json"}

    def seg(name, *flags, cohort="phantom_medium"):
        data = str(cohorts / cohort)
        return {"train": ["train", "seg", "--data", data, "--out", run(name), "--config", "small", "--seed", str(seed),
                          "--phase", "all", *SEG_RECIPE, *flags],
                "evaluate": ["evaluate", "seg", "--data", data, "--model", run(name) + "/seg_model.pt",
                             "--identifier", run(name) + "/identifier.pt"],
                "result": run(name) + "/eval_seg_test.json", "after": []}

    def patient(name, *flags, volumes="pipeline", cross_fit=False):
        """A patient run. ``volumes="pipeline"``: the 12 test patients are evaluated with the LN volume the deployed
        stage 1 (seg_attention) predicts for them, never gtv_ln (> 0 exactly for the phantom's positive patients:
        issue 29); ``cross_fit``: trained on cross-fitted volumes of the training patients (predict-volumes
        --cross-fit 4 with seg_attention's recipe), as paper 2 trains eq. 7."""
        data = str(cohorts / "phantom_medium")
        train = ["train", "patient", "--data", data, "--out", run(name), "--config", "small", "--seed", str(seed),
                 *flags]
        evaluate = ["evaluate", "patient", "--data", data, "--model", run(name) + "/patient_model.pt",
                    "--out", run(name) + "/eval_patient_test.json"]
        prepare = []
        if volumes == "pipeline":
            test_volumes = run(name) + "/test_volumes.csv"
            prepare.append(["predict-volumes", "--data", data, "--split", "test", "--models",
                            f"seg={run('seg_attention')}/seg_model.pt,identification={run('seg_attention')}/identifier.pt",
                            "--out", test_volumes, "--threads", "1"])
            evaluate += ["--ln-volumes", test_volumes]
        if cross_fit:
            train_volumes = run(name) + "/train_volumes.csv"
            prepare.append(["predict-volumes", "--data", data, "--cross-fit", "4", "--config", "small", "--seed",
                            str(seed), f"--seg-args={shlex.join(SEG_RECIPE)}", "--work", run(name) + "/cross_fit",
                            "--out", train_volumes, "--threads", "1"])
            train += ["--ln-volumes", train_volumes]
        return {"train": train, "evaluate": evaluate, "result": run(name) + "/eval_patient_test.json",
                "after": ["seg_attention"] if volumes == "pipeline" else [], "prepare": prepare}

    def rescoring(spec, baseline, cohort):
        """Adds the re-scoring evaluation (scripts/rescore_evaluation.py) against the CNN + priors ``baseline``."""
        model = spec["evaluate"][spec["evaluate"].index("--model") + 1]
        out = str(Path(model).with_name("eval_rescore_test.json"))
        command = [str(ROOT / "scripts" / "rescore_evaluation.py"), "--model", model, "--baseline",
                   str(work / baseline / "cls_model.pt")]
        spec["rescore"] = [*command, "--data", str(cohorts / cohort), "--out", out]
        spec["rescore_result"] = out
        # the 48 patients of the independent test cohort (the reference regression fitted on the training cohort)
        external = str(Path(model).with_name("eval_rescore_external.json"))
        spec["rescore_external"] = [*command, "--data", str(cohorts / EXTERNAL[cohort][0]), "--fit-data",
                                    str(cohorts / cohort), "--out", external]
        spec["rescore_external_result"] = external
        return spec

    return {
        # paper 1, Table 1 rows
        "cls_cnn_ct": cls("cls_cnn_ct", "--head", "cnn", "--no-pet", "--no-priors"),
        "cls_cnn_pet": cls("cls_cnn_pet", "--head", "cnn", "--no-priors"),
        "cls_cnn_prior": cls("cls_cnn_prior", "--head", "cnn"),
        "cls_gnnb": cls("cls_gnnb", "--head", "gnnb", init="cls_cnn_prior"),
        "cls_gnnp": cls("cls_gnnp", "--head", "gnnp", init="cls_cnn_prior"),
        # Table 1 with the paper's ROI-GAP over each candidate's own mask (--roi label; the rows above pool over a
        # sphere: an ablation). The phantom's look-alikes have no mask (a sphere then), its nodes have one.
        "cls_cnn_ct_mask": cls("cls_cnn_ct_mask", "--head", "cnn", "--no-pet", "--no-priors", "--roi", "label"),
        "cls_cnn_pet_mask": cls("cls_cnn_pet_mask", "--head", "cnn", "--no-priors", "--roi", "label"),
        "cls_cnn_prior_mask": cls("cls_cnn_prior_mask", "--head", "cnn", "--roi", "label"),
        # control: the CNN + prior trained 20 epochs more, as the graph heads are (same budget, no graph)
        "cls_cnn_prior_more": cls("cls_cnn_prior_more", "--head", "cnn", init="cls_cnn_prior"),
        # the CNN + prior and GNN rows again on the cohort with strong relations between nodes
        "strong_cls_cnn_prior": cls("strong_cls_cnn_prior", "--head", "cnn", cohort="phantom_strong"),
        "strong_cls_gnnp": cls("strong_cls_gnnp", "--head", "gnnp", init="strong_cls_cnn_prior", cohort="phantom_strong"),
        "strong_cls_gnnb": cls("strong_cls_gnnb", "--head", "gnnb", init="strong_cls_cnn_prior", cohort="phantom_strong"),
        "strong_cls_gnnp_first": cls("strong_cls_gnnp_first", "--head", "gnnp", "--init-scope", "first",
                                     init="strong_cls_cnn_prior", cohort="phantom_strong"),
        "strong_cls_cnn_prior_more": cls("strong_cls_cnn_prior_more", "--head", "cnn", init="strong_cls_cnn_prior",
                                         cohort="phantom_strong"),
        # issue 19: GNNp with the review state as input; re-scoring the pending candidates from the top-k decisions.
        # The head alone on the CNN + priors' CNN (--freeze-cnn): the re-scoring is compared with that very CNN. A
        # head epoch costs a quarter of a CNN epoch, so the head gets 40 (the last --epochs counts).
        "cls_gnnp_reveal": rescoring(cls("cls_gnnp_reveal", "--head", "gnnp", "--reveal-labels", "--freeze-cnn",
                                         "--epochs", "40", init="cls_cnn_prior"), "cls_cnn_prior", "phantom_medium"),
        "strong_cls_gnnp_reveal": rescoring(cls("strong_cls_gnnp_reveal", "--head", "gnnp", "--reveal-labels",
                                                "--freeze-cnn", "--epochs", "40", init="strong_cls_cnn_prior",
                                                cohort="phantom_strong"),
                                            "strong_cls_cnn_prior", "phantom_strong"),
        # paper 2, segmentation with and without the distance-guided attention (+ identification)
        "seg_attention": seg("seg_attention"),
        "seg_plain": seg("seg_plain", "--no-attention"),  # the paper's baseline: no gate, no informative negatives
        # ablation: informative negatives from the attention map but no gate (what seg_plain was before issue 17)
        "seg_negatives_only": seg("seg_negatives_only", "--attention-negatives-only"),
        # the same pair on the cohort whose look-alikes lie partly beyond the attention bands
        "spread_seg_attention": seg("spread_seg_attention", cohort="phantom_spread"),
        "spread_seg_plain": seg("spread_seg_plain", "--no-attention", cohort="phantom_spread"),
        # paper 2, patient level. Every run with the LN volume is tested on the volumes the pipeline predicts.
        # trained on the ground-truth volume (the demo-patient of before issue 29): what deploying it gives
        "patient": patient("patient"),
        # paper 2's eq. 7 as published: trained on cross-fitted predicted volumes, tested on predicted ones
        # (demo-patient: scripts/install_demo_models.py)
        "patient_predicted": patient("patient_predicted", cross_fit=True),
        # the image branch alone: without the largest positive LN volume
        "patient_image_only": patient("patient_image_only", "--no-ln-volume", volumes=None),
    }


def with_prerequisites(names, specs: dict) -> list[str]:
    """``names`` and, before them, every run they start from (``after``), transitively; each once, in order."""
    ordered: list[str] = []

    def add(name):
        for before in specs[name]["after"]:
            add(before)
        if name not in ordered:
            ordered.append(name)
    for name in names:
        add(name)
    return ordered


def lnstaging(argv: list[str], log: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    with open(log, "a") as fh:
        fh.write(f"\n$ lnstaging {' '.join(argv)}\n")
        fh.flush()
        subprocess.run([sys.executable, "-m", "LNStagingLib.cli", *argv], cwd=ROOT, env=env, stdout=fh,
                       stderr=subprocess.STDOUT, check=True)


def run_experiment(name: str, spec: dict, work: Path) -> float:
    log = work / f"{name}.log"
    seconds = 0.0
    if not Path(spec["result"]).is_file():
        t = time.perf_counter()
        for argv in spec.get("prepare", []):  # LN volume files (each kept once written: resumable)
            if not Path(argv[argv.index("--out") + 1]).is_file():
                lnstaging(argv, log)
        # no result yet: an interrupted run continues from its *_last.pt (resume is exact: the epoch order comes from
        # the seed and the epoch); a run with no resume point starts again and replaces what a failed run left
        out = Path(spec["train"][spec["train"].index("--out") + 1])
        lnstaging([*spec["train"], "--resume" if any(out.glob("*_last.pt")) else "--overwrite"], log)
        lnstaging(spec["evaluate"], log)
        seconds = time.perf_counter() - t
        (work / f"{name}.seconds").write_text(f"{seconds:.0f}\n")
    if "external" in spec and not Path(spec["external_result"]).is_file():
        lnstaging(spec["external"], log)
    for step in ("rescore", "rescore_external"):
        if step in spec and not Path(spec[f"{step}_result"]).is_file():
            env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
            with open(log, "a") as fh:
                subprocess.run([sys.executable, *spec[step]], cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
                               check=True)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="folder for the cohort, runs and logs")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="experiment names (default: all) and the runs they start from")
    parser.add_argument("--seed", type=int, default=1, help="training seed of every run (default 1)")
    parser.add_argument("--cohorts", type=Path, help="folder of the cohorts (default: --work); a seed replicate "
                        "reads the cohorts of the seed-1 work folder")
    parser.add_argument("--replicates", action="store_true",
                        help="only the experiments behind RESULTS.md's conclusions (REPLICATED) and the runs they "
                             "start from")
    args = parser.parse_args()
    if args.replicates and args.only:
        parser.error("--replicates chooses the experiments; do not combine it with --only")
    args.work.mkdir(parents=True, exist_ok=True)
    cohorts = args.cohorts or args.work
    cohorts.mkdir(parents=True, exist_ok=True)
    specs = experiments(args.work, args.seed, cohorts)
    unknown = [n for n in args.only or [] if n not in specs]
    if unknown:
        parser.error(f"unknown experiment(s) {', '.join(unknown)}; known: {', '.join(specs)}")
    # --only NAME also runs what NAME starts from (a finished run is skipped), so a model card's command works
    wanted = with_prerequisites(REPLICATED if args.replicates else (args.only or list(specs)), specs)
    # a cohort is drawn only when a wanted experiment reads it (its folder is an argument of that run's commands)
    argvs = [value for name in wanted for value in [*specs[name].values(), *specs[name].get("prepare", [])]
             if isinstance(value, list) and all(isinstance(a, str) for a in value)]
    arguments = {argument for argv in argvs for argument in argv}
    for cohort, cohort_args in [*COHORTS.items(), *EXTERNAL.values()]:
        if str(cohorts / cohort) in arguments and not (cohorts / cohort / "dataset.json").is_file():
            lnstaging(["phantom", "--out", str(cohorts / cohort), *cohort_args], cohorts / "phantom.log")
    for cohort in [c for c in COHORTS if (cohorts / c / "dataset.json").is_file()]:
        for script in ("relational_signal", "attention_coverage"):  # analyses of the cohort itself (seconds)
            target = cohorts / f"{script}_{cohort}.json"
            if not target.is_file():
                with open(target, "w") as fh:
                    subprocess.run([sys.executable, str(ROOT / "scripts" / f"{script}.py"), "--data",
                                    str(cohorts / cohort)], stdout=fh, check=True)
    done: set[str] = {n for n in specs if Path(specs[n]["result"]).is_file()
                      and Path(specs[n].get("external_result", specs[n]["result"])).is_file()
                      and Path(specs[n].get("rescore_result", specs[n]["result"])).is_file()
                      and Path(specs[n].get("rescore_external_result", specs[n]["result"])).is_file()}
    pending = [n for n in wanted if n not in done]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        running: dict = {}
        while pending or running:  # start each experiment as soon as a job slot and its prerequisites are free
            for name in [n for n in pending if all(a in done for a in specs[n]["after"])]:
                if len(running) < args.jobs:
                    running[pool.submit(run_experiment, name, specs[name], args.work)] = name
                    pending.remove(name)
            if not running:
                raise SystemExit(f"cannot run {pending}: their prerequisites were not asked for")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                name = running.pop(future)
                print(f"{name}: {future.result():.0f} s", flush=True)
                done.add(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
