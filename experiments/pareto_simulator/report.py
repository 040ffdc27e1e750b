"""Collect the simulator Pareto studies' summaries into results.json and the results table (results.md)."""

from __future__ import annotations

import json
from pathlib import Path

from mtr.io import write_json

HERE = Path(__file__).parent
RUNS = {
    "dr": "DR, unsubscribe <= 0.002",
    "snips": "SNIPS, unsubscribe <= 0.002",
    "dr_unconstrained": "DR, no constraint",
}
REWARDS = ("conversion", "engagement", "retention", "unsubscribe", "send_volume")


def main() -> None:
    results = {}
    for name in RUNS:
        summary = json.loads((Path("runs/pareto_simulator") / name / "summary.json").read_text())
        estimator = summary["spec"]["estimator"]
        chosen = summary["chosen"]
        results[name] = {
            "problem": summary["problem"],
            "candidates": summary["candidates"],
            "candidates_kept_after_pruning": summary["candidates_kept_after_pruning"],
            "trials": summary["trials_completed"],
            "study_s": summary["study_s"],
            "front_size": summary["front_size"],
            "chosen_params": chosen["params"],
            "chosen_estimate": {r: chosen["estimates"][r][estimator]["value"] for r in REWARDS},
            "chosen_ci": {r: [chosen["estimates"][r][estimator][k] for k in ("ci_low", "ci_high")] for r in REWARDS},
            "chosen_ess": chosen["estimates"]["conversion"]["effective_sample_size"],
            "chosen_truth": chosen["truth"],
            "oracle": summary["oracle"],
        }
    write_json(HERE / "results.json", results)
    lines = [
        "| study | trials | front | HV ratio | front truly infeasible | chosen: conversion est / true | "
        "unsubscribe est / true | send volume | ESS |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, label in RUNS.items():
        r = results[name]
        est, truth, oracle = r["chosen_estimate"], r["chosen_truth"], r["oracle"]
        lines.append(
            f"| {label} | {r['trials']} | {r['front_size']} | {oracle['hypervolume_ratio']:.3f} | "
            f"{oracle['found_front_truly_infeasible']} of {oracle['found_front_size']} | "
            f"{est['conversion']:.4f} / {truth['conversion']:.4f} | "
            f"{est['unsubscribe']:.5f} / {truth['unsubscribe']:.5f} "
            f"| {est['send_volume']:.3f} | {r['chosen_ess']:.0f} |"
        )
    lines += ["", "Mean relative error of the estimates over each study's front (estimate - truth) / truth:", ""]
    lines += ["| study | " + " | ".join(REWARDS[:4]) + " |", "| --- | --- | --- | --- | --- |"]
    for name, label in RUNS.items():
        errors = results[name]["oracle"]["front_estimate_errors"]
        lines.append(
            f"| {label} | " + " | ".join(f"{errors[r]['mean_relative_error']:+.1%}" for r in REWARDS[:4]) + " |"
        )
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
