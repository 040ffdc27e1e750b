"""Shared fixtures. Public data are read from $MTR_DATA_DIR (default ../shared/data)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from mtr.objectives import MESSAGING_OBJECTIVES, Objective
from mtr.ope.logged_feedback import LoggedFeedback
from mtr.scoring.groups import NONE_CODE, CandidateGroups
from mtr.scoring.policy import PolicyDecision

REPO_ROOT = Path(__file__).resolve().parents[1]


def public_data_dir() -> Path:
    return Path(os.environ.get("MTR_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The public data folder; tests that need it skip only when the folder does not exist."""
    path = public_data_dir()
    if not path.is_dir():
        pytest.skip(f"public data folder {path} does not exist (set MTR_DATA_DIR)")
    return path


def write_toy_dataset(folder: Path, n_rows: int = 3000, seed: int = 0) -> Path:
    """A small messaging-like dataset (14 tasks with channel masks) whose labels depend on the features."""
    import numpy as np
    import polars as pl

    from mtr.data.preprocess import fit_features
    from mtr.schema import CHANNELS, NO_SEND, DatasetSchema, messaging_tasks

    rng = np.random.default_rng(seed)
    channel = rng.choice([*CHANNELS, NO_SEND], n_rows)
    frame = pl.DataFrame(
        {
            "row_id": np.arange(n_rows, dtype=np.int64),
            "country": rng.choice(["de", "fr", "us", "br"], n_rows),
            "plan": rng.choice(["free", "trial", "premium"], n_rows),
            "channel": channel,
            "hour": rng.choice([8, 12, 18, 21], n_rows).astype(np.int64),
            "tenure_days": rng.exponential(200, n_rows),
            "sends_7d": rng.poisson(2, n_rows).astype(np.float64),
            "propensity": rng.uniform(0.05, 0.5, n_rows),
        }
    )
    score = (frame["plan"] == "premium").to_numpy() * 1.5 + frame["sends_7d"].to_numpy() * -0.3
    for objective, base in (("conversion", -2.5), ("engagement", -1.0), ("retention", 1.0), ("unsubscribe", -4.0)):
        probability = 1 / (1 + np.exp(-(base + score + rng.normal(0, 0.3, n_rows))))
        frame = frame.with_columns(pl.Series(f"label_{objective}", (rng.random(n_rows) < probability).astype(np.int8)))
    for task in messaging_tasks():
        frame = frame.with_columns((pl.col("channel") == task.channel).cast(pl.Int8).alias(task.mask_column))
    splits = {"train": frame[: n_rows * 7 // 10], "validation": frame[n_rows * 7 // 10 : n_rows * 85 // 100]}
    splits["test"] = frame[n_rows * 85 // 100 :]
    features = fit_features(
        splits["train"],
        sparse=["country", "plan", "channel", "hour"],
        dense={"tenure_days": "log1p", "sends_7d": "log1p"},
    )
    schema = DatasetSchema("toy", features, messaging_tasks(), propensity_column="propensity", channel_column="channel")
    folder.mkdir(parents=True, exist_ok=True)
    for name, split in splits.items():
        split.write_parquet(folder / f"{name}.parquet")
    schema.save(folder)
    return folder


@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a small synthetic messaging dataset folder (train/validation/test + schema.json)."""
    return write_toy_dataset(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="session")
def sim_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulator dataset: `mtr simulate` (600 users x 112 days; 20, 4, 4 split days), `mtr build-dataset`."""
    from mtr.cli import main

    root = tmp_path_factory.mktemp("sim")
    main(["simulate", "--users", "600", "--days", "112", "--seed", "3", "--out", str(root / "events")])
    main(["build-dataset", "--events", str(root / "events"), "--out", str(root / "dataset")])
    return root / "dataset"


def conversion_windows(events: Path) -> pl.DataFrame:
    """The opportunities of an event log with `t0`, `day`, `is_send` and `end`, the end of the conversion window
    min(t0 + 7 d, the user's next send, log_end), worked out from the raw tables apart from `mtr.data.labels`."""
    meta = json.loads((events / "meta.json").read_text())
    log_end = pl.lit(meta["log_end"]).str.to_datetime(time_unit="us", time_zone="UTC")
    rows = pl.read_parquet(events / "opportunities.parquet").with_columns(
        t0=pl.coalesce("send_ts", "ts"), day=pl.col("ts").dt.date(), is_send=pl.col("channel") != "none"
    )
    next_send = (
        rows.join(rows.filter("is_send").select("user_id", next_ts="send_ts"), on="user_id")
        .filter(pl.col("next_ts") > pl.col("t0"))
        .group_by("opportunity_id")
        .agg(pl.col("next_ts").min())
    )
    return rows.join(next_send, on="opportunity_id", how="left").with_columns(
        end=pl.min_horizontal(pl.col("t0") + timedelta(days=7), "next_ts", log_end)
    )


@pytest.fixture(scope="session")
def windows_of() -> Callable[[Path], pl.DataFrame]:
    """`windows_of(events)`: `conversion_windows` of an event log folder."""
    return conversion_windows


# A fifth, continuous objective: declared by the objective table alone, its label by the conversion_value rule.
PURCHASE_VALUE = Objective(
    "purchase_value",
    kind="continuous",
    exists_for_none=True,
    label_rule="conversion_value",
    description="summed conversion value within the conversion window",
)
FIFTH_OBJECTIVE_TABLE = (*MESSAGING_OBJECTIVES, PURCHASE_VALUE)


def write_fifth_objective_world(folder: Path, users: int = 1500, days: int = 112, seed: int = 5) -> tuple[Path, Path]:
    """Simulate a small world into `folder/events` and build `folder/dataset` with `FIFTH_OBJECTIVE_TABLE`.

    Returns:
        (events folder, dataset folder); the dataset has 5 x 3 channel tasks and 3 "none" tasks.
    """
    from mtr.data.build import BuildConfig, build_dataset_from_events
    from mtr.sim.config import WorldConfig
    from mtr.sim.writer import write_simulation

    events, dataset = folder / "events", folder / "dataset"
    write_simulation(events, users, days, seed, WorldConfig())
    build_dataset_from_events(events, dataset, BuildConfig(partitions=1), objectives=FIFTH_OBJECTIVE_TABLE)
    return events, dataset


@pytest.fixture(scope="session")
def fifth_objective_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(events, dataset) of a small simulated world whose dataset declares the continuous `purchase_value`."""
    return write_fifth_objective_world(tmp_path_factory.mktemp("fifth"))


@pytest.fixture(scope="session")
def census_dataset(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The census dataset under the MMoE protocol, prepared once per test session."""
    from mtr.cli import main

    out = tmp_path_factory.mktemp("census") / "census"
    main(["data", "prepare", "census", "--source", str(data_dir / "census_income_kdd"), "--out", str(out)])
    return out


# A synthetic logged bandit problem with known truth, shared by the scoring, OPE and Pareto tests.
@dataclass
class SyntheticLog:
    """G opportunities with 1..6 send candidates each, a softmax logging policy and Bernoulli rewards."""

    groups: CandidateGroups
    truth: np.ndarray  # [N, K] true reward probabilities
    logging: np.ndarray  # [N] logging policy's probabilities
    feedback: LoggedFeedback

    def true_value(self, target: PolicyDecision) -> np.ndarray:
        """[K] the target policy's exact mean reward per opportunity."""
        return target.expectation(self.truth).mean(axis=0)


def synthetic_log(n_groups: int = 4000, n_rewards: int = 2, seed: int = 0) -> SyntheticLog:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 8, n_groups)
    channel = rng.integers(0, NONE_CODE, sizes.sum()).astype(np.int8)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    channel[offsets[:-1]] = NONE_CODE
    groups = CandidateGroups.build(sizes, channel, user=np.arange(n_groups) % 100, day=np.arange(n_groups) // 100)
    truth = rng.uniform(0.05, 0.6, (groups.n_candidates, n_rewards))
    exp = np.exp(rng.normal(0, 1, groups.n_candidates))
    logging = exp / groups.group_sum(exp)[groups.group_of]
    # Inverse-CDF sampling of one logged action per group.
    cumulative = np.cumsum(logging) - np.repeat(np.cumsum(groups.group_sum(logging)) - groups.group_sum(logging), sizes)
    u = rng.random(n_groups)
    below = cumulative < u[groups.group_of]
    logged = groups.starts + np.minimum(groups.group_sum(below.astype(np.int64)), sizes - 1)
    rewards = (rng.random((n_groups, n_rewards)) < truth[logged]).astype(np.float64)
    feedback = LoggedFeedback(
        groups,
        logged,
        logging[logged],
        rewards,
        np.ones((n_groups, n_rewards), dtype=bool),
        truth.copy(),
        tuple(f"reward_{k}" for k in range(n_rewards)),
    )
    return SyntheticLog(groups, truth, logging, feedback)


@pytest.fixture(scope="session")
def bandit() -> SyntheticLog:
    return synthetic_log()


@pytest.fixture(scope="session")
def make_bandit() -> Callable[..., SyntheticLog]:
    """`make_bandit(n_groups=..., n_rewards=..., seed=...)` builds another synthetic log."""
    return synthetic_log


# The architectures under test are the configs/model/*.yaml files, so a new config is tested without editing lists.
@dataclass(frozen=True)
class ModelConfig:
    """One configs/model/*.yaml: `name` is the file stem; `architecture` is its `architecture` section."""

    name: str
    path: Path
    architecture: dict[str, Any]

    @property
    def shared_class(self) -> str:
        """The class path of the frame's shared part, e.g. "mtr.models.mmoe.GatedExperts"."""
        return self.architecture["init_args"]["shared"]["class_path"]

    @property
    def shared_args(self) -> dict[str, Any]:
        """The shared part's own init_args as the config writes them."""
        return self.architecture["init_args"]["shared"].get("init_args", {})

    def build(self, schema: object) -> object:
        """The architecture (an nn.Module) for a DatasetSchema, parsed as `mtr fit` parses the config.

        Typed `object` so that this file's imports stay as they are."""
        from mtr.models.checkpoint import build_architecture

        return build_architecture(self.architecture, schema, source=str(self.path))  # type: ignore[arg-type]


def model_configs() -> dict[str, ModelConfig]:
    """Every configs/model/*.yaml by file stem, in name order."""
    import yaml

    configs = {}
    for path in sorted((REPO_ROOT / "configs" / "model").glob("*.yaml")):
        configs[path.stem] = ModelConfig(path.stem, path, yaml.safe_load(path.read_text())["architecture"])
    return configs


@pytest.fixture(scope="session")
def small_mmoe() -> dict[str, Any]:
    """A small MMoE's `model.architecture` config (the frame with 2 gated experts over 4-wide embeddings), for
    tests that need a cheap model in a run folder."""
    experts = {"class_path": "mtr.models.mmoe.GatedExperts", "init_args": {"n_experts": 2, "expert_hidden": [8]}}
    frame_args = {"embedding_dim": 4, "tower_hidden": [4], "shared": experts}
    return {"class_path": "mtr.models.frame.MultiTaskModel", "init_args": frame_args}


@pytest.fixture(scope="session")
def architectures() -> dict[str, ModelConfig]:
    """Every configs/model/*.yaml by file stem, for tests that need one architecture by name."""
    return model_configs()


@pytest.fixture(params=sorted(model_configs()))
def model_config(request: pytest.FixtureRequest) -> ModelConfig:
    """Parametrises a test over every configs/model/*.yaml (test ids are the file stems)."""
    return request.getfixturevalue("architectures")[request.param]
