"""Another platform's log runs the whole pipeline with no code change: its features declared in a config.

The foreign log (`world.py`) has none of the simulator's attribute names, two decisions a day, a policy that runs
to the log's end, templates launched mid-log, users who sign up mid-log, engagements of sends made before the
log starts, and a candidate table. `mtr build-dataset --features` reads it; `mtr fit`, `mtr pareto` (on the log's
own candidates), `mtr export`, `mtr candidates` and `mtr score` follow.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from foreign_log.world import FEATURES_YAML, write_foreign_log
from mtr.cli import main
from mtr.data.feature_config import FeatureConfig
from mtr.errors import InputError
from mtr.schema import DatasetSchema

QUIET = ["--wandb", "false", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
SIMULATOR_ATTRIBUTES = {"country", "platform", "plan", "age_bucket", "message_type", "topic", "has_discount"}


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The foreign log, its dataset, a model fitted on it and a Pareto study on its own candidates."""
    root = tmp_path_factory.mktemp("foreign")
    paths = {name: root / name for name in ("events", "dataset", "run", "pareto")}
    write_foreign_log(paths["events"], users=200, days=70, seed=3)
    main(["build-dataset", "--events", str(paths["events"]), "--out", str(paths["dataset"])]
         + ["--features", str(FEATURES_YAML), "--build.embargo_days", "1", "--build.partitions", "2"])  # fmt: skip
    main(["fit", "--config", "configs/experiment/sim_mmoe.yaml", "--data.path", str(paths["dataset"])]
         + ["--trainer.default_root_dir", str(paths["run"]), "--trainer.max_epochs", "2", *QUIET])  # fmt: skip
    main(
        ["pareto", "--config", "configs/pareto/sim.yaml", "--run", str(paths["run"])]
        + ["--dataset", str(paths["dataset"]), "--events", str(paths["events"]), "--out", str(paths["pareto"])]
        + ["--n_trials", "16", "--sampler.population_size", "8"]
    )
    return paths


def test_the_dataset_has_the_declared_features_and_none_of_the_simulators(foreign: dict[str, Path]) -> None:
    schema = DatasetSchema.load(foreign["dataset"])
    names = {f.name for f in schema.features}
    declared = FeatureConfig.load(FEATURES_YAML)
    assert {"language", "device_class", "subscription_tier", "campaign", "creative_id", "app_version"} <= names
    assert {"account_age_months", "body_words", "days_since_engagement", "history_days", "sends_push_7d"} <= names
    assert names == {*declared.sparse, *declared.dense} and not names & SIMULATOR_ATTRIBUTES
    sources = {f.name: f.source for f in schema.features}
    assert sources["campaign"] == "messages" and sources["language"] == "users" and sources["hour"] == "action"
    assert schema.metadata["features"] == declared.to_dict()  # the resolved set is recorded
    # A mid-stream extract: engagements of sends before the log's start are dropped and counted, not fatal.
    assert schema.metadata["dropped"]["engagements_of_earlier_sends"] > 0
    train = pl.read_parquet(schema.split_path(foreign["dataset"], "train"))
    # history_days: what the log can see of each user's past, from the log's start or the user's signup.
    log_start = datetime.fromisoformat(json.loads((foreign["events"] / "meta.json").read_text())["log_start"])
    users = pl.read_parquet(foreign["events"] / "users.parquet").select("user_id", "signup_ts")
    seen = train.join(users, on="user_id").with_columns(pl.max_horizontal("signup_ts", pl.lit(log_start)).alias("from"))
    expected = (seen["ts"] - seen["from"]).dt.total_seconds() / 86_400
    np.testing.assert_allclose(seen["history_days"].to_numpy(), expected.to_numpy(), atol=1e-9)
    assert (seen["signup_ts"] > log_start).any() and (seen["signup_ts"] < log_start).any()
    assert train["language"].n_unique() > 1 and train["body_words"].std() > 0


def test_the_study_chooses_among_the_logs_own_candidates_and_reports_estimates(foreign: dict[str, Path]) -> None:
    summary = json.loads((foreign["pareto"] / "summary.json").read_text())
    assert summary["problem"]["candidates"] == "log"
    candidates = pl.read_parquet(foreign["dataset"] / "candidates.parquet")
    validation = pl.read_parquet(foreign["dataset"] / "validation.parquet")
    per_decision = candidates.join(validation.select("row_id"), on="row_id").group_by("row_id").len()
    assert summary["problem"]["opportunities"] == validation.height == per_decision.height
    assert summary["candidates"] == per_decision["len"].sum()
    for bound in summary["chosen"]["bounds"].values():
        assert bound["low"] <= bound["value"] <= bound["high"]
    # A foreign log has no simulator truth: the study says so instead of inventing one.
    assert "truth" not in summary["chosen"] or not summary["chosen"]["truth"]
    assert (foreign["pareto"] / "weights.json").exists()


def test_ope_evaluate_judges_the_chosen_point_on_the_logs_test_decisions(
    foreign: dict[str, Path], tmp_path: Path
) -> None:
    main(["ope", "evaluate", "--run", str(foreign["run"]), "--dataset", str(foreign["dataset"])]
         + ["--weights", str(foreign["pareto"] / "weights.json"), "--out", str(tmp_path / "ope")])  # fmt: skip
    report = json.loads((tmp_path / "ope" / "evaluation.json").read_text())
    assert report["problem"]["candidates"] == "log" and report["split"] == "test"
    for policy in report["policies"].values():
        for reward, estimates in policy["rewards"].items():
            assert "truth" not in estimates, reward  # no oracle outside the simulator
            assert estimates["dros"]["ci_low"] <= estimates["dros"]["value"] <= estimates["dros"]["ci_high"]


def test_the_exported_model_scores_the_logs_candidates(foreign: dict[str, Path], tmp_path: Path) -> None:
    run, dataset = foreign["run"], foreign["dataset"]
    main(["export", "--checkpoint", str(run / "checkpoints" / "last.ckpt"), "--aoti", "false"]
         + ["--weights", str(foreign["pareto"] / "weights.json"), "--out", str(tmp_path / "artifact")])  # fmt: skip
    main(["candidates", "--dataset", str(dataset), "--opportunities", "50", "--out", str(tmp_path / "c.parquet")])
    main(["score", "--artifact", str(tmp_path / "artifact"), "--input", str(tmp_path / "c.parquet")]
         + ["--out", str(tmp_path / "scores.parquet"), "--id_columns", "[candidate_id]"])  # fmt: skip
    requests = pl.read_parquet(tmp_path / "c.parquet")
    scores = pl.read_parquet(tmp_path / "scores.parquet")
    assert requests["row_id"].n_unique() == 50 and scores.height == requests.height
    assert np.isfinite(scores["score"].to_numpy()).all()
    # Each candidate carries its own message's attributes: the campaign of its message, not the logged one's.
    messages = pl.read_parquet(foreign["events"] / "messages.parquet").select("message_id", "campaign")
    sends = requests.filter(pl.col("channel") != "none").join(messages, on="message_id", suffix="_of_message")
    assert sends.height and (sends["campaign"] == sends["campaign_of_message"]).all()


def test_a_feature_config_naming_a_missing_column_is_refused_by_name(tmp_path: Path) -> None:
    events = write_foreign_log(tmp_path / "events", users=40, days=14, seed=1)
    config = tmp_path / "features.yaml"
    config.write_text(FEATURES_YAML.read_text().replace("device_class", "device_tier"))
    with pytest.raises(InputError, match=r"'users\.sparse' names column 'device_tier', which table 'users' lacks"):
        main(["build-dataset", "--events", str(events), "--out", str(tmp_path / "d"), "--features", str(config)])
    assert not (tmp_path / "d").exists()


def test_new_decisions_at_a_time_get_the_features_the_build_gives_a_logged_decision_then(
    foreign: dict[str, Path], tmp_path: Path
) -> None:
    dataset, events = foreign["dataset"], foreign["events"]
    schema = DatasetSchema.load(dataset)
    train = pl.read_parquet(schema.split_path(dataset, "train"))
    at = train["ts"].sort()[train.height // 2]  # a decision time of the log, mid-train
    out = tmp_path / "at.parquet"
    main(["candidates", "--dataset", str(dataset), "--events", str(events), "--at", at.isoformat()]
         + ["--users", "60", "--out", str(out)])  # fmt: skip
    requests = pl.read_parquet(out)
    # Every action offered was possible then: no past hour, no channel the user had left, one "none" each.
    assert (requests.filter(pl.col("channel") != "none")["hour"] * 3600 >= at.hour * 3600 + at.minute * 60).all()
    assert requests.group_by("row_id").agg((pl.col("channel") == "none").sum().alias("n"))["n"].to_list() == [1] * 60
    unsubscribed = pl.read_parquet(events / "unsubscribes.parquet").filter(pl.col("ts") < at)
    offered = requests.join(unsubscribed.select("user_id", "channel"), on=["user_id", "channel"], how="semi")
    assert offered.height == 0
    # Point-in-time features at `at` equal those the build computed for the same users' logged decisions at `at`.
    point_in_time = [f.name for f in schema.features if f.source in ("users", "standing", "history")]
    served = requests.filter(pl.col("channel") == "none").select("user_id", *point_in_time).sort("user_id")
    logged = train.filter(pl.col("ts") == at).select("user_id", *point_in_time)
    both = served.join(logged, on="user_id", suffix="_logged")
    assert both.height >= 5
    for name in point_in_time:
        assert both[name].equals(both[f"{name}_logged"], check_names=False), name
    # The artifact scores them like any request.
    scores = tmp_path / "scores.parquet"
    artifact = tmp_path / "artifact"
    main(["export", "--checkpoint", str(foreign["run"] / "checkpoints" / "last.ckpt"), "--aoti", "false"]
         + ["--weights", str(foreign["pareto"] / "weights.json"), "--out", str(artifact)])  # fmt: skip
    main(["score", "--artifact", str(artifact), "--input", str(out), "--out", str(scores)])
    assert pl.read_parquet(scores).height == requests.height


def test_a_hashed_feature_takes_its_buckets_in_training_and_serving_alike(foreign: dict[str, Path]) -> None:
    from mtr.data.preprocess import bucket_of, encode_features

    schema = DatasetSchema.load(foreign["dataset"])
    creative = next(f for f in schema.features if f.name == "creative_id")
    assert creative.hash_buckets == 64 and not creative.vocabulary and creative.num_embeddings == 65
    rows = pl.read_parquet(schema.split_path(foreign["dataset"], "test")).head(500)
    column = [f.name for f in schema.sparse_features].index("creative_id")
    ids = encode_features(rows, schema).sparse_ids[:, column]
    expected = [0 if value is None else bucket_of(str(value), 64) for value in rows["creative_id"].to_list()]
    assert ids.tolist() == expected and len(set(expected)) > 5  # a creative never seen in training gets a bucket
