"""The three public A/B experiments: their configs run, reproduce the published rates, and match the
committed results.json."""

import json
from pathlib import Path

import pytest

from mtr.cli import main

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def _run(name: str, data_dir: Path, out: Path, monkeypatch) -> dict:
    monkeypatch.setenv("MTR_DATA_DIR", str(data_dir))
    main(["ab", "analyze", "--config", str(EXPERIMENTS / name / "config.yaml"), "--out", str(out)])
    return json.loads((out / "results.json").read_text())


def _rows(results: dict) -> dict[tuple[str, str], dict]:
    return {(m["metric"]["name"], m["arm"]): m for m in results["metrics"]}


def _committed(name: str) -> dict:
    return json.loads((EXPERIMENTS / name / "results" / "results.json").read_text())


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}/{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _flatten(item, f"{prefix}/{i}").items()}
    return {prefix: value}


def _same_figures(fresh: dict, committed: dict) -> None:
    """The committed results.json is what the committed config produces (to float rounding)."""
    fresh, committed = _flatten({**fresh, "command": None}), _flatten({**committed, "command": None})
    assert fresh.keys() == committed.keys()
    for key, value in fresh.items():
        assert value == (pytest.approx(committed[key], rel=1e-9) if isinstance(value, float) else committed[key]), key


def test_cookie_cats_reproduces_the_known_retention_rates(data_dir, tmp_path, monkeypatch):
    results = _run("ab_cookie_cats", data_dir, tmp_path / "out", monkeypatch)
    rows = _rows(results)
    for metric, control, treatment in (("retention_1", 0.4482, 0.4423), ("retention_7", 0.1902, 0.1820)):
        effect = rows[(metric, "gate_40")]["unadjusted"]
        assert (round(effect["control"], 4), round(effect["treatment"], 4)) == (control, treatment)
    assert rows[("retention_7", "gate_40")]["significant"]
    assert results["sample_ratio"]["observed"] == {"gate_30": 44700, "gate_40": 45489}
    _same_figures(results, _committed("ab_cookie_cats"))


def test_hillstrom_reproduces_the_challenge_figures(data_dir, tmp_path, monkeypatch):
    results = _run("ab_hillstrom", data_dir, tmp_path / "out", monkeypatch)
    rows = _rows(results)
    for arm, visit, spend in (("Mens E-Mail", 0.1828, 1.4226), ("Womens E-Mail", 0.1514, 1.0772)):
        assert round(rows[("visit", arm)]["unadjusted"]["treatment"], 4) == visit
        assert round(rows[("spend", arm)]["unadjusted"]["treatment"], 4) == spend
        assert round(rows[("spend", arm)]["unadjusted"]["control"], 4) == 0.6528
    per_visitor = rows[("spend_per_visitor", "Mens E-Mail")]["unadjusted"]
    assert per_visitor["control"] == pytest.approx(0.6528 / 0.1062, rel=1e-3)
    assert all(d["factors"][0]["metric"] == "visit" for d in results["decompositions"])
    _same_figures(results, _committed("ab_hillstrom"))


def test_social_pressure_reproduces_the_published_turnout(data_dir, tmp_path, monkeypatch):
    results = _run("ab_social_pressure", data_dir, tmp_path / "out", monkeypatch)
    neighbors = _rows(results)[("turnout_2006", "Neighbors")]
    assert (round(neighbors["unadjusted"]["control"], 4), round(neighbors["unadjusted"]["treatment"], 4)) == (
        0.2966,
        0.3779,
    )
    assert 0.01 < neighbors["variance_reduction"] < 0.1  # primary2004 correlates about 0.16 with turnout
    assert not results["sample_ratio"]["p_value"] < results["sample_ratio"]["threshold"]
    _same_figures(results, _committed("ab_social_pressure"))
