"""Logged rewards of a messaging dataset, aligned with its candidates, as off-policy evaluation input."""

from __future__ import annotations

import numpy as np
import polars as pl

from mtr.errors import InputError
from mtr.ope.logged_feedback import LoggedFeedback, binary_rewards
from mtr.schema import DatasetSchema
from mtr.scoring.candidates import CandidateTable
from mtr.scoring.groups import CHANNEL_CODES
from mtr.tables import NUMERIC, check_columns


def logged_rewards(logged: pl.DataFrame, schema: DatasetSchema) -> tuple[np.ndarray, np.ndarray]:
    """[G, K] rewards and [G, K] bool masks of each objective (table order) for the logged action of each row.

    The reward of objective k is the label of the task (k, logged channel), observed where that task's
    mask is 1. An objective without a task on the logged channel (engagement and unsubscribe of a
    no-send) cannot happen, so its reward is a known 0. A missing (null or NaN) label is unobserved and
    contributes nothing, however its mask reads: one missing label must not turn an estimate into NaN.

    Args:
        logged: dataset rows with the schema's channel, label and mask columns.
        schema: the dataset schema (objective table, tasks per objective and channel).
    """
    channel_column = schema.channel_column or "channel"
    check_columns("logged", logged.schema, {channel_column: (pl.String,)})
    tasks = {(t.objective, t.channel): t for t in schema.tasks}
    names = schema.objective_names
    rewards = np.zeros((logged.height, len(names)))
    mask = np.zeros((logged.height, len(names)), dtype=bool)
    channel = logged[channel_column].to_numpy()
    for c in CHANNEL_CODES:
        rows = channel == c
        for k, objective in enumerate(names):
            task = tasks.get((objective, c))
            if task is None:
                mask[rows, k] = True  # a no-send has no engagement and no unsubscribe
                continue
            check_columns("logged", logged.schema, {task.label_column: NUMERIC, task.mask_column: NUMERIC})
            label = logged[task.label_column].cast(pl.Float64).to_numpy()  # null -> NaN
            labelled = ~np.isnan(label)
            rewards[rows, k] = np.where(labelled, label, 0.0)[rows]
            mask[rows, k] = ((logged[task.mask_column].to_numpy() == 1) & labelled)[rows]
    return rewards, mask


def dataset_feedback(
    candidates: CandidateTable,
    logged: pl.DataFrame,
    schema: DatasetSchema,
    predicted: np.ndarray | None,
    propensity_column: str = "propensity",
) -> LoggedFeedback:
    """The logs of `logged` (one row per opportunity of `candidates`) as OPE input, plus send volume.

    Args:
        candidates: the candidates of the logged opportunities.
        logged: dataset rows (row_id, action columns, propensity, labels, masks).
        schema: the dataset schema.
        predicted: [N, K] the model's per-candidate predictions (the DR reward model), or None.
        propensity_column: the logged action's logging probability.
    """
    if (
        logged[schema.row_id_column].n_unique() != candidates.groups.n_groups
        or logged.height != candidates.groups.n_groups
    ):
        raise InputError(f"logged rows: expected one row per opportunity ({candidates.groups.n_groups})")
    order = candidates.frame["row_id"][candidates.groups.starts]
    logged = pl.DataFrame({"row_id": order}).join(logged, on="row_id", how="left", maintain_order="left")
    rewards, mask = logged_rewards(logged, schema)
    check_columns("logged", logged.schema, {propensity_column: NUMERIC})
    return LoggedFeedback(
        candidates.groups,
        candidates.logged_index(logged),
        logged[propensity_column].to_numpy().astype(np.float64),
        rewards,
        mask,
        predicted,
        schema.objective_names,
        binary_rewards(schema.objective_table),
    ).with_send_volume()
