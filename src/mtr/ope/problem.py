"""The logged problem a Pareto study runs on: candidates, the model's probabilities, logged feedback, truth.

Two sources of candidates:
- "simulator": every action the simulated logging world allowed at each evaluated opportunity (from
  the events folder's oracle), which also gives the TRUE probabilities of every candidate;
- "arms": every value of the dataset's action column at every opportunity, for randomised experiments
  whose arms are the whole action set (Hillstrom: men's e-mail, women's e-mail, no e-mail).

Either way the model scores every candidate once, here, and no trial touches the model again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch
from torch import nn

from mtr.data.batch import sparse_batch
from mtr.data.preprocess import encode_features
from mtr.errors import InputError
from mtr.io import atomic_write_bytes
from mtr.models.checkpoint import load_trained_model
from mtr.ope.estimators import LoggedFeedback
from mtr.ope.feedback import dataset_feedback, logged_rewards
from mtr.schema import NO_SEND, OBJECTIVES, DatasetSchema
from mtr.scoring.candidates import (
    candidate_model_rows,
    score_candidates,
    simulator_candidates,
)
from mtr.scoring.fusion import FusionInputs
from mtr.scoring.groups import CHANNEL_CODES, CandidateGroups, channel_codes


@dataclass
class LoggedProblem:
    """Everything a study evaluates policies on.

    Attributes:
        inputs: candidates and the model's [N, 4] probabilities.
        feedback: logged rewards (the 4 objectives and send volume) with the model's predictions for DR.
        truth: [N, 5] true probabilities and the send indicator of every candidate, or None (real data).
        description: counts for the summary.
    """

    inputs: FusionInputs
    feedback: LoggedFeedback
    truth: np.ndarray | None
    description: dict[str, int | str]


def split_rows(dataset: Path, split: str) -> tuple[pl.DataFrame, DatasetSchema]:
    """The rows of one split of a dataset folder and its schema."""
    schema = DatasetSchema.load(dataset)
    if split not in schema.splits:
        raise InputError(f"split: dataset {dataset} has splits {list(schema.splits)}, not {split!r}")
    return pl.read_parquet(schema.split_path(dataset, split)), schema


def simulator_problem(run: Path, dataset: Path, events: Path, split: str, checkpoint: str) -> LoggedProblem:
    """The simulator's candidates at the split's opportunities, scored by the model and by the oracle."""
    from mtr.sim.oracle import Oracle

    model, schema = load_trained_model(run, checkpoint)
    rows, _ = split_rows(dataset, split)
    oracle = Oracle.load(events)
    candidates = simulator_candidates(events, rows, oracle)
    channel = candidates.groups.channel
    predicted = score_candidates(model, schema, candidate_model_rows(candidates.frame, rows), channel)
    true = oracle.probabilities(
        candidates.frame.select("row_id", "message_id", "channel", "hour").rename({"row_id": "opportunity_id"})
    )
    truth = np.column_stack(
        [true[f"p_{o}"].fill_null(0.0).to_numpy() for o in OBJECTIVES] + [candidates.groups.is_send()]
    )
    feedback = dataset_feedback(candidates, rows, schema, predicted)
    described = {"candidates": "simulator", "split": split, "opportunities": candidates.groups.n_groups}
    return LoggedProblem(FusionInputs(candidates.groups, predicted), feedback, truth.astype(np.float64), described)


def arm_problem(run: Path, dataset: Path, split: str, checkpoint: str) -> LoggedProblem:
    """Every arm (value of the action column) at every opportunity of the split, scored by the model."""
    model, schema = load_trained_model(run, checkpoint)
    rows, _ = split_rows(dataset, split)
    action, channel = schema.action_column, schema.channel_column or "channel"
    if action is None or schema.propensity_column is None:
        raise InputError(f"dataset {dataset}: 'arms' candidates need an action and a propensity column in the schema")
    arms = rows.select(action, channel).unique().sort(pl.col(channel) != NO_SEND, action)
    if arms[action].n_unique() != arms.height:
        raise InputError(f"dataset {dataset}: column '{action}' maps to several channels")
    if arms[channel].to_list().count(NO_SEND) != 1:
        raise InputError(f"dataset {dataset}: 'arms' candidates need exactly one '{NO_SEND}' arm in '{channel}'")
    g, a = rows.height, arms.height
    codes = channel_codes(arms[channel])
    groups = CandidateGroups.build(np.full(g, a), np.tile(codes, g), np.arange(g), np.zeros(g))
    probabilities = np.zeros((g, a, len(OBJECTIVES)), dtype=np.float32)
    for j, (arm, arm_channel) in enumerate(arms.iter_rows()):
        arm_rows = rows.with_columns(pl.lit(arm).alias(action), pl.lit(arm_channel).alias(channel))
        probabilities[:, j] = _channel_probabilities(model, schema, arm_rows, arm_channel)
    logged_arm = rows.select(pl.col(action).replace_strict(arms[action], range(a), return_dtype=pl.Int64))
    logged_index = groups.starts + logged_arm.to_series().to_numpy()
    rewards, mask = logged_rewards(rows, schema)
    predicted = probabilities.reshape(g * a, len(OBJECTIVES))
    feedback = LoggedFeedback(
        groups,
        logged_index,
        rows[schema.propensity_column].to_numpy().astype(np.float64),
        rewards,
        mask,
        predicted,
        OBJECTIVES,
    ).with_send_volume()
    described = {"candidates": "arms: " + ", ".join(arms[action].to_list()), "split": split, "opportunities": g}
    return LoggedProblem(FusionInputs(groups, predicted), feedback, None, described)


@torch.no_grad()
def _channel_probabilities(
    model: nn.Module, schema: DatasetSchema, rows: pl.DataFrame, channel: str, batch_size: int = 65_536
) -> np.ndarray:
    """[B, 4] probabilities of each objective's task on `channel`; 0 where the schema has no such task."""
    lookup = {(t.objective, t.channel): i for i, t in enumerate(schema.tasks)}
    if channel not in CHANNEL_CODES:
        raise InputError(f"channel {channel!r} is not one of {list(CHANNEL_CODES)}")
    columns = [lookup.get((o, channel), -1) for o in OBJECTIVES]
    keys = [f.name for f in schema.sparse_features]
    out = np.zeros((rows.height, len(OBJECTIVES)), dtype=np.float32)
    model.eval()
    for start in range(0, rows.height, batch_size):
        features = encode_features(rows.slice(start, batch_size), schema, table="arms")
        logits = model(sparse_batch(keys, torch.from_numpy(features.sparse_ids)), torch.from_numpy(features.dense))
        probabilities = torch.sigmoid(logits).numpy()
        for k, column in enumerate(columns):
            if column >= 0:
                out[start : start + batch_size, k] = probabilities[:, column]
    return out


def cached_problem(cache: Path, key: dict, build: Callable[[], LoggedProblem]) -> LoggedProblem:
    """The problem saved in `cache` (an .npz) when it was built from the same `key`, else `build()` and save it.

    Scoring every candidate with the model is the slow part of a study (minutes on a busy CPU); re-runs,
    resumes and extra worker processes on the same inputs load it instead. The key names the inputs and
    their files' sizes and modification times.
    """
    key_json = json.dumps(key, sort_keys=True, default=str)
    if cache.exists():
        with np.load(cache, allow_pickle=False) as saved:
            if str(saved["key"]) == key_json:
                return _from_arrays(saved)
    problem = build()
    fb, groups = problem.feedback, problem.inputs.groups
    arrays = {
        "key": np.array(key_json),
        "description": np.array(json.dumps(problem.description)),
        "sizes": groups.sizes, "channel": groups.channel, "user": groups.user, "day": groups.day,
        "probabilities": problem.inputs.probabilities, "logged_index": fb.logged_index,
        "propensity": fb.propensity, "rewards": fb.rewards, "mask": fb.mask,
        "predicted": fb.predicted, "reward_names": np.array(fb.reward_names),
    }  # fmt: skip
    if problem.truth is not None:
        arrays["truth"] = problem.truth
    tmp = cache.with_name(f".{cache.name}.tmp.npz")
    np.savez(tmp, **arrays)
    atomic_write_bytes(cache, tmp.read_bytes())
    tmp.unlink()
    return problem


def _from_arrays(saved: np.lib.npyio.NpzFile) -> LoggedProblem:
    groups = CandidateGroups.build(saved["sizes"], saved["channel"], saved["user"], saved["day"])
    names = tuple(str(n) for n in saved["reward_names"])
    feedback = LoggedFeedback(
        groups, saved["logged_index"], saved["propensity"], saved["rewards"], saved["mask"], saved["predicted"], names
    )
    truth = saved["truth"] if "truth" in saved.files else None
    inputs = FusionInputs(groups, saved["probabilities"])
    return LoggedProblem(inputs, feedback, truth, json.loads(str(saved["description"])))


def file_stamp(path: Path) -> dict[str, float]:
    """Size and modification time of a file, for cache keys."""
    stat = Path(path).stat()
    return {"size": stat.st_size, "mtime": stat.st_mtime}
