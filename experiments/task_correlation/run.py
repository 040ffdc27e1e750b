"""MMoE paper section 4 on the simulator: MMoE's and PLE's gain over Shared-Bottom as task correlation falls.

    python experiments/task_correlation/run.py [--data data/task_correlation] [--runs runs/task_correlation]
    (or: make reproduce-task-correlation)

For each value of the simulator's `task_correlation` knob (--task-correlation) it simulates the world of
world.yaml with that knob (same size and simulation seed, so only the knob changes), builds its dataset,
trains the three capacity-matched models (common.yaml + training.yaml + {model}.yaml) with each seed, selects
each checkpoint on validation and scores the test split once. Finished runs are cached as
JSON under --runs, so an interrupted sweep resumes. Writes results.json, gain_vs_correlation.png and the
results table of README.md in this folder.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from matplotlib.figure import Figure

from mtr.experiments.oracle_gap import read_world, simulated_dataset
from mtr.experiments.repeat import fit_and_test
from mtr.io import read_json, write_json, write_results_section
from mtr.schema import CHANNELS, OBJECTIVES, DatasetSchema

HERE = Path(__file__).resolve().parent
NAMES = {"shared_bottom": "Shared-Bottom", "mmoe": "MMoE", "ple": "PLE"}
BASELINE = "shared_bottom"


def send_auc(result: dict) -> dict[str, float]:
    """Test AUC averaged over the 12 send tasks ("all"), over the 9 without unsubscribe (whose test labels have
    a few dozen positives, so its AUC is the noisiest) and over the three channels of each objective."""
    per_objective = {o: statistics.fmean(result[f"test/{o}_{c}/auc"] for c in CHANNELS) for o in OBJECTIVES}
    others = [v for o, v in per_objective.items() if o != "unsubscribe"]
    all_tasks = statistics.fmean(per_objective.values())
    return {"all": all_tasks, "no_unsubscribe": statistics.fmean(others), **per_objective}


def prepare_world(world_file: Path, rho: float, data: Path) -> dict:
    """Simulate and build the world of one knob value (reused when already there)."""
    events, dataset = simulated_dataset(data / f"rho{rho:.2f}", *read_world(world_file, task_correlation=rho))
    return {
        "task_correlation": rho,
        "dataset": dataset,
        "logit_correlation": read_json(events / "meta.json")["summary"]["mean_abs_task_logit_correlation"],
        "test_rows": DatasetSchema.load(dataset).metadata["rows"]["test"],
    }


def run_one(world: dict, model: str, seed: int, runs: Path) -> dict:
    """Fit and test one model with one seed on one world; cached as JSON so that a rerun resumes."""
    rho = world["task_correlation"]
    cache = runs / f"rho{rho:.2f}" / model / f"seed{seed}.json"
    if not cache.exists():
        configs = [HERE / "common.yaml", HERE / "training.yaml", HERE / f"{model}.yaml"]
        result = fit_and_test(configs, cache.with_suffix(""), seed, ["--data.path", str(world["dataset"])])
        write_json(cache, {"model": model, "task_correlation": rho, **result})
    result = json.loads(cache.read_text())
    return {
        "model": model,
        "seed": seed,
        **{k: v for k, v in world.items() if k != "dataset"},
        "epochs": result["epochs"],
        "val_selection": result["val_selection"],
        "send_auc": send_auc(result),
    }


def mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def summarise(runs: list[dict], config: dict) -> list[dict]:
    """Per knob value: each model's mean send AUC and its per-seed (paired) gain over Shared-Bottom."""
    rows = []
    for rho in config["task_correlation"]:
        here = [r for r in runs if r["task_correlation"] == rho]
        by_model = {m: {r["seed"]: r["send_auc"] for r in here if r["model"] == m} for m in config["models"]}
        row = {"task_correlation": rho, "logit_correlation": here[0]["logit_correlation"]}
        row["test_rows"] = here[0]["test_rows"]
        row["auc"] = {m: mean_std([auc["all"] for auc in seeds.values()]) for m, seeds in by_model.items()}
        row["gain"] = {}
        for model in config["models"]:
            if model == BASELINE:
                continue
            seeds = sorted(by_model[model].keys() & by_model[BASELINE].keys())
            gains = {
                part: mean_std([by_model[model][s][part] - by_model[BASELINE][s][part] for s in seeds])
                for part in ("all", "no_unsubscribe", *OBJECTIVES)
            }
            row["gain"][model] = {**gains, "n_seeds": len(seeds)}
        rows.append(row)
    return rows


def table(summary: list[dict], config: dict) -> str:
    contenders = [m for m in config["models"] if m != BASELINE]
    head = ["knob rho", "mean abs corr of true logits", *(f"{NAMES[m]} AUC" for m in config["models"])]
    head += [f"{NAMES[m]} - SB" for m in contenders] + [f"{NAMES[m]} - SB w/o unsubscribe" for m in contenders]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in summary:
        cells = [f"{row['task_correlation']:.2f}", f"{row['logit_correlation']:.3f}"]
        cells += [f"{row['auc'][m]['mean']:.4f} ± {row['auc'][m]['std']:.4f}" for m in config["models"]]
        for part in ("all", "no_unsubscribe"):
            cells += [f"{row['gain'][m][part]['mean']:+.4f} ± {row['gain'][m][part]['std']:.4f}" for m in contenders]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Gain over Shared-Bottom per objective (mean over seeds of the paired difference):", ""]
    lines += ["| knob rho | model | " + " | ".join(OBJECTIVES) + " |", "|---|---|" + "---|" * len(OBJECTIVES)]
    for row in summary:
        for m in contenders:
            gains = " | ".join(f"{row['gain'][m][o]['mean']:+.4f}" for o in OBJECTIVES)
            lines.append(f"| {row['task_correlation']:.2f} | {NAMES[m]} | {gains} |")
    n = summary[0]["gain"][contenders[0]]["n_seeds"]
    return "\n".join(lines) + (
        f"\n\nTest AUC averaged over the 12 send tasks (objective x push/email/in_app), mean ± std over {n} seeds; "
        f"{config['users']} users x {config['days']} days per world, {summary[0]['test_rows']:,} test rows."
    )


def plot(summary: list[dict], config: dict, path: Path) -> None:
    rho = [row["task_correlation"] for row in summary]
    figure = Figure(figsize=(11, 4))  # no pyplot: no GUI backend, nothing global
    left, right = figure.subplots(1, 2)
    for index, model in enumerate(config["models"]):
        style = {"marker": "o", "capsize": 3, "color": f"C{index}"}  # one colour per model in both panels
        auc = [row["auc"][model] for row in summary]
        right.errorbar(rho, [a["mean"] for a in auc], [a["std"] for a in auc], label=NAMES[model], **style)
        if model == BASELINE:
            continue
        for part, line, label in (("all", "-", "12 send tasks"), ("no_unsubscribe", "--", "without unsubscribe")):
            gain = [row["gain"][model][part] for row in summary]
            mean, std = [g["mean"] for g in gain], [g["std"] for g in gain]
            left.errorbar(rho, mean, std, linestyle=line, label=f"{NAMES[model]}, {label}", **style)
    left.axhline(0, color="grey", lw=0.8)
    left.set(ylabel="test AUC gain over Shared-Bottom", title="Gain over Shared-Bottom (mean ± std over seeds)")
    right.set(ylabel="test AUC, mean of 12 send tasks", title="Test AUC")
    ticks = [f"{row['task_correlation']:.2f}\n|r|={row['logit_correlation']:.2f}" for row in summary]
    for axis in (left, right):
        axis.set_xticks(rho, ticks)
        axis.set_xlabel("task_correlation knob (and mean |corr| of the true logits)")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", type=Path, default=HERE / "world.yaml", help="`mtr simulate --config` file")
    parser.add_argument("--task-correlation", nargs="+", type=float, default=[0.0, 0.5, 1.0])
    parser.add_argument("--models", nargs="+", default=list(NAMES), choices=list(NAMES))
    parser.add_argument("--data", type=Path, default=Path("data/task_correlation"))
    parser.add_argument("--runs", type=Path, default=Path("runs/task_correlation"))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    args = parser.parse_args()
    users, days, simulation_seed, _ = read_world(args.world)
    config = {"users": users, "days": days, "simulation_seed": simulation_seed, "seeds": args.seeds}
    config |= {"task_correlation": args.task_correlation, "models": args.models}
    worlds = [prepare_world(args.world, rho, args.data) for rho in config["task_correlation"]]
    # Seed-major order: a complete first seed over every world comes before any second seed.
    runs = [
        run_one(world, model, seed, args.runs)
        for seed in config["seeds"]
        for world in worlds
        for model in config["models"]
    ]
    summary = summarise(runs, config)
    write_json(HERE / "results.json", {"config": config, "summary": summary, "runs": runs})
    plot(summary, config, HERE / "gain_vs_correlation.png")
    write_results_section(HERE / "README.md", table(summary, config))
    print(table(summary, config))


if __name__ == "__main__":
    main()
