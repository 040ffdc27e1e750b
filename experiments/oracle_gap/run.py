"""The oracle gap on the simulator: each task's test AUC and calibration of the trained models next to those
of the simulator's true probabilities on the same test rows.

    python experiments/oracle_gap/run.py [--data data/oracle_gap] [--runs runs/oracle_gap]
    (or: make reproduce-oracle-gap)

Simulates the demo world (world.yaml), builds its dataset, trains each model (configs/experiment/
sim_{model}.yaml, then training.yaml) with each seed (checkpoint selected on validation), predicts the test
split and scores truth and models with the same metrics on the same labelled rows (`mtr.experiments.oracle_gap`).
Finished fits and predictions are cached under --runs, so an interrupted run resumes. Writes results.json and
the results tables of README.md in this folder.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from mtr.experiments.oracle_gap import oracle_gap, predict_split, read_world, simulated_dataset
from mtr.experiments.repeat import fit_and_test
from mtr.io import read_json, write_json, write_results_section

HERE = Path(__file__).resolve().parent
CONFIGS = HERE.parents[1] / "configs" / "experiment"
NAMES = {"single_task": "Single-task", "shared_bottom": "Shared-Bottom", "mmoe": "MMoE", "ple": "PLE"}
METRICS = ("auc", "logloss", "ne", "calibration", "ece")


def train_and_predict(dataset: Path, model: str, seed: int, runs: Path) -> Path:
    """Fit one model with one seed, select its checkpoint on validation, predict the test split (cached)."""
    run_dir = runs / model / f"seed{seed}"
    fit_cache, predictions = run_dir.with_suffix(".json"), run_dir / "predictions_test.parquet"
    if not fit_cache.exists():
        configs = [CONFIGS / f"sim_{model}.yaml", HERE / "training.yaml"]
        fitted = fit_and_test(configs, run_dir, seed, ["--data.path", str(dataset)])
        write_json(fit_cache, {"model": model, **fitted})
    if not predictions.exists():
        predict_split(run_dir, read_json(fit_cache)["best_checkpoint"], predictions)
    return predictions


def mean_over_seeds(per_seed: list[dict], model: str) -> dict[str, list[float]]:
    """Each metric's per-task mean over seeds."""
    return {m: np.nanmean([gap["models"][model][m] for gap in per_seed], axis=0).tolist() for m in METRICS}


def summary_means(metrics: dict[str, list[float]], tasks: list[str]) -> dict[str, float]:
    """Means over the 12 send tasks and over the 2 no-send tasks (tasks where a metric is undefined are skipped)."""
    send = [i for i, task in enumerate(tasks) if not task.endswith("_none")]
    none = [i for i, task in enumerate(tasks) if task.endswith("_none")]
    means = {}
    for metric in ("auc", "ne", "ece"):
        values = np.asarray(metrics[metric])
        means[f"{metric}_send"] = float(np.nanmean(values[send]))
        means[f"{metric}_none"] = float(np.nanmean(values[none]))
    return means


def cell(value: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def tables(result: dict) -> str:
    tasks, models, truth = result["tasks"], result["models"], result["truth"]
    names = [NAMES[m] for m in models]
    lines = ["| task | rows | positives | truth AUC | " + " | ".join(f"{n} AUC" for n in names) + " |"]
    lines.append("|" + "---|" * (4 + len(models)))
    for i, task in enumerate(tasks):
        cells = [task, f"{result['rows'][i]:,}", f"{result['positives'][i]:,}", cell(truth["auc"][i])]
        lines.append("| " + " | ".join(cells + [cell(models[m]["auc"][i]) for m in models]) + " |")
    for part, label in (("send", "mean of 12 send tasks"), ("none", "mean of 2 no-send tasks")):
        means = [cell(result["summary"][m][f"auc_{part}"]) for m in models]
        lines.append(
            f"| **{label}** | | | {cell(result['summary']['truth'][f'auc_{part}'])} | " + " | ".join(means) + " |"
        )
    lines += ["", "Calibration (mean prediction / observed rate; 1 is calibrated) and ECE (10 bins):", ""]
    head = ["task", "truth calib.", *(f"{n} calib." for n in names), "truth ECE", *(f"{n} ECE" for n in names)]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, task in enumerate(tasks):
        cells = [task, cell(truth["calibration"][i], 2), *(cell(models[m]["calibration"][i], 2) for m in models)]
        cells += [cell(truth["ece"][i], 4), *(cell(models[m]["ece"][i], 4) for m in models)]
        lines.append("| " + " | ".join(cells) + " |")
    config = result["config"]
    return "\n".join(lines) + (
        f"\n\nTest split of the world {config['users']} users x {config['days']} days, simulation seed "
        f"{config['simulation_seed']}, task_correlation {config['task_correlation']}; model figures are means over "
        f"{len(config['seeds'])} seed(s). Rows: labelled test rows of the task; the truth column scores them "
        "with the simulator's probability that drew each label."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", type=Path, default=HERE / "world.yaml", help="`mtr simulate --config` file")
    parser.add_argument("--models", nargs="+", default=list(NAMES), choices=list(NAMES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--data", type=Path, default=Path("data/oracle_gap"))
    parser.add_argument("--runs", type=Path, default=Path("runs/oracle_gap"))
    args = parser.parse_args()
    users, days, simulation_seed, world = read_world(args.world)
    config = {"users": users, "days": days, "simulation_seed": simulation_seed, "seeds": args.seeds}
    config |= {"task_correlation": world.task_correlation, "models": args.models}
    events, dataset = simulated_dataset(args.data, users, days, simulation_seed, world)
    per_seed = []
    for seed in config["seeds"]:
        predictions = {m: train_and_predict(dataset, m, seed, args.runs) for m in config["models"]}
        per_seed.append(oracle_gap(dataset, events, predictions))
    result = {key: per_seed[0][key] for key in ("tasks", "rows", "positives", "truth")}
    result["models"] = {m: mean_over_seeds(per_seed, m) for m in config["models"]}
    result["summary"] = {name: summary_means(metrics, result["tasks"]) for name, metrics in result["models"].items()}
    result["summary"]["truth"] = summary_means(result["truth"], result["tasks"])
    result["config"] = config
    result["per_seed"] = [
        {"seed": s, "models": gap["models"]} for s, gap in zip(config["seeds"], per_seed, strict=True)
    ]
    write_json(HERE / "results.json", result)
    write_results_section(HERE / "README.md", tables(result))
    print(tables(result))


if __name__ == "__main__":
    main()
