"""The seeds x task correlation report: rows from `mtr pareto` summaries and the four checks over them."""

from __future__ import annotations

import json

import pytest

from mtr.experiments.pareto_seeds import (
    NOT_MET,
    PASS,
    bounded_hypervolume_ratio,
    checks,
    checks_table,
    run_row,
    runs_table,
)

BUDGET = 0.002


def summary(
    unsubscribe_truth: float,
    certified: bool = True,
    conversion_truth: float = 0.05,
    front_volume: float = 0.3,
    miss_conversion: bool = False,
) -> dict:
    """A summary.json as `mtr pareto` writes it on the simulator, reduced to what the report reads."""
    truth = {"conversion": conversion_truth, "unsubscribe": unsubscribe_truth}
    bounds = {
        name: {"value": value, "standard_error": 0.001, "low": value - 0.002, "high": value + 0.002}
        for name, value in truth.items()
    }
    if miss_conversion:
        bounds["conversion"] = {"value": 0.09, "standard_error": 0.001, "low": 0.088, "high": 0.092}
    return {
        "certified": certified,
        "verdict": "certified" if certified else "no trial's upper bounds are within budget",
        "spec": {
            "objectives": {"conversion": "maximize", "unsubscribe": "minimize"},
            "constraints": {"unsubscribe": BUDGET},
        },
        "chosen": {
            "operating_point": "trial 3" if certified else "send nothing",
            "bounds": bounds,
            "truth": {**truth, "send_volume": 0.5},
        },
        "oracle": {
            "hypervolume_ratio": 0.5,
            "fixed": {
                "chosen_truly_feasible": unsubscribe_truth <= BUDGET,
                "front_box_hypervolume": front_volume,
                "oracle_box_hypervolume": 0.3,
                "send_nothing_truth": {"conversion": 0.02, "unsubscribe": 0.0, "send_volume": 0.0},
                "box_nadir": {"conversion": 0.02, "unsubscribe": BUDGET},
                "box_ideal": {"conversion": 0.06, "unsubscribe": 0.0},
                "oracle_optima": {
                    "conversion": {"conversion": 0.06, "unsubscribe": BUDGET},
                    "unsubscribe": {"conversion": 0.02, "unsubscribe": 0.0},
                },
                "regret": {
                    "objective": "conversion",
                    "chosen_truth": conversion_truth,
                    "oracle_model_scores": 0.05,
                    "oracle_true_scores": 0.06,
                    "selection_regret": 0.05 - conversion_truth,
                },
            },
        },
    }


def test_run_row_reads_interval_truth_and_ratios():
    row = run_row(summary(0.001, conversion_truth=0.04, front_volume=0.27, miss_conversion=True), (), 3, 0.8)
    assert row["objectives"]["conversion"] == {
        "estimate": 0.09,
        "interval": [0.088, 0.092],
        "truth": 0.04,
        "covered": False,
    }
    assert row["objectives"]["unsubscribe"]["covered"]
    assert row["conversion_ratio"] == pytest.approx(0.8)
    assert row["conversion_lift_ratio"] == pytest.approx((0.04 - 0.02) / (0.05 - 0.02))
    assert row["hypervolume_ratio"] == pytest.approx(0.9)
    assert (row["seed"], row["task_correlation"], row["truly_feasible"]) == (3, 0.8, True)


def test_bounded_hypervolume_ratio_divides_by_every_truly_feasible_point_known():
    # box [0.02, 0.06] x [0.002, 0]: the oracle optima are corners (no volume), the trial (0.04, 0.001) the centre
    trials = [{"conversion": 0.04, "unsubscribe": 0.001}, {"conversion": 0.05, "unsubscribe": 0.003}]
    assert bounded_hypervolume_ratio(summary(0.001, front_volume=0.2), trials) == pytest.approx(0.2 / 0.25)
    assert bounded_hypervolume_ratio(summary(0.001, front_volume=0.2), []) is None  # nothing but corners known
    rows = [run_row(summary(0.001, front_volume=0.2), trials, 1, 0.2)]
    json.dumps({"runs": rows, "checks": checks(rows)}, allow_nan=False)  # results.json takes plain floats and bools


def test_send_nothing_counts_as_feasible_but_at_most_one_run_in_ten():
    rows = [run_row(summary(0.001), (), seed, 0.2) for seed in range(9)]
    rows.append(run_row(summary(0.0, certified=False, conversion_truth=0.01, front_volume=0.0), (), 9, 0.2))
    result = checks(rows)
    assert result["feasible"]["truly_feasible"] == 10
    assert result["feasible"]["no_certified_point"] == 1
    assert result["feasible"]["verdict"] == PASS
    # its conversion and empty front still count against the other checks
    assert result["conversion"]["runs_met"] == 9 and result["conversion"]["verdict"] == NOT_MET
    assert result["hypervolume"]["runs_met"] == 9 and result["hypervolume"]["verdict"] == NOT_MET
    assert result["hypervolume_bounded"]["runs_met"] == 0  # no trial truths given: undefined, never met

    rows[0] = run_row(summary(0.0, certified=False), (), 0, 0.2)
    assert checks(rows)["feasible"]["verdict"] == NOT_MET  # two of ten without a certified point


def test_feasibility_needs_nine_runs_in_ten_within_budget_in_truth():
    rows = [run_row(summary(0.001), (), seed, 0.2) for seed in range(8)]
    rows += [run_row(summary(0.003), (), seed, 0.2) for seed in (8, 9)]
    result = checks(rows)
    assert result["feasible"]["figure"] == "8 of 10 truly feasible; 0 of 10 without a certified point"
    assert result["feasible"]["verdict"] == NOT_MET


def test_coverage_counts_run_objective_pairs():
    rows = [run_row(summary(0.001, miss_conversion=seed < 2), (), seed, 0.2) for seed in range(10)]
    result = checks(rows)
    assert (result["coverage"]["covered"], result["coverage"]["pairs"]) == (18, 20)
    assert result["coverage"]["verdict"] == PASS  # 90%
    rows.append(run_row(summary(0.001, miss_conversion=True), (), 10, 0.2))
    assert checks(rows)["coverage"]["verdict"] == NOT_MET  # 19 of 22


def test_tables_show_each_run_and_each_verdict():
    rows = [
        run_row(summary(0.001, miss_conversion=True), (), 1, 0.2),
        run_row(summary(0.0, certified=False), (), 2, 0.8),
    ]
    table = runs_table(rows)
    assert "0.09000 [0.08800, 0.09200] / 0.05000 *" in table
    assert "no (send nothing)" in table
    assert table.count("\n") == 3
    assert (
        "| coverage | interval covers truth in >= 90% of (run, objective) pairs | 3 of 4 pairs (75%) | NOT MET |"
        in (checks_table(checks(rows)))
    )


def test_no_runs_meet_nothing():
    assert all(check["verdict"] == NOT_MET for check in checks([]).values())
