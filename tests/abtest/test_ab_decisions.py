"""Multiple testing, the sample ratio check, guardrails and the per-arm decision."""

import numpy as np
import pytest
from scipy import stats

from mtr.abtest.decisions import decide, guardrail_test, sample_ratio_check
from mtr.abtest.effects import ArmEstimate, compare
from mtr.abtest.spec import MetricSpec
from mtr.errors import InputError

UNSUBSCRIBE = MetricSpec("unsubscribe", column="unsub", role="guardrail", better="lower", margin=0.05)
CONVERSION = MetricSpec("conversion", column="conv")


def _comparison(control: float, treatment: float, se: float):
    return compare(ArmEstimate(10000, control, se**2 / 2), ArmEstimate(10000, treatment, se**2 / 2))


def test_sample_ratio_check_flags_a_broken_split_and_reads_designed_shares():
    assert not sample_ratio_check({"a": 50000, "b": 50210}, None).mismatch
    broken = sample_ratio_check({"a": 50000, "b": 51500}, None)
    assert broken.mismatch
    assert broken.p_value == pytest.approx(stats.chisquare([50000, 51500]).pvalue)
    designed = sample_ratio_check({"c": 62500, "t": 12480}, {"c": 0.625, "t": 0.125})
    assert not designed.mismatch and designed.expected_share["c"] == pytest.approx(5 / 6)
    with pytest.raises(InputError, match="expected_share names arms"):
        sample_ratio_check({"c": 10, "t": 10}, {"c": 0.5, "x": 0.5})


@pytest.mark.parametrize(
    ("treatment", "status"),
    [(0.0100, "pass"), (0.0120, "fail"), (0.0104, "inconclusive")],
)
def test_guardrail_non_inferiority_on_a_relative_margin(treatment, status):
    # unsubscribe rate 1% in control, margin 5% relative (i.e. up to 1.05%)
    result = guardrail_test(UNSUBSCRIBE, _comparison(0.0100, treatment, se=0.0001), alpha=0.05)
    assert result.status == status
    assert result.harm == pytest.approx(treatment / 0.01 - 1)


def test_guardrail_on_an_absolute_margin_for_a_higher_is_better_metric():
    retention = MetricSpec("retention", column="r", role="guardrail", margin=0.01, margin_relative=False)
    drop = guardrail_test(retention, _comparison(0.40, 0.37, se=0.005), alpha=0.05)
    assert drop.status == "fail" and drop.harm == pytest.approx(0.03)
    flat = guardrail_test(retention, _comparison(0.40, 0.401, se=0.002), alpha=0.05)
    assert flat.status == "pass" and flat.harm_bound == pytest.approx(-0.001 + stats.norm.ppf(0.95) * 0.002)


def test_decisions_cover_ship_do_not_ship_and_inconclusive():
    up = _comparison(0.10, 0.12, se=0.002)
    down = _comparison(0.10, 0.08, se=0.002)
    good = guardrail_test(UNSUBSCRIBE, _comparison(0.01, 0.01, se=0.0001), 0.05)
    bad = guardrail_test(UNSUBSCRIBE, _comparison(0.01, 0.02, se=0.0001), 0.05)
    unsure = guardrail_test(UNSUBSCRIBE, _comparison(0.01, 0.0104, se=0.0001), 0.05)
    assert decide([(CONVERSION, up, True)], [good], False)[0] == "ship"
    assert decide([(CONVERSION, up, True)], [bad], False) == (
        "do not ship",
        "guardrail(s) worse than their margin: unsubscribe",
    )
    assert decide([(CONVERSION, down, True)], [good], False)[0] == "do not ship"
    assert decide([(CONVERSION, up, True)], [unsure], False)[0] == "inconclusive"
    assert decide([(CONVERSION, up, False)], [good], False)[0] == "inconclusive"
    assert "sample ratio mismatch" in decide([(CONVERSION, up, True)], [good], True)[1]


def test_metric_specs_reject_contradictory_fields():
    with pytest.raises(InputError, match="either 'column' or both"):
        MetricSpec("m", column="a", numerator="b", denominator="c")
    with pytest.raises(InputError, match="needs a non-negative 'margin'"):
        MetricSpec("m", column="a", role="guardrail")
    with pytest.raises(InputError, match="guardrails only"):
        MetricSpec("m", column="a", margin=0.1)
    assert np.isfinite(guardrail_test(UNSUBSCRIBE, _comparison(0.01, 0.01, 0.001), 0.05).harm_bound)
