"""Serving fixtures: run folders of every architecture, an operating point, and raw candidate rows."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
import yaml

from mtr.schema import CHANNELS, NO_SEND, SCHEMA_CHECKPOINT_KEY, DatasetSchema
from mtr.scoring.operating_point import OperatingPoint
from mtr.scoring.policy import PolicyConfig
from mtr.scoring.weights import FusionWeights

FUSION = FusionWeights(conversion=1.0, engagement=0.3, retention=0.5, unsubscribe=4.0, send_cost=0.01)


def write_run(folder: Path, schema: DatasetSchema, architecture: Any, seed: int = 0) -> Path:
    """A run folder as `mtr fit` writes it (config.yaml, run_info.json, metrics.csv, checkpoints/last.ckpt),
    holding an architecture with random weights large enough that every row scores differently.

    Args:
        architecture: a `ModelConfig` of configs/model/ (the `model_config` and `architectures` fixtures).
    """
    torch.manual_seed(seed)
    model = architecture.build(schema)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.5)
    (folder / "checkpoints").mkdir(parents=True)
    state = {
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        SCHEMA_CHECKPOINT_KEY: schema.to_dict(),
        "epoch": 2,
        "global_step": 30,
    }
    torch.save(state, folder / "checkpoints" / "last.ckpt")
    config = {"model": {"architecture": architecture.architecture}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "run_info.json").write_text(json.dumps({"data_fingerprint": "f" * 64, "seed": seed}))
    metrics = {"epoch": [0, 1, 2, 2], "val/selection": [0.55, 0.6, 0.625, None], "val/gates/x": [1.0, 1.0, 1.0, None]}
    pl.DataFrame(metrics).write_csv(folder / "metrics.csv")
    return folder / "checkpoints" / "last.ckpt"


def write_weights(path: Path, fusion: FusionWeights = FUSION, threshold: float = 0.002) -> Path:
    return OperatingPoint(fusion, PolicyConfig(threshold=threshold)).save(path)


def toy_candidates(dataset: Path, opportunities: int = 50, seed: int = 0) -> pl.DataFrame:
    """Raw candidate rows: for each test opportunity, "none" first and a send on every channel at a random
    hour; row_id keys the opportunity, candidate_id the candidate; no label columns."""
    schema = DatasetSchema.load(dataset)
    logged = pl.read_parquet(dataset / "test.parquet").head(opportunities)
    channels = pl.DataFrame({"channel": [NO_SEND, *CHANNELS]})
    frame = logged.drop("channel").join(channels, how="cross", maintain_order="left_right")
    hours = np.random.default_rng(seed).choice([8, 12, 18, 21], frame.height)
    frame = frame.with_columns(pl.Series("hour", hours, dtype=pl.Int64))
    columns = ["row_id", *(f.name for f in schema.features)]
    return frame.select(columns).with_row_index("candidate_id").with_columns(pl.col("candidate_id").cast(pl.Int64))


@pytest.fixture(scope="session")
def serving(architectures: dict[str, Any]) -> SimpleNamespace:
    """The helpers above and the architectures of configs/model/ by name, for test modules (conftest files
    cannot be imported by name)."""
    return SimpleNamespace(
        architectures=architectures,
        fusion=FUSION,
        write_run=write_run,
        write_weights=write_weights,
        toy_candidates=toy_candidates,
    )


@pytest.fixture(scope="session")
def toy_schema(toy_dataset: Path) -> DatasetSchema:
    return DatasetSchema.load(toy_dataset)


@pytest.fixture(scope="session")
def mmoe_artifact(
    toy_dataset: Path,
    toy_schema: DatasetSchema,
    architectures: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """An exported MMoE artifact (no AOTInductor package), shared by the read-only tests."""
    from mtr.serving.export import export_artifact

    root = tmp_path_factory.mktemp("mmoe_artifact")
    checkpoint = write_run(root / "run", toy_schema, architectures["mmoe"])
    export_artifact(checkpoint, write_weights(root / "weights.json"), root / "artifact", aoti=False)
    return root / "artifact"
