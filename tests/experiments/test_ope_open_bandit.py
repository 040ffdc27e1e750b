"""Open Bandit: BTS's click rate from the random log, against BTS's own logged click rate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mtr.cli import main
from mtr.experiments.ope_open_bandit import FOLDER, bts_distribution, random_log_feedback, read_log, reward_model
from mtr.ope.estimators import evaluate
from mtr.scoring.policy import PolicyDecision


@pytest.fixture(scope="module")
def source(data_dir: Path) -> Path:
    return data_dir / FOLDER


def test_uniform_target_on_the_uniform_log_gives_its_click_rate(source: Path) -> None:
    random = read_log(source, "random", "men")
    n_items = 34
    feedback = random_log_feedback(random, n_items, reward_model(random, n_items, prior=200.0, folds=2))
    uniform = np.tile(np.r_[0.0, np.full(n_items, 1 / n_items)], random.height)
    result = evaluate(feedback, PolicyDecision(feedback.groups, probabilities=uniform))
    assert result.value("click", "ips") == pytest.approx(random["click"].mean(), abs=1e-12)
    assert result.effective_sample_size["click"] == pytest.approx(random.height)


def test_bts_frequency_distribution_is_its_share_of_impressions(source: Path) -> None:
    bts = read_log(source, "bts", "all")
    distribution = bts_distribution(bts, 80, "frequency", bts["day"])[0]  # [3, 80]
    np.testing.assert_allclose(distribution.sum(axis=1), 1.0)
    top = bts.filter(pl.col("position") == 0)["item_id"].value_counts(sort=True).row(0)
    assert distribution[0, top[0]] == pytest.approx(top[1] / (bts["position"] == 0).sum())
    daily = bts_distribution(bts, 80, "daily_frequency", bts["day"][:5])
    assert daily.shape == (5, 3, 80)


def test_command_estimates_bts_within_noise_of_its_logged_click_rate(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    main(
        [
            "ope",
            "open-bandit",
            "--campaigns",
            "[all]",
            "--targets",
            "[frequency]",
            "--source",
            str(source),
            "--out",
            str(out),
        ]
    )
    result = json.loads((out / "results.json").read_text())["campaigns"]["all"]
    assert result["bts_click_rate"]["value"] == pytest.approx(0.0042)  # the published BTS CTR on "all"
    assert result["random_click_rate"] == pytest.approx(0.0038)
    for estimator in ("ips", "snips", "dr"):
        estimate = result["targets"]["frequency"][estimator]
        assert abs(estimate["z_vs_truth"]) < 3, estimator  # the two samples agree within their noise
        assert estimate["relative_error"] < 0.5
    assert "| all | frequency | dr |" in (out / "README.md").read_text()
