"""Issue 10's experiment: a Pareto study over seeds x task correlations, and the four checks over the runs.

    python experiments/pareto_simulator/run_seeds.py [--world experiments/pareto_simulator/world.yaml]
        [--seeds 1 2 3 4 5] [--task-correlation 0.2 0.8] [--epochs 4] [--variant decision|cross-fit|validation]
        [--runs runs/pareto_seeds] [--report-only]

For each (task_correlation, seed): `mtr simulate` (world.yaml: users x days and any world knob; the seed and the
correlation), `mtr build-dataset` with the variant's objective table, its models (`mtr fit`,
configs/experiment/sim_mmoe.yaml, --epochs, the world seed) and `mtr pareto` (its config, with the oracle):

- decision (the default, issue 10's): the decision table (`--objectives decision`: conversion is the decision's
  7-day outcome, the same window for every action, "send nothing" included), two fold models
  (`--data.user_folds.held_out 0|1`) and the study judged on the train and validation splits, each user's
  opportunities scored by the model that never saw the user (decision.yaml);
- cross-fit: the same with the messaging table's per-send conversion (config.yaml);
- validation: the per-send conversion, one model trained on every user, judged on the validation split alone.

Each run goes into runs/pareto_seeds/users{U}_rho{R}_seed{S}/ with its output in log.txt there; the variants share
the world. A step whose output exists is skipped, so an interrupted run resumes (an unfinished fit starts again;
an unfinished study resumes from its study.db). Then every finished run is read into seeds/<results>.json and .md
(`mtr.experiments.pareto_seeds`; results for decision, per_send_cross_fit, validation_only), and the checks of
the decision variant into the "Seeds x task correlation" section of README.md.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Variant:
    """What one run of a world measures.

    Args:
        study: the study's folder in the world's folder.
        table: the dataset's objective table (`mtr build-dataset --objectives`), built into `dataset_<table>`
            (the messaging table into `dataset`).
        folds: the held-out folds of the cross-fitted models, or () for one model on every user.
        split: the splits the study is judged on.
        config: the study's config in this folder.
        results: the name of its results files under seeds/.
    """

    study: str
    table: str
    folds: tuple[int, ...]
    split: str
    config: str
    results: str

    def models(self, folder: Path) -> list[Path]:
        prefix = "" if self.table == "messaging" else f"{self.table}_"
        return [folder / f"{prefix}fold{k}" for k in self.folds] or [folder / "model"]

    def dataset(self, folder: Path) -> Path:
        return folder / ("dataset" if self.table == "messaging" else f"dataset_{self.table}")


VARIANTS = {
    # Issue 10's experiment: the decision's conversion (one window for every action), cross-fitted evidence.
    "decision": Variant("cross_fit_decision", "decision", (0, 1), "train,validation", "decision.yaml", "results"),
    # The per-send conversion label, cross-fitted evidence.
    "cross-fit": Variant("cross_fit", "messaging", (0, 1), "train,validation", "config.yaml", "per_send_cross_fit"),
    # The per-send conversion label, one model on every user judged on the validation split alone.
    "validation": Variant("dr", "messaging", (), "validation", "config.yaml", "validation_only"),
}
HEADLINE = "decision"  # the variant whose checks go into README.md


def run_one(folder: Path, args: argparse.Namespace, seed: int, task_correlation: float) -> Path:
    """Simulate, build, fit and study one world in `folder` (steps whose outputs exist are skipped); its summary."""
    variant = VARIANTS[args.variant]
    events, dataset, study = folder / "events", variant.dataset(folder), folder / variant.study
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "log.txt"
    if not (events / "meta.json").exists():
        world = ["--config", str(args.world), "--seed", str(seed), "--world.task_correlation", str(task_correlation)]
        mtr(["simulate", *world, "--out", str(events)], log)
    if not (dataset / "schema.json").exists():
        mtr(["build-dataset", "--events", str(events), "--out", str(dataset), "--objectives", variant.table], log)
    models = variant.models(folder)
    for model, fold in zip(models, variant.folds or (None,), strict=True):
        held_out = [] if fold is None else ["--data.user_folds.held_out", str(fold)]
        fit_once(model, dataset, args.epochs, seed, held_out, log)
    if not (study / "summary.json").exists():
        runs = str(models[0]) if len(models) == 1 else "[" + ", ".join(map(str, models)) + "]"
        inputs = ["--run", runs, "--split", variant.split, "--dataset", str(dataset), "--events", str(events)]
        mtr(["pareto", "--config", str(HERE / variant.config), *inputs, "--out", str(study)], log)
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
    variant = VARIANTS[args.variant]
    for task_correlation, seed in itertools.product(args.task_correlation, args.seeds):
        study = run_folder(args.runs, users, task_correlation, seed) / variant.study
        if (study / "summary.json").exists():
            trials = pl.read_csv(study / "trials.csv").select(pl.selectors.starts_with("true_"))
            truths = trials.rename(lambda name: name.removeprefix("true_")).to_dicts()
            rows.append(run_row(read_json(study / "summary.json"), truths, seed, task_correlation))
    planned = len(args.task_correlation) * len(args.seeds)
    setup = {"users": users, "days": days, "seeds": args.seeds, "task_correlation": args.task_correlation}
    result = {**setup, "epochs": args.epochs, "variant": args.variant, "table": variant.table, "split": variant.split}
    result |= {"runs_planned": planned, "runs_completed": len(rows), "checks": checks(rows)}
    write_json(HERE / "seeds" / f"{variant.results}.json", {**result, "runs": rows})
    models = "two cross-fitted fold models" if variant.folds else "one model on every user"
    headline = (
        f"{len(rows)} of {planned} runs ({users:,} users x {days} days; seeds {args.seeds}; task_correlation "
        f"{args.task_correlation}; the {variant.table} objective table; MMoE {args.epochs} epochs, {models}, judged "
        f"on {variant.split}); the study of {variant.config} (its estimator), 95% intervals.\n\n"
        + checks_table(result["checks"])
    )
    per_run = "Per run (held-out estimate [interval] / truth; * where the interval misses the truth):\n\n"
    (HERE / "seeds" / f"{variant.results}.md").write_text(headline + "\n\n" + per_run + runs_table(rows) + "\n")
    if args.variant == HEADLINE:
        write_results_section(HERE / "README.md", headline)
    print(headline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", type=Path, default=HERE / "world.yaml", help="`mtr simulate --config` file")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5], help="world and training seeds")
    parser.add_argument("--task-correlation", nargs="+", type=float, default=[0.2, 0.8])
    parser.add_argument("--epochs", type=int, default=4, help="MMoE training epochs")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default=HEADLINE, help="table, models and splits")
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
