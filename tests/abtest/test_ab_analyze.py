"""`mtr ab analyze` end to end on synthetic per-user data, its YAML contract and its bad inputs."""

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from statsmodels.stats.multitest import multipletests

from mtr.abtest.commands import ab_analyze
from mtr.abtest.spec import MetricSpec
from mtr.cli import main
from mtr.errors import InputError

CONFIG = """
arm_column: arm
control: control
unit_column: user_id
metrics:
  - {name: conversions_per_user, column: conversions, covariate: pre_conversions}
  - {name: sends_per_user, column: sends, role: secondary}
  - {name: engagements_per_send, numerator: engagements, denominator: sends, role: secondary}
  - {name: conversions_per_engagement, numerator: conversions, denominator: engagements, role: secondary}
  - {name: unsubscribe_rate, numerator: unsubscribes, denominator: sends, role: guardrail, better: lower, margin: 0.2}
decompositions:
  - {name: conversions per user, factors: [sends_per_user, engagements_per_send, conversions_per_engagement]}
"""


def _users(n: int = 6000, seed: int = 0) -> pl.DataFrame:
    """Users in three arms; "more" sends 30% more messages, "better" engages more per send."""
    rng = np.random.default_rng(seed)
    arm = rng.choice(["control", "more", "better"], size=n)
    activity = rng.gamma(2.0, 0.5, n)
    sends = rng.poisson(np.where(arm == "more", 6.5, 5.0))
    engage_p = np.clip(0.2 * activity * np.where(arm == "better", 1.3, 1.0), 0, 1)
    engagements = rng.binomial(sends, engage_p)
    conversions = rng.binomial(engagements, 0.3)
    return pl.DataFrame(
        {
            "user_id": np.arange(n),
            "arm": arm,
            "sends": sends,
            "engagements": engagements,
            "conversions": conversions,
            "unsubscribes": rng.binomial(sends, 0.002),
            "pre_conversions": rng.poisson(activity * 1.5),
        }
    )


@pytest.fixture(scope="module")
def analysed(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ab")
    _users().write_parquet(folder / "users.parquet")
    (folder / "spec.yaml").write_text(CONFIG)
    main(["ab", "analyze", "--config", str(folder / "spec.yaml"), "--data", str(folder / "users.parquet"),
          "--out", str(folder / "out")])  # fmt: skip
    return folder / "out"


def test_analyze_writes_the_report_files(analysed):
    assert sorted(p.name for p in analysed.iterdir()) == [
        ".mtr-output.json",
        "README.md",
        "forest.png",
        "results.json",
        "summary.csv",
        "summary.md",
    ]  # fmt: skip (the marker: a rerun may replace the folder, no other command may)
    assert (analysed / "forest.png").read_bytes()[:4] == b"\x89PNG"
    summary = pl.read_csv(analysed / "summary.csv")
    assert summary.height == 5 * 2
    sends = summary.filter(metric="sends_per_user", arm="more").row(0, named=True)
    assert sends["rel_diff"] == pytest.approx(0.3, abs=0.05) and sends["significant"]
    engage = summary.filter(metric="engagements_per_send", arm="better").row(0, named=True)
    assert engage["rel_ci_low"] > 0.15 and engage["kind"] == "ratio"
    assert "| control | more |" not in (analysed / "summary.md").read_text()
    assert "Decomposition of conversions per user, more against control" in (analysed / "README.md").read_text()


def test_multiplicity_correction_is_holm_and_bh_over_primary_and_secondary_tests(analysed):
    summary = pl.read_csv(analysed / "summary.csv")
    family = summary.filter(pl.col("role") != "guardrail")
    assert family.height == 8
    p_values = family["p_value"].to_numpy()
    assert family["p_holm"].to_numpy() == pytest.approx(multipletests(p_values, method="holm")[1])
    assert family["p_bh"].to_numpy() == pytest.approx(multipletests(p_values, method="fdr_bh")[1])
    assert summary.filter(role="guardrail")["p_holm"].null_count() == 2


def test_decomposition_factors_multiply_to_the_total_and_shares_add_up(analysed):
    results = json.loads((analysed / "results.json").read_text())
    by_arm = {d["arm"]: d for d in results["decompositions"]}
    for d in by_arm.values():
        factors = d["factors"]
        assert np.prod([f["treatment"] for f in factors]) == pytest.approx(d["treatment"])
        assert np.prod([1 + f["rel_lift"] for f in factors]) == pytest.approx(1 + d["rel_lift"])
        assert sum(f["share"] for f in factors) == pytest.approx(1.0)
    # "more" lifts conversions through sends, "better" through engagement per send.
    assert by_arm["more"]["factors"][0]["share"] > 0.6
    assert by_arm["better"]["factors"][1]["share"] > 0.6


def test_cuped_and_guardrail_figures_are_reported(analysed):
    results = json.loads((analysed / "results.json").read_text())
    conversions = [m for m in results["metrics"] if m["metric"]["name"] == "conversions_per_user"]
    assert all(0.05 < m["variance_reduction"] < 0.9 for m in conversions)
    assert all(m["mde"] < m["mde_unadjusted"] for m in conversions)
    unsubscribes = [m for m in results["metrics"] if m["metric"]["name"] == "unsubscribe_rate"]
    assert {m["guardrail"]["status"] for m in unsubscribes} <= {"pass", "fail", "inconclusive"}
    assert set(results["decisions"]) == {"more", "better"}


def test_a_misspelt_yaml_field_fails_naming_it(tmp_path, capsys):
    (tmp_path / "spec.yaml").write_text(CONFIG.replace("covariate: pre", "covariat: pre"))
    with pytest.raises(SystemExit):
        main(["ab", "analyze", "--config", str(tmp_path / "spec.yaml"), "--data", "x.csv", "--out", str(tmp_path)])
    assert "covariat" in capsys.readouterr().err


def _analyze(tmp_path: Path, frame: pl.DataFrame, metrics: list[MetricSpec], **kwargs) -> None:
    frame.write_csv(tmp_path / "units.csv")
    ab_analyze(tmp_path / "units.csv", tmp_path / "out", "arm", "control", metrics, **kwargs)


UNITS = pl.DataFrame({"arm": ["control", "control", "b", "b"], "y": [1, 0, 1, 1], "d": [1, 2, 0, 0]})


@pytest.mark.parametrize(
    ("frame", "metric", "kwargs", "message"),
    [
        (UNITS, MetricSpec("m", column="missing"), {}, r"table 'units.csv' has no column 'missing'"),
        (UNITS, MetricSpec("m", column="y"), {"arms": ["b", "c"]}, r"arm 'c' has no units in column 'arm'"),
        (UNITS.filter(arm="control"), MetricSpec("m", column="y"), {}, r"single arm \['control'\]"),
        (UNITS, MetricSpec("m", numerator="y", denominator="d"), {}, r"denominator 'd' sums to zero in arm 'b'"),
        (UNITS, MetricSpec("m", column="y"), {"unit_column": "y"}, r"column 'y' has duplicated units"),
        (UNITS.clear(), MetricSpec("m", column="y"), {}, r"units.csv has no rows \(columns only"),
    ],
)
def test_bad_inputs_fail_with_a_clear_error(tmp_path, frame, metric, kwargs, message):
    with pytest.raises(InputError, match=message):
        _analyze(tmp_path, frame, [metric], **kwargs)
    assert not (tmp_path / "out").exists()


def test_a_missing_data_file_is_named(tmp_path):
    with pytest.raises(InputError, match="experiment data file not found"):
        ab_analyze(tmp_path / "nope.csv", tmp_path / "out", "arm", "control", [MetricSpec("m", column="y")])
