"""The study of config.yaml over seeds x task correlations, and issue 10's four checks over the runs.

    python experiments/pareto_simulator/run_seeds.py [--world experiments/pareto_simulator/world.yaml]
        [--seeds 1 2 3 4 5] [--task-correlation 0.2 0.8] [--epochs 4] [--evidence cross-fit|validation]
        [--runs runs/pareto_seeds] [--report-only]

For each (task_correlation, seed): `mtr simulate` (world.yaml: users x days and any world knob; the seed and the
correlation), `mtr build-dataset`, then the models and `mtr pareto` (config.yaml, with the oracle) of the evidence:

- cross-fit (the default): two fold models (`mtr fit --data.user_folds.held_out 0|1`), the study judged on the
  train and validation splits, each user's opportunities scored by the model that never saw the user;
- validation: one model trained on every user, the study judged on the validation split alone.

Each run goes into runs/pareto_seeds/users{U}_rho{R}_seed{S}/ with its output in log.txt there. A step whose
output exists is skipped, so an interrupted run resumes (an unfinished fit starts again; an unfinished study
resumes from its study.db). Then every finished run is read into seeds/results.json and seeds/results.md
(`mtr.experiments.pareto_seeds`; seeds/validation_only.* for --evidence validation), and the checks of the default
evidence into the "Seeds x task correlation" section of README.md.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

from mtr.experiments.oracle_gap import read_world
from mtr.experiments.pareto_seeds import checks, checks_table, run_row, runs_table
from mtr.io import read_json, write_json, write_results_section

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MODEL_CONFIG = ROOT / "configs" / "experiment" / "sim_mmoe.yaml"
FIT_DONE = "fit.done"


def mtr(args: list[str], log: Path) -> None:
    """Run one `mtr` command with this interpreter, appending its output to `log`; stop on failure."""
    start = time.perf_counter()
    with log.open("a") as stream:
        stream.write(f"$ mtr {' '.join(args)}\n")
        stream.flush()
        code = subprocess.call([sys.executable, "-m", "mtr.cli", *args], stdout=stream, stderr=subprocess.STDOUT)
    print(f"  mtr {args[0]}: {time.perf_counter() - start:.0f} s" + ("" if code == 0 else f", FAILED (see {log})"))
    if code != 0:
        raise SystemExit(f"mtr {args[0]} failed with status {code}; see {log}")


# Evidence -> (study folder, the fold models or None for one model on every user, splits judged, results name).
EVIDENCE = {
    "cross-fit": ("cross_fit", (0, 1), "train,validation", "results"),
    "validation": ("dr", None, "validation", "validation_only"),
}


def run_one(folder: Path, args: argparse.Namespace, seed: int, task_correlation: float) -> Path:
    """Simulate, build, fit and study one world in `folder` (steps whose outputs exist are skipped); its summary."""
    events, dataset = folder / "events", folder / "dataset"
    study_name, folds, split, _ = EVIDENCE[args.evidence]
    study = folder / study_name
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "log.txt"
    if not (events / "meta.json").exists():
        world = ["--config", str(args.world), "--seed", str(seed), "--world.task_correlation", str(task_correlation)]
        mtr(["simulate", *world, "--out", str(events)], log)
    if not (dataset / "schema.json").exists():
        mtr(["build-dataset", "--events", str(events), "--out", str(dataset)], log)
    models = [folder / "model"] if folds is None else [folder / f"fold{k}" for k in folds]
    for k, model in enumerate(models):
        fold = [] if folds is None else ["--data.user_folds.held_out", str(folds[k])]
        fit_once(model, dataset, args.epochs, seed, fold, log)
    if not (study / "summary.json").exists():
        runs = str(models[0]) if folds is None else "[" + ", ".join(map(str, models)) + "]"
        inputs = ["--run", runs, "--split", split, "--dataset", str(dataset), "--events", str(events)]
        mtr(["pareto", "--config", str(HERE / "config.yaml"), *inputs, "--out", str(study)], log)
    return study / "summary.json"


def fit_once(model: Path, dataset: Path, epochs: int, seed: int, extra: list[str], log: Path) -> None:
    """`mtr fit` of sim_mmoe.yaml into `model`, unless a finished fit is there."""
    if (model / FIT_DONE).exists():
        return
    shutil.rmtree(model, ignore_errors=True)  # an unfinished fit's last.ckpt is not the finished model
    fit = ["fit", "--config", str(MODEL_CONFIG), "--data.path", str(dataset), "--seed_everything", str(seed)]
    fit += ["--trainer.max_epochs", str(epochs), "--trainer.default_root_dir", str(model), *extra]
    mtr([*fit, "--trainer.enable_progress_bar", "false", "--wandb", "false"], log)
    (model / FIT_DONE).touch()


def run_folder(runs: Path, users: int, task_correlation: float, seed: int) -> Path:
    return runs / f"users{users}_rho{task_correlation:g}_seed{seed}"


def report(args: argparse.Namespace, users: int, days: int) -> None:
    """Rows of the finished runs, the checks, results.json, results.md and the README section."""
    rows = []
    study_name, _, split, results_name = EVIDENCE[args.evidence]
    for task_correlation, seed in itertools.product(args.task_correlation, args.seeds):
        study = run_folder(args.runs, users, task_correlation, seed) / study_name
        if (study / "summary.json").exists():
            trials = pl.read_csv(study / "trials.csv").select(pl.selectors.starts_with("true_"))
            truths = trials.rename(lambda name: name.removeprefix("true_")).to_dicts()
            rows.append(run_row(read_json(study / "summary.json"), truths, seed, task_correlation))
    planned = len(args.task_correlation) * len(args.seeds)
    setup = {"users": users, "days": days, "seeds": args.seeds, "task_correlation": args.task_correlation}
    result = {**setup, "epochs": args.epochs, "evidence": args.evidence, "split": split}
    result |= {"runs_planned": planned, "runs_completed": len(rows), "checks": checks(rows)}
    write_json(HERE / "seeds" / f"{results_name}.json", {**result, "runs": rows})
    models = "two cross-fitted fold models" if args.evidence == "cross-fit" else "one model on every user"
    headline = (
        f"{len(rows)} of {planned} runs ({users:,} users x {days} days; seeds {args.seeds}; task_correlation "
        f"{args.task_correlation}; MMoE {args.epochs} epochs, {models}, judged on {split}); the study of "
        "config.yaml (its estimator), 95% intervals.\n\n" + checks_table(result["checks"])
    )
    per_run = "Per run (held-out estimate [interval] / truth; * where the interval misses the truth):\n\n"
    (HERE / "seeds" / f"{results_name}.md").write_text(headline + "\n\n" + per_run + runs_table(rows) + "\n")
    if args.evidence == "cross-fit":
        write_results_section(HERE / "README.md", headline)
    print(headline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", type=Path, default=HERE / "world.yaml", help="`mtr simulate --config` file")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5], help="world and training seeds")
    parser.add_argument("--task-correlation", nargs="+", type=float, default=[0.2, 0.8])
    parser.add_argument("--epochs", type=int, default=4, help="MMoE training epochs")
    parser.add_argument("--evidence", choices=sorted(EVIDENCE), default="cross-fit", help="models and splits judged")
    parser.add_argument("--runs", type=Path, default=Path("runs/pareto_seeds"))
    parser.add_argument("--report-only", action="store_true", help="only read the finished runs")
    args = parser.parse_args()
    users, days, _, _ = read_world(args.world)  # checks the file's fields
    if not args.report_only:
        for seed, task_correlation in itertools.product(args.seeds, args.task_correlation):  # both rhos first
            print(f"task_correlation {task_correlation:g}, seed {seed}:", flush=True)
            run_one(run_folder(args.runs, users, task_correlation, seed), args, seed, task_correlation)
    report(args, users, days)


if __name__ == "__main__":
    main()
