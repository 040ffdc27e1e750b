"""`mtr ab simulate` on a small world, the simulator's A/B hook, and the one-step estimates."""

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mtr.abtest.simulate import one_step_estimates, run_experiment, unit_table
from mtr.abtest.spec import PolicyChange
from mtr.cli import main
from mtr.errors import InputError
from mtr.sim.config import WorldConfig
from mtr.sim.engine import run_days

WORLD = WorldConfig()


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    out = tmp_path_factory.mktemp("absim") / "out"
    config = Path(__file__).resolve().parents[2] / "configs" / "ab" / "simulate_send_more.yaml"
    main(["ab", "simulate", "--config", str(config), "--out", str(out), "--users", "1500", "--days", "10"])
    return out


def test_simulate_writes_units_and_a_report_with_the_expected_effects(simulated):
    units = pl.read_parquet(simulated / "units.parquet")
    assert units.height == 1500 and set(units["arm"]) == {"logging", "variant"}
    assert units["retained"].is_in([0, 1]).all() and (units["sends"] <= 10).all()
    results = json.loads((simulated / "results.json").read_text())
    rows = {m["metric"]["name"]: m for m in results["metrics"]}
    sends = rows["sends_per_opportunity"]
    # The variant sends nothing less often (none_share 0.45 -> 0.2), so it sends more.
    assert sends["effect"]["abs_ci"][0] > 0 and sends["significant"]
    assert rows["engagements_per_opportunity"]["variance_reduction"] > 0
    assert results["sample_ratio"]["p_value"] > 0.001
    assert "none_share 0.45 -> 0.2" in (simulated / "README.md").read_text()


def test_off_policy_estimate_agrees_with_the_oracle_and_the_test_measures_the_same_direction(simulated):
    results = json.loads((simulated / "results.json").read_text())
    steps = {s["quantity"]: s for s in results["one_step"]}
    for quantity in ("sends", "engagements"):
        step = steps[quantity]
        assert step["off_policy_difference"] == pytest.approx(step["oracle_difference"], rel=0.15)
        assert step["measured_difference"] > 0
    # On the logging policy the oracle's expectation and the log's mean rate agree.
    assert steps["sends"]["off_policy_logging"] == pytest.approx(steps["sends"]["oracle_logging"], rel=0.03)


def test_the_hook_leaves_a_plain_run_unchanged_when_no_user_is_in_the_variant():
    variant = PolicyChange(none_share=0.2).apply(WORLD)
    plain = run_days(np.random.default_rng(3), 300, 5, WORLD)
    nobody = run_days(np.random.default_rng(3), 300, 5, WORLD, variant, np.zeros(300, bool))
    assert np.array_equal(plain.history.hour, nobody.history.hour)
    assert np.array_equal(plain.propensity, nobody.propensity)
    everybody = run_days(np.random.default_rng(3), 300, 5, WORLD, variant, np.ones(300, bool))
    assert everybody.history.sent.mean() > plain.history.sent.mean()


def test_unit_table_counts_match_the_log():
    variant = PolicyChange(exploration=0.3).apply(WORLD)
    log, in_variant = run_experiment(400, 6, 1, WORLD, variant)
    units = unit_table(log, in_variant, 1)
    assert units["sends"].sum() == log.history.sent.sum()
    assert units["engagements"].sum() == log.engaged.sum()
    assert (units["arm"] == "variant").to_numpy().tolist() == in_variant.tolist()
    steps = one_step_estimates(log, in_variant, variant)
    assert [s.quantity for s in steps] == ["sends", "engagements", "unsubscribes"]


def test_a_variant_that_changes_nothing_is_refused():
    with pytest.raises(InputError, match="leaves every policy knob as it is"):
        PolicyChange(none_share=None).apply(WORLD)
