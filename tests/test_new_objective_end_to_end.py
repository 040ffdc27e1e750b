"""A fifth objective, declared by the objective table and a label rule alone, runs through every stage.

`fifth_objective_world` (tests/conftest.py) simulates a small world and builds its dataset with the messaging
table plus `purchase_value` (continuous, label rule "conversion_value"). Nothing else names the objective:
`mtr fit` trains it, `mtr pareto` weighs it and estimates it off-policy, `mtr export` and `mtr score` serve it.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mtr.cli import main
from mtr.data.batch import sparse_batch
from mtr.models.checkpoint import load_trained_model
from mtr.ope.estimators import evaluate
from mtr.ope.problem import simulator_scored, split_rows
from mtr.ope.scorers import load_scorers
from mtr.schema import CHANNELS, NO_SEND, DatasetSchema
from mtr.scoring.candidates import CandidateTable, channel_task_index
from mtr.scoring.fusion import FusionInputs, fuse
from mtr.scoring.groups import channel_codes
from mtr.scoring.operating_point import OperatingPoint
from mtr.scoring.policy import PolicyDecision
from mtr.scoring.weights import FusionWeights

FIFTH = "purchase_value"
QUIET = ["--wandb", "false", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.fixture(scope="module")
def trained(fifth_objective_world: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder: MMoE trained for 2 epochs on the five-objective dataset by `mtr fit`."""
    run = tmp_path_factory.mktemp("fifth_run")
    args = ["--data.path", str(fifth_objective_world[1]), "--trainer.default_root_dir", str(run)]
    main(["fit", "--config", "configs/experiment/sim_mmoe.yaml", *args, "--trainer.max_epochs", "2", *QUIET])
    return run


@pytest.fixture(scope="module")
def studied(fifth_objective_world: tuple[Path, Path], trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`mtr pareto` with the fifth objective searched, maximised and estimated off-policy."""
    events, dataset = fifth_objective_world
    out = tmp_path_factory.mktemp("fifth_pareto")
    objectives = {"conversion": "maximize", "unsubscribe": "minimize", FIFTH: "maximize"}
    main(
        ["pareto", "--config", "configs/pareto/sim.yaml", "--run", str(trained), "--dataset", str(dataset)]
        + ["--events", str(events), "--out", str(out), "--n_trials", "24", "--constraints", "{}"]
        + ["--objectives", json.dumps(objectives), "--params", json.dumps(_params())]
    )
    return out


def _params() -> dict[str, dict]:
    weight = {"type": "float", "low": 1e-4, "high": 1.0, "log": True}
    return {FIFTH: weight, "unsubscribe": {**weight, "high": 50.0}, "send_cost": weight}


def test_training_learns_the_continuous_objective_as_a_value_and_reports_its_error(trained: Path) -> None:
    metrics = pl.read_csv(next(trained.rglob("metrics.csv")))
    rmse = [c for c in metrics.columns if c.startswith("val/") and FIFTH in c and "rmse" in c]
    assert rmse, f"no validation RMSE of {FIFTH} among {metrics.columns}"
    assert not any(FIFTH in c and "auc" in c for c in metrics.columns)  # no AUC of a value
    model, schema = load_trained_model(trained)
    assert schema.objective(FIFTH).kind == "continuous"
    assert [t.name for t in schema.tasks if t.objective == FIFTH] == [
        f"{FIFTH}_{c}" for c in ("push", "email", "in_app", "none")
    ]


def test_the_study_weighs_and_estimates_the_fifth_objective_with_intervals(studied: Path) -> None:
    summary = json.loads((studied / "summary.json").read_text())
    point = OperatingPoint.load(studied / "weights.json")
    assert FIFTH in point.fusion.weights and point.fusion.weights[FIFTH] > 0
    estimate = summary["chosen"]["estimates"][FIFTH]["dr"]
    assert estimate["standard_error"] > 0 and estimate["ci_high"] - estimate["ci_low"] > 0
    assert 0 < estimate["value"] < 100  # a summed purchase value per opportunity (values average about 32)
    # The oracle knows the outcomes the world draws, not values derived from them: it says so rather than guess.
    assert FIFTH in summary["oracle"]["skipped"]
    assert summary["chosen"]["truth"]["conversion"] > 0
    front = pl.read_csv(studied / "front.csv")
    assert {f"est_{FIFTH}", FIFTH} <= set(front.columns)


def test_off_policy_evaluation_of_the_logging_policy_returns_the_logged_mean_value(
    fifth_objective_world: tuple[Path, Path], trained: Path
) -> None:
    events, dataset = fifth_objective_world
    rows, schema = split_rows(dataset, "validation")
    candidates, problem = simulator_scored(load_scorers([trained], "last.ckpt", ["validation"]), rows, events)
    logging = PolicyDecision(candidates.groups, probabilities=candidates.frame["propensity"].to_numpy())
    result = evaluate(problem.feedback, logging)
    # The logged mean, from the dataset's own label and mask columns (not from the feedback under test).
    channels = (*CHANNELS, NO_SEND)
    mask = pl.coalesce([pl.when(pl.col("channel") == c).then(pl.col(f"mask_{FIFTH}_{c}")) for c in channels])
    labelled = rows.filter(mask == 1)
    logged_mean = labelled[f"label_{FIFTH}"].mean()
    assert labelled.height > 1000 and logged_mean > 0.1
    ips = result.estimates[FIFTH]["ips"]
    assert ips.value == pytest.approx(logged_mean, rel=1e-9)  # importance weights are all 1 on-policy
    low, high = ips.interval
    assert low < logged_mean < high
    k = list(problem.feedback.reward_names).index(FIFTH)
    assert np.isnan(problem.truth[:, k]).all() and np.isfinite(problem.truth[:, 0]).all()


def test_the_exported_program_serves_the_fifth_objective_and_fuses_it_as_the_study_does(
    fifth_objective_world: tuple[Path, Path], trained: Path, studied: Path, tmp_path: Path
) -> None:
    events, dataset = fifth_objective_world
    checkpoint = trained / "checkpoints" / "last.ckpt"
    main(["export", "--checkpoint", str(checkpoint), "--weights", str(studied / "weights.json")]
         + ["--out", str(tmp_path / "artifact"), "--aoti", "false"])  # fmt: skip
    main(["candidates", "--events", str(events), "--dataset", str(dataset), "--opportunities", "200"]
         + ["--out", str(tmp_path / "candidates.parquet")])  # fmt: skip
    main(["score", "--artifact", str(tmp_path / "artifact"), "--input", str(tmp_path / "candidates.parquet")]
         + ["--out", str(tmp_path / "scores.parquet"), "--id_columns", "[candidate_id]"])  # fmt: skip
    manifest = json.loads((tmp_path / "artifact" / "manifest.json").read_text())
    assert f"{FIFTH}_push" in json.dumps(manifest["tasks"])
    scores = pl.read_parquet(tmp_path / "scores.parquet").sort("candidate_id")
    candidates = pl.read_parquet(tmp_path / "candidates.parquet").sort("candidate_id")
    schema = DatasetSchema.load(dataset)
    # Served predictions equal the trained model's raw outputs (a value is not squashed by a sigmoid).
    model, _ = load_trained_model(trained)
    served = scores.select([f"p_{t.name}" for t in schema.tasks]).to_numpy()
    raw = _raw_outputs(model, schema, candidates)
    continuous = [i for i, t in enumerate(schema.tasks) if t.objective == FIFTH]
    np.testing.assert_allclose(served[:, continuous], raw[:, continuous], rtol=1e-5, atol=1e-5)
    # The served score is the study's numpy fusion of the same predictions, fifth objective included.
    point = OperatingPoint.load(studied / "weights.json")
    inputs, order = _fusion_inputs(schema, candidates, served)
    fused = fuse(inputs, point.fusion)
    np.testing.assert_allclose(scores["score"].to_numpy()[order], fused, rtol=1e-4, atol=1e-5)
    weights = {**point.fusion.weights, FIFTH: point.fusion.weights[FIFTH] * 10}
    assert not np.allclose(fuse(inputs, FusionWeights(weights, **point.fusion.settings())), fused)  # it moves scores


def _raw_outputs(model, schema: DatasetSchema, candidates: pl.DataFrame) -> np.ndarray:
    import torch

    from mtr.data.preprocess import encode_features

    features = encode_features(candidates, schema, table="candidates")
    keys = [f.name for f in schema.sparse_features]
    with torch.no_grad():
        return model(
            sparse_batch(keys, torch.from_numpy(features.sparse_ids)), torch.from_numpy(features.dense)
        ).numpy()


def _fusion_inputs(
    schema: DatasetSchema, candidates: pl.DataFrame, served: np.ndarray
) -> tuple[FusionInputs, np.ndarray]:
    """Each candidate's own-channel predictions [N, K] (organic ones for "none") in group order, and the
    candidate ids in that order."""
    one_instant = pl.lit(datetime(2026, 1, 1)).alias("ts")
    frame = candidates.select("row_id", "candidate_id", "channel", "message_id", "hour")
    table = CandidateTable.from_frame(frame.with_columns(pl.col("row_id").alias("user_id"), one_instant))
    order = table.frame["candidate_id"].to_numpy()
    channel = channel_codes(table.frame["channel"])
    index = channel_task_index(schema)[channel]  # [N, K], -1 where the channel has no such task
    own = np.where(index >= 0, np.take_along_axis(served[order], np.maximum(index, 0), axis=1), 0.0)
    return FusionInputs(table.groups, own, objectives=schema.objective_table), order
