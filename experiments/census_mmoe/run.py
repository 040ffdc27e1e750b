"""MMoE paper Table 1 (census-income, task group 1): four models x several seeds, test AUC mean and std.

    python experiments/census_mmoe/run.py [--seeds 5] [--runs runs/census]     (or: make reproduce-census)

Each run selects its checkpoint on the validation half (mean AUC over both tasks); only then is the
test half scored. Finished runs are cached as JSON under --runs, so an interrupted reproduction resumes.
Writes results.json and the results table of README.md in this folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mtr.experiments.repeat import fit_and_test, summarise
from mtr.io import write_json, write_results_section

HERE = Path(__file__).resolve().parent
MODELS = {"single_task": "Single-task", "shared_bottom": "Shared-Bottom", "mmoe": "MMoE", "ple": "PLE"}
# Ma et al., KDD 2018, Table 1, test AUC (mean column): income, marital status.
PAPER = {"single_task": (0.9337, 0.9922), "shared_bottom": (0.9295, 0.9921), "mmoe": (0.9359, 0.9927)}
METRICS = ["test/income/auc", "test/marital/auc", "val_selection", "epochs"]


def train(seeds: int, runs: Path, models: list[str]) -> None:
    """Fit and test every (model, seed) not cached yet under `runs`."""
    for model in models:
        for seed in range(seeds):
            cache = runs / model / f"seed{seed}.json"
            if not cache.exists():
                result = fit_and_test(
                    [HERE / "common.yaml", HERE / f"{model}.yaml"], runs / model / f"seed{seed}", seed
                )
                write_json(cache, {"model": model, **result})


def collect(seeds: int, runs: Path) -> list[dict] | None:
    """Every model's cached results, or None while some are missing."""
    caches = [runs / model / f"seed{seed}.json" for model in MODELS for seed in range(seeds)]
    if not all(cache.exists() for cache in caches):
        return None
    return [json.loads(cache.read_text()) for cache in caches]


def table(summary: dict[str, dict]) -> str:
    lines = [
        "| model | income AUC (mean ± std) | marital AUC (mean ± std) | paper income | paper marital | epochs |",
        "|---|---|---|---|---|---|",
    ]
    for model, name in MODELS.items():
        stats = summary[model]
        income, marital = stats["test/income/auc"], stats["test/marital/auc"]
        paper = PAPER.get(model, (None, None))
        paper_cells = [f"{v:.4f}" if v else "n/a" for v in paper]
        lines.append(
            f"| {name} | {income['mean']:.4f} ± {income['std']:.4f} | {marital['mean']:.4f} ± {marital['std']:.4f} "
            f"| {paper_cells[0]} | {paper_cells[1]} | {stats['epochs']['mean']:.1f} |"
        )
    n = summary["mmoe"]["test/income/auc"]["n"]
    return "\n".join(lines) + f"\n\nTest half of census-income.test (49,881 rows), {n} seeds per model."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--runs", type=Path, default=Path("runs/census"))
    parser.add_argument(
        "--models",
        nargs="+",
        choices=list(MODELS),
        default=list(MODELS),
        help="train only these (several processes can share --runs; the table needs all four)",
    )
    args = parser.parse_args()
    train(args.seeds, args.runs, args.models)
    results = collect(args.seeds, args.runs)
    if results is None:
        print(f"trained {args.models}; results.json is written once every model has {args.seeds} seeds")
        return
    summary = {m: summarise([r for r in results if r["model"] == m], METRICS) for m in MODELS}
    write_json(HERE / "results.json", {"summary": summary, "paper": PAPER, "runs": results})
    write_results_section(HERE / "README.md", table(summary))
    print(table(summary))


if __name__ == "__main__":
    main()
