"""Hillstrom: the tuned policy's off-policy estimates against each single arm's actual rates.

Writes results.json and results.md (the table) next to this file.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from mtr.io import write_json

HERE = Path(__file__).parent
STUDY = Path("runs/pareto_hillstrom_study")
DATA = Path("data/hillstrom")


def arm_rates(rows: pl.DataFrame) -> dict[str, dict[str, float]]:
    """Visit and conversion rate and e-mails per customer of each arm, as observed (the arms are randomised)."""
    table = rows.group_by("action").agg(
        pl.len().alias("customers"),
        pl.col("label_engagement").mean().alias("visit"),
        pl.col("label_conversion").mean().alias("conversion"),
        (pl.col("channel") != "none").mean().alias("emails_per_customer"),
    )
    return {row.pop("action"): row for row in table.sort("action").to_dicts()}


def main() -> None:
    summary = json.loads((STUDY / "summary.json").read_text())
    every = pl.concat([pl.read_parquet(DATA / f"{s}.parquet") for s in ("train", "validation", "test")])
    test = pl.read_parquet(DATA / "test.parquet")
    chosen = summary["chosen"]["estimates"]
    tuned = {
        reward: {e: chosen[reward][e] for e in ("ips", "snips", "dr")}
        for reward in ("engagement", "conversion", "send_volume")
    }
    front = pl.read_csv(STUDY / "front.csv").sort("est_send_volume")
    results = {
        "arms_all_customers": arm_rates(every),
        "arms_test": arm_rates(test),
        "tuned_policy": {
            "params": summary["chosen"]["params"],
            "estimates": tuned,
            "rule": summary["spec"]["selection"],
        },
        "ess": chosen["conversion"]["effective_sample_size"],
        "test_customers": test.height,
        "trials": summary["trials_completed"],
        "front_size": summary["front_size"],
        "front": front.select(
            "trial", "engagement", "send_cost", "est_engagement", "est_conversion", "est_send_volume"
        ).to_dicts(),
    }
    write_json(HERE / "results.json", results)
    lines = ["| policy | visit | conversion | e-mails per customer |", "| --- | --- | --- | --- |"]
    for arm, r in results["arms_test"].items():
        lines.append(
            f"| always {arm} (actual, test) | {r['visit']:.4f} | {r['conversion']:.4f} | "
            f"{r['emails_per_customer']:.2f} |"
        )
    for estimator in ("dr", "snips"):
        cells = [tuned[k][estimator] for k in ("engagement", "conversion", "send_volume")]
        text = [f"{c['value']:.4f} [{c['ci_low']:.4f}, {c['ci_high']:.4f}]" for c in cells[:2]]
        lines.append(f"| tuned ({estimator.upper()}, 95% CI) | {text[0]} | {text[1]} | {cells[2]['value']:.2f} |")
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print("all customers:", results["arms_all_customers"])


if __name__ == "__main__":
    main()
