"""Candidate actions of logged opportunities, and the multi-task model's predictions for each of them.

A candidates table has one row per (opportunity `row_id`, eligible action): message_id, channel, hour,
the message's attribute columns, and the logging policy's `propensity` of that action, with exactly one
"none" candidate per opportunity. Rows are in group order: opportunities by time, the none candidate
first in each. A log's own candidate table (`mtr.data.candidates`) gives it; for the simulator,
`simulator_candidates` builds the same from the oracle.

To score candidates, each one becomes a model-input row: the opportunity's context and feature columns
from the dataset table with the action's columns (message_id, channel, hour and the message's attributes)
replaced by the candidate's; those rows go through the one preprocessing path (`encode_features`) and the
architecture in batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import torch
from torch import nn

from mtr.data.batch import sparse_batch
from mtr.data.preprocess import encode_features
from mtr.errors import InputError
from mtr.models.outputs import binary_tasks, task_predictions
from mtr.schema import NO_SEND, DatasetSchema
from mtr.scoring.groups import CHANNEL_CODES, CandidateGroups, channel_codes
from mtr.tables import INTEGER, STRING, check_columns

ACTION_COLUMNS = ("message_id", "channel", "hour")
# Columns of a candidates frame that are not the candidate's own: its opportunity's, and the logging policy's
# probability (not a feature); every other column (the action and the message's attributes) replaces the logged one.
OPPORTUNITY_COLUMNS = ("row_id", "user_id", "ts", "propensity")
# Columns of the messages table that describe availability, not the message.
MESSAGE_KEYS = ("channels", "launched_ts")
DAY_US = 86_400_000_000

if TYPE_CHECKING:
    from mtr.sim.oracle import Oracle


@dataclass(frozen=True)
class CandidateTable:
    """Candidates of G opportunities in group order, with their structure.

    Attributes:
        frame: one row per candidate: row_id, user_id, ts, message_id, channel, hour, propensity and the message's
            attribute columns.
        groups: the group structure over `frame`'s rows.
    """

    frame: pl.DataFrame
    groups: CandidateGroups

    @classmethod
    def from_frame(cls, frame: pl.DataFrame, table: str = "candidates") -> CandidateTable:
        """Order a candidates table into groups (by ts, row_id, none first) and index its structure."""
        check_columns(table, frame.schema, {"row_id": INTEGER, "user_id": INTEGER, "channel": STRING})
        if "ts" not in frame.columns:
            raise InputError(f"table '{table}' has no column 'ts' (columns: {frame.columns})")
        frame = frame.sort(
            "ts", "row_id", pl.col("channel") != NO_SEND, "message_id", "hour", "channel", nulls_last=False
        )
        sizes = frame.select(pl.col("row_id").rle().struct.field("len")).to_series().to_numpy().astype(np.int64)
        day_us = frame["ts"].dt.epoch("us").to_numpy()
        first = np.cumsum(sizes) - sizes
        user = np.unique(frame["user_id"].to_numpy(), return_inverse=True)[1][first]
        if frame["row_id"][first].n_unique() != first.size:
            raise InputError(f"table '{table}': the candidates of an opportunity must share one ts")
        groups = CandidateGroups.build(
            sizes, channel_codes(frame["channel"]), user, (day_us[first] - day_us.min()) // DAY_US
        )
        return cls(frame, groups)

    def logged_index(self, logged: pl.DataFrame, table: str = "logged") -> np.ndarray:
        """[G] global candidate index of each opportunity's logged action.

        Args:
            logged: one row per opportunity of this table: row_id, message_id, channel, hour.
        """
        keys = ["row_id", *ACTION_COLUMNS]
        check_columns(table, logged.schema, {"row_id": INTEGER, "channel": STRING})
        index = self.frame.select(keys).with_row_index("_candidate")
        found = (
            logged.select(keys)
            .with_columns(pl.col("message_id").cast(pl.Int64), pl.col("hour").cast(pl.Int32))
            .join(
                index.with_columns(pl.col("message_id").cast(pl.Int64), pl.col("hour").cast(pl.Int32)),
                on=keys,
                how="left",
                nulls_equal=True,
            )
        )
        order = self.frame["row_id"][self.groups.starts]
        found = pl.DataFrame({"row_id": order}).join(found, on="row_id", how="left", maintain_order="left")
        if found.height != self.groups.n_groups or found["_candidate"].null_count():
            missing = found.filter(pl.col("_candidate").is_null())["row_id"].head(3).to_list()
            raise InputError(f"table '{table}': logged actions missing from the candidates (row_id {missing})")
        return found["_candidate"].to_numpy().astype(np.int64)


def simulator_candidates(events_dir: Path | str, logged: pl.DataFrame, oracle: Oracle | None = None) -> CandidateTable:
    """Every action the simulator's logging world allowed at the logged opportunities, with propensities.

    Args:
        events_dir: a folder written by `mtr simulate` (its messages table gives the attribute columns).
        logged: dataset rows (row_id = opportunity_id, user_id, ts) of the opportunities to cover.
        oracle: the folder's oracle if already loaded.
    """
    from mtr.sim.oracle import Oracle

    oracle = oracle or Oracle.load(events_dir)
    eligible = oracle.eligible_actions(logged["row_id"]).rename({"opportunity_id": "row_id"})
    messages = message_attributes(pl.read_parquet(Path(events_dir) / "messages.parquet"))
    frame = eligible.join(logged.select("row_id", "user_id", "ts"), on="row_id").join(
        messages, on="message_id", how="left"
    )
    return CandidateTable.from_frame(frame)


def message_attributes(messages: pl.DataFrame) -> pl.DataFrame:
    """message_id and every attribute column of a messages table (what a candidate's message brings)."""
    return messages.drop([c for c in MESSAGE_KEYS if c in messages.columns])


def candidate_model_rows(candidates: pl.DataFrame, logged: pl.DataFrame) -> pl.DataFrame:
    """Model-input rows: each candidate's opportunity context with the candidate's own columns.

    Args:
        candidates: the candidates frame: row_id and the action columns and message attributes to substitute
            (its other columns but user_id and ts; those the dataset lacks are ignored).
        logged: dataset rows, one per opportunity, with every feature column.
    """
    action = [c for c in candidates.columns if c not in OPPORTUNITY_COLUMNS and c in logged.columns]
    context = logged.drop([c for c in action if c in logged.columns])
    rows = candidates.select("row_id", *action).join(context, on="row_id", how="left", maintain_order="left")
    return rows.select(logged.columns)


def channel_task_index(schema: DatasetSchema, channels: Sequence[str] = CHANNEL_CODES) -> np.ndarray:
    """[channels, K objectives] index of the task predicting each objective (table order) on each channel.

    A send channel needs a task for every objective. "None" uses the organic tasks (conversion_none,
    retention_none) and has -1 (a known 0) for an objective without one, which the table must allow: an
    objective that exists without a send (`exists_for_none`) needs its none task, or scores would take its
    organic rate for 0.
    """
    lookup = {(t.objective, t.channel): i for i, t in enumerate(schema.tasks)}
    table = schema.objective_table
    index = np.array([[lookup.get((o.name, c), -1) for o in table] for c in channels], dtype=np.int64)
    for row, channel in zip(index, channels, strict=True):
        missing = [
            o.name for o, i in zip(table, row, strict=True) if i < 0 and (channel != NO_SEND or o.exists_for_none)
        ]
        if missing:
            raise InputError(f"schema '{schema.name}' has no task for {missing} on channel '{channel}'")
    return index


@torch.no_grad()
def score_candidates(
    model: nn.Module,
    schema: DatasetSchema,
    rows: pl.DataFrame,
    channel: np.ndarray,
    batch_size: int = 16_384,
) -> np.ndarray:
    """Per-candidate predictions of the candidate's channel tasks, in the schema's objective order.

    Args:
        model: the architecture, forward(sparse KJT, dense [B, D]) -> outputs [B, n_tasks].
        schema: its dataset schema.
        rows: model-input rows of the candidates (`candidate_model_rows`).
        channel: [N] channel codes of the candidates.
        batch_size: rows encoded and scored at a time (16k: as fast as 64k on CPU, with a fifth of the
            activations' memory; `make bench-scoring`).

    Returns:
        [N, K] float32: each objective's prediction on the candidate's channel (0 for a "none" candidate's
        objective without an organic task).
    """
    used = np.unique(channel)
    task = np.full((len(CHANNEL_CODES), len(schema.objective_table)), -1, dtype=np.int64)
    task[used] = channel_task_index(schema, [CHANNEL_CODES[c] for c in used])
    binary = binary_tasks(schema)
    keys = [f.name for f in schema.sparse_features]
    model.eval()
    out = np.zeros((rows.height, task.shape[1]), dtype=np.float32)
    for start in range(0, rows.height, batch_size):
        features = encode_features(rows.slice(start, batch_size), schema, table="candidates")
        outputs = model(sparse_batch(keys, torch.from_numpy(features.sparse_ids)), torch.from_numpy(features.dense))
        predictions = task_predictions(outputs, binary).numpy()  # [B, T]
        columns = task[channel[start : start + batch_size]]  # [B, K]
        picked = np.take_along_axis(predictions, np.maximum(columns, 0), axis=1)
        out[start : start + batch_size] = np.where(columns >= 0, picked, 0.0)
    return out
