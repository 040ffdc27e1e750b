"""The simulator Pareto study over seeds and task correlations: one row per run and issue 10's four checks.

Each run is one `mtr pareto` summary.json on the simulator (certified selection, the oracle and its fixed
yardstick, `mtr.pareto.yardstick`). Per run, for each objective of the study: the chosen point's held-out
estimate, its interval (estimate -/+ z SE, the one certification uses) and its truth. A run whose study
certifies nothing operates "send nothing", and its row carries the outcomes of sending nothing.

The checks over runs:

- feasible: the operating point's truth meets every budget in at least 90% of the runs ("send nothing"
  counts as feasible, as its truth says), and at most one run in ten declares no certified point;
- conversion: in every run, the operating point's true conversion is at least 0.90 of the oracle's best
  truly feasible point of the same policy family (the model's scores): chosen truth / (chosen truth +
  selection regret) = 1 - selection regret / oracle optimum;
- coverage: the interval covers the truth in at least 90% of the (run, objective) pairs;
- hypervolume: in every run, the fixed-box hypervolume of the run's certified front (its truly feasible points)
  is at least 0.90 of that of the oracle optima (`front_box_hypervolume / oracle_box_hypervolume`, same box;
  the oracle optima are one point per objective, so the ratio can exceed 1).

Two figures per run are reported beside the checks, as they read the same outcome more strictly: the
conversion lift ratio (chosen - send nothing) / (oracle optimum - send nothing), since organic conversions
make the plain ratio of "send nothing" large already; the bounded hypervolume ratio, the same fixed-box volume
of the certified front over that of every truly feasible point known (the run's trials at their truth, the
oracle optima and "send nothing"), which is at most 1; and the oracle check's hypervolume ratio (scaled on the
run's own fronts against the best true front found, `mtr.pareto.oracle_check`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mtr.pareto.limits import Limits
from mtr.pareto.study import maximised_matrix
from mtr.pareto.yardstick import box_volume

PASS, NOT_MET = "PASS", "NOT MET"


@dataclass(frozen=True)
class Targets:
    """The thresholds of the checks (see the module docstring).

    Args:
        feasible_share: least share of runs whose operating point is truly feasible.
        no_certified_share: largest share of runs that may declare no certified point.
        conversion_ratio: least ratio of true conversion to the oracle optimum, in every run.
        coverage: least share of (run, objective) pairs whose interval covers the truth.
        hypervolume_ratio: least fixed-box hypervolume ratio, in every run.
    """

    feasible_share: float = 0.9
    no_certified_share: float = 0.1
    conversion_ratio: float = 0.9
    coverage: float = 0.9
    hypervolume_ratio: float = 0.9


def ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator / denominator) if denominator > 0 else None


def bounded_hypervolume_ratio(summary: Mapping[str, Any], trial_truths: Sequence[Mapping[str, float]]) -> float | None:
    """Fixed-box volume of the certified front over that of every truly feasible point known (<= 1).

    Args:
        summary: the run's summary.json.
        trial_truths: the true values of every trial of the run's study (trials.csv, true_* columns).
    """
    fixed, spec = summary["oracle"]["fixed"], summary["spec"]
    objectives, limits = spec["objectives"], Limits.parse(spec["constraints"])
    box = np.concatenate([maximised_matrix([fixed[f"box_{end}"]], objectives) for end in ("nadir", "ideal")])
    known = [*trial_truths, *fixed["oracle_optima"].values(), fixed["send_nothing_truth"]]
    feasible = [t for t in known if limits.hold(t)]
    return ratio(fixed["front_box_hypervolume"], box_volume(maximised_matrix(feasible, objectives), box))


def run_row(
    summary: Mapping[str, Any], trial_truths: Sequence[Mapping[str, float]], seed: int, task_correlation: float
) -> dict[str, Any]:
    """One run's row: per objective estimate, interval, truth and coverage; the verdict and the yardstick's figures.

    Args:
        summary: the run's summary.json.
        trial_truths: the true values of every trial of its study (for the bounded hypervolume ratio).
        seed: the world and training seed.
        task_correlation: the world's task correlation.
    """
    chosen, fixed = summary["chosen"], summary["oracle"]["fixed"]
    objectives = {}
    for name in summary["spec"]["objectives"]:
        # The interval's target is the held-out users' truth (older summaries: the whole split's).
        bound, truth = chosen["bounds"][name], chosen.get("truth_held_out", chosen["truth"])[name]
        objectives[name] = {
            "estimate": bound["value"],
            "interval": [bound["low"], bound["high"]],
            "truth": truth,
            "covered": bound["low"] <= truth <= bound["high"],
        }
    # The selection's objective: conversion, or the decision's conversion on the decision table.
    regret = fixed["regret"]
    nothing = fixed["send_nothing_truth"][regret["objective"]]
    return {
        "seed": seed,
        "task_correlation": task_correlation,
        "operating_point": chosen["operating_point"],
        "certified": summary["certified"],
        "verdict": summary["verdict"],
        "objectives": objectives,
        "truly_feasible": fixed["chosen_truly_feasible"],
        "conversion_truth": regret["chosen_truth"],
        "oracle_conversion": regret["oracle_model_scores"],
        "oracle_conversion_true_scores": regret["oracle_true_scores"],
        "conversion_ratio": ratio(regret["chosen_truth"], regret["oracle_model_scores"]),
        "conversion_lift_ratio": ratio(regret["chosen_truth"] - nothing, regret["oracle_model_scores"] - nothing),
        "front_box_hypervolume": fixed["front_box_hypervolume"],
        "oracle_box_hypervolume": fixed["oracle_box_hypervolume"],
        "hypervolume_ratio": ratio(fixed["front_box_hypervolume"], fixed["oracle_box_hypervolume"]),
        "bounded_hypervolume_ratio": bounded_hypervolume_ratio(summary, trial_truths),
        "oracle_check_hypervolume_ratio": summary["oracle"]["hypervolume_ratio"],
    }


def _at_least(values: Sequence[float | None], target: float) -> int:
    return sum(v is not None and v >= target for v in values)


def checks(rows: Sequence[Mapping[str, Any]], targets: Targets = Targets()) -> dict[str, dict[str, Any]]:  # noqa: B008
    """The four checks over the runs' rows, each with its figures, rule and PASS / NOT MET, and the bounded
    hypervolume ratio against the same target (reported beside them, not one of the issue's checks)."""
    n = len(rows)
    feasible = sum(r["truly_feasible"] for r in rows)
    no_certified = sum(not r["certified"] for r in rows)
    pairs = [o["covered"] for r in rows for o in r["objectives"].values()]
    feasible_ok = feasible >= targets.feasible_share * n and no_certified <= targets.no_certified_share * n
    out = {
        "feasible": {
            "rule": f"truly feasible in >= {targets.feasible_share:.0%} of runs, no certified point in <= "
            f"{targets.no_certified_share:.0%}",
            "figure": f"{feasible} of {n} truly feasible; {no_certified} of {n} without a certified point",
            "truly_feasible": feasible,
            "no_certified_point": no_certified,
            "met": n > 0 and feasible_ok,
        },
        "conversion": _every_run(
            [r["conversion_ratio"] for r in rows], targets.conversion_ratio, "true conversion / oracle optimum"
        ),
        "coverage": {
            "rule": f"interval covers truth in >= {targets.coverage:.0%} of (run, objective) pairs",
            "figure": f"{sum(pairs)} of {len(pairs)} pairs ({sum(pairs) / max(len(pairs), 1):.0%})",
            "covered": sum(pairs),
            "pairs": len(pairs),
            "met": bool(pairs) and sum(pairs) >= targets.coverage * len(pairs),
        },
        "hypervolume": _every_run(
            [r["hypervolume_ratio"] for r in rows],
            targets.hypervolume_ratio,
            "fixed-box HV of the certified front / HV of the oracle optima",
        ),
        "hypervolume_bounded": _every_run(
            [r["bounded_hypervolume_ratio"] for r in rows],
            targets.hypervolume_ratio,
            "fixed-box HV of the certified front / HV of every truly feasible point known (not an issue check)",
        ),
    }
    for check in out.values():
        check["verdict"] = PASS if check["met"] else NOT_MET
    return out


def _every_run(values: Sequence[float | None], target: float, what: str) -> dict[str, Any]:
    met = _at_least(values, target)
    return {
        "rule": f"{what} >= {target:.2f} in every run",
        "figure": f"{met} of {len(values)} runs; {_spread(values)}",
        "runs_met": met,
        "met": bool(values) and met == len(values),
    }


def _spread(values: Sequence[float | None]) -> str:
    """'min a, median b, max c' of the defined values."""
    defined = sorted(v for v in values if v is not None)
    if not defined:
        return "undefined"
    return f"min {defined[0]:.3f}, median {float(np.median(defined)):.3f}, max {defined[-1]:.3f}"


def runs_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: one line per run, estimate [interval] / truth per objective (a * where the interval misses)."""
    names = list(rows[0]["objectives"]) if rows else []
    head = ["rho", "seed", *(f"{n}: est [95% interval] / truth" for n in names)]
    head += ["certified", "truly feasible", "conversion / oracle", "fixed-box HV ratio"]
    head += ["conversion lift / oracle lift", "bounded HV ratio", "oracle-check HV ratio"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [f"{r['task_correlation']:g}", str(r["seed"])]
        for name in names:
            o = r["objectives"][name]
            miss = "" if o["covered"] else " *"
            cells.append(
                f"{o['estimate']:.5f} [{o['interval'][0]:.5f}, {o['interval'][1]:.5f}] / {o['truth']:.5f}{miss}"
            )
        cells += ["yes" if r["certified"] else "no (send nothing)", "yes" if r["truly_feasible"] else "NO"]
        cells += [_number(r[key]) for key in ("conversion_ratio", "hypervolume_ratio")]
        more = ("conversion_lift_ratio", "bounded_hypervolume_ratio", "oracle_check_hypervolume_ratio")
        cells += [_number(r[key]) for key in more]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def checks_table(result: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown: one line per check: rule, figures, verdict."""
    lines = ["| check | rule | measured | verdict |", "| --- | --- | --- | --- |"]
    lines += [f"| {name} | {c['rule']} | {c['figure']} | {c['verdict']} |" for name, c in result.items()]
    return "\n".join(lines)
