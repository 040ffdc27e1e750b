"""A study on the log's own candidate table is the study on the simulator's candidates: the oracle is only truth."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from mtr.cli import main
from mtr.data.candidates import read_dataset_candidates
from mtr.errors import InputError
from mtr.ope.problem import candidate_source, split_rows
from mtr.scoring.candidates import CandidateTable, simulator_candidates

QUIET = ["--wandb", "false", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.fixture(scope="module")
def trained(sim_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("log_candidates_run")
    args = ["--data.path", str(sim_dataset), "--trainer.default_root_dir", str(out), "--trainer.max_epochs", "1"]
    main(["fit", "--config", "configs/experiment/sim_mmoe.yaml", *args, "--seed_everything", "0", *QUIET])
    return out


def study(sim_dataset: Path, run: Path, out: Path, candidates: str) -> dict:
    main(
        ["pareto", "--config", "configs/pareto/sim.yaml", "--run", str(run), "--dataset", str(sim_dataset)]
        + ["--events", str(sim_dataset.parent / "events"), "--out", str(out), "--candidates", candidates]
        + ["--n_trials", "16", "--sampler.population_size", "8"]
    )
    return json.loads((out / "summary.json").read_text())


def test_the_simulators_candidate_table_lists_what_its_oracle_allowed(sim_dataset: Path) -> None:
    rows, _ = split_rows(sim_dataset, "validation")
    logged = CandidateTable.from_frame(read_dataset_candidates(sim_dataset, rows["row_id"]))
    oracle = simulator_candidates(sim_dataset.parent / "events", rows)
    columns = ["row_id", "message_id", "channel", "hour", "propensity", "message_type", "topic", "has_discount"]
    assert logged.frame.select(columns).equals(oracle.frame.select(columns))
    assert logged.groups.n_groups == rows.height


@pytest.fixture(scope="module")
def from_log(sim_dataset: Path, trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("study_from_log")
    study(sim_dataset, trained, out, "log")
    return out


def test_the_study_on_the_logs_candidates_gives_the_oracles_front(
    sim_dataset: Path, trained: Path, from_log: Path, tmp_path: Path
) -> None:
    from_oracle = study(sim_dataset, trained, tmp_path / "simulator", "simulator")
    log_summary = json.loads((from_log / "summary.json").read_text())
    assert log_summary["problem"]["candidates"] == "log" and from_oracle["problem"]["candidates"] == "simulator"
    assert pl.read_csv(from_log / "front.csv").equals(pl.read_csv(tmp_path / "simulator" / "front.csv"))
    assert log_summary["chosen"] == from_oracle["chosen"] and log_summary["chosen"]["truth"]  # truth from the oracle


def test_ope_evaluate_judges_the_operating_point_on_test_with_intervals_beside_truth(
    sim_dataset: Path, trained: Path, from_log: Path, tmp_path: Path
) -> None:
    out = tmp_path / "evaluation"
    events = sim_dataset.parent / "events"
    main(["ope", "evaluate", "--run", str(trained), "--dataset", str(sim_dataset), "--events", str(events)]
         + ["--weights", str(from_log / "weights.json"), "--out", str(out)])  # fmt: skip
    report = json.loads((out / "evaluation.json").read_text())
    test_rows = pl.read_parquet(sim_dataset / "test.parquet").height
    assert report["split"] == "test" and report["opportunities"] == test_rows
    assert report["problem"]["candidates"] == "log"
    nothing = report["policies"]["send_nothing"]
    assert nothing["send_share"] == 0 and nothing["rewards"]["send_volume"]["truth"] == 0
    assert nothing["rewards"]["send_volume"]["ips"]["value"] == 0
    # The logging policy's estimate is the logged mean (importance weights 1), and its truth the oracle's.
    logging = report["policies"]["logging_policy"]
    test = pl.read_parquet(sim_dataset / "test.parquet")
    assert logging["rewards"]["send_volume"]["ips"]["value"] == pytest.approx((test["channel"] != "none").mean())
    assert logging["send_share"] == pytest.approx(logging["rewards"]["send_volume"]["truth"])
    point = report["policies"]["operating_point"]["rewards"]
    for reward in ("conversion", "retention", "unsubscribe", "send_volume"):
        estimate = point[reward]["dros"]
        assert estimate["ci_low"] <= estimate["value"] <= estimate["ci_high"]
        # Within four standard errors of the oracle's truth on the same decisions (one fixed world and seed).
        assert abs(estimate["value"] - point[reward]["truth"]) <= 4 * estimate["standard_error"] + 1e-4, reward


def test_auto_takes_the_logs_candidates_then_the_simulators_then_arms() -> None:
    assert candidate_source("auto", log_has_candidates=True, simulated=True) == "log"
    assert candidate_source("auto", log_has_candidates=False, simulated=True) == "simulator"
    # A platform's log without a candidate table: its events give no oracle, so arms (randomised experiments).
    assert candidate_source("auto", log_has_candidates=False, simulated=False) == "arms"
    with pytest.raises(InputError, match="'simulator' needs --events, the folder `mtr simulate` wrote"):
        candidate_source("simulator", log_has_candidates=True, simulated=False)


def test_log_candidates_are_required_where_asked_for(sim_dataset: Path, trained: Path, tmp_path: Path) -> None:
    bare = tmp_path / "no_candidates"
    bare.mkdir()
    for file in sim_dataset.iterdir():
        if file.name != "candidates.parquet":
            (bare / file.name).symlink_to(file)
    with pytest.raises(InputError, match="candidates: 'log' needs the dataset's candidates.parquet"):
        main(["pareto", "--config", "configs/pareto/sim.yaml", "--run", str(trained), "--dataset", str(bare)]
             + ["--out", str(tmp_path / "out"), "--candidates", "log"])  # fmt: skip
