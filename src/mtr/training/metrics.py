"""Evaluation metrics per task over labelled rows only, by objective kind; the composite selection criterion;
gate usage.

Binary tasks get AUC, log loss, NE, calibration and ECE; continuous tasks RMSE, MAE, mean error and
calibration. All functions take whole-epoch tensors and are vectorised over rows (AUC loops over tasks
only): they run once per validation epoch, never in the training step.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mtr.errors import InputError
from mtr.schema import DatasetSchema

METRICS_BY_KIND: dict[str, tuple[str, ...]] = {
    "binary": ("auc", "logloss", "ne", "calibration", "ece"),
    "continuous": ("rmse", "mae", "mean_error", "calibration"),
}
METRICS = tuple(dict.fromkeys(m for names in METRICS_BY_KIND.values() for m in names))
# Metrics a selection criterion may use (calibration and mean error are best at 1 and 0, not at an end).
HIGHER_IS_BETTER = {"auc": True, "logloss": False, "ne": False, "ece": False, "rmse": False, "mae": False}
PROBABILITY_EPS = 1e-7


def binary_auc(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Exact ROC AUC by the rank-sum (Mann-Whitney) formula; tied scores count one half.

    Args:
        scores: [N] predicted scores; labels: [N] in {0, 1}.

    Returns:
        A float64 scalar, NaN when positives or negatives are missing.
    """
    labels = labels.to(torch.float64)
    n_pos = labels.sum()
    n_neg = labels.numel() - n_pos
    sorted_scores, order = torch.sort(scores)
    _, group, counts = torch.unique_consecutive(sorted_scores, return_inverse=True, return_counts=True)
    # Average 1-based rank of each tie group: last rank minus half the group's extra members.
    group_rank = counts.cumsum(0).to(torch.float64) - (counts.to(torch.float64) - 1) / 2
    positive_rank_sum = (group_rank[group] * labels[order]).sum()
    return (positive_rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def task_metrics(
    probabilities: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor, n_bins: int = 10
) -> dict[str, torch.Tensor]:
    """AUC, log loss, normalized entropy, calibration and ECE per task, over rows with mask 1.

    Args:
        probabilities: [N, T] predicted probabilities; labels: [N, T] in {0, 1}; masks: [N, T] in {0, 1}.
        n_bins: equal-width probability bins for the expected calibration error.

    Returns:
        name -> [T] float64: "auc"; "logloss" (mean BCE); "ne" (log loss over the entropy of the
        observed rate, He et al. 2014); "calibration" (mean prediction over observed rate); "ece"
        (sum over bins of bin share * |mean prediction - observed rate|); plus "labelled" and
        "positives" counts. NaN where a metric is undefined (no rows, or one class only).
    """
    p, y, m = (t.to(torch.float64) for t in (probabilities, labels, masks))
    n = m.sum(0)
    n_safe = n.clamp(min=1)
    positives = (y * m).sum(0)
    clamped = p.clamp(PROBABILITY_EPS, 1 - PROBABILITY_EPS)
    row_loss = -(y * clamped.log() + (1 - y) * (1 - clamped).log())
    logloss = (row_loss * m).sum(0) / n_safe
    rate = positives / n_safe
    entropy = -(rate * rate.log() + (1 - rate) * (1 - rate).log())
    ne = logloss / entropy  # NaN or inf when the rate is 0 or 1: made NaN below
    calibration = (p * m).sum(0) / positives
    n_tasks = p.shape[1]
    bins = (p * n_bins).floor().clamp(0, n_bins - 1).long()
    cell = (bins * n_tasks + torch.arange(n_tasks, device=p.device)).flatten()  # (bin, task) cell of each value
    size = n_bins * n_tasks
    binned_p = torch.bincount(cell, weights=(p * m).flatten(), minlength=size).view(n_bins, n_tasks)
    binned_y = torch.bincount(cell, weights=(y * m).flatten(), minlength=size).view(n_bins, n_tasks)
    ece = (binned_p - binned_y).abs().sum(0) / n_safe  # sum_b n_b/N * |mean_p_b - mean_y_b|
    auc = torch.stack([binary_auc(p[m[:, t] > 0, t], y[m[:, t] > 0, t]) for t in range(n_tasks)])
    nan = torch.full_like(n, math.nan)
    both_classes = (positives > 0) & (positives < n)
    return {
        "auc": torch.where(both_classes, auc, nan),
        "logloss": torch.where(n > 0, logloss, nan),
        "ne": torch.where(both_classes, ne, nan),
        "calibration": torch.where(positives > 0, calibration, nan),
        "ece": torch.where(n > 0, ece, nan),
        "labelled": n,
        "positives": positives,
    }


def regression_metrics(predictions: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor) -> dict[str, torch.Tensor]:
    """RMSE, MAE, mean error and calibration per continuous task, over rows with mask 1.

    Args:
        predictions: [N, T] predicted values; labels: [N, T] real values; masks: [N, T] in {0, 1}.

    Returns:
        name -> [T] float64: "rmse"; "mae"; "mean_error" (mean prediction minus mean label, the bias);
        "calibration" (mean prediction over mean label, as for binary tasks); plus "labelled". NaN where
        no row is labelled (calibration also where the mean label is 0).
    """
    p, y, m = (t.to(torch.float64) for t in (predictions, labels, masks))
    labelled = m > 0
    # where(), not a product: an unlabelled row's prediction may be anything, even inf.
    p, y = (torch.where(labelled, t, torch.zeros_like(t)) for t in (p, y))
    n = labelled.sum(0).to(torch.float64)
    n_safe = n.clamp(min=1)
    error = p - y
    label_sum = y.sum(0)
    nan = torch.full_like(n, math.nan)
    return {
        "rmse": torch.where(n > 0, (error.square().sum(0) / n_safe).sqrt(), nan),
        "mae": torch.where(n > 0, error.abs().sum(0) / n_safe, nan),
        "mean_error": torch.where(n > 0, error.sum(0) / n_safe, nan),
        "calibration": torch.where((n > 0) & (label_sum != 0), p.sum(0) / label_sum, nan),
        "labelled": n,
    }


def metrics_by_kind(
    predictions: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor, binary: torch.Tensor, n_bins: int = 10
) -> dict[str, torch.Tensor]:
    """Every metric in `METRICS` per task, each task scored by its objective's kind.

    Args:
        predictions: [N, T] probabilities of binary tasks and values of continuous ones (`task_predictions`).
        labels, masks: [N, T]. binary: [T] bool, True for binary tasks (`binary_tasks`).
        n_bins: bins of the expected calibration error.

    Returns:
        name -> [T] float64 for every name in `METRICS` and "labelled"; NaN where the metric belongs to the
        other kind or is undefined (see `task_metrics` and `regression_metrics`).
    """
    n_tasks = predictions.shape[1]
    results = {
        name: torch.full((n_tasks,), math.nan, dtype=torch.float64, device=predictions.device)
        for name in (*METRICS, "labelled")
    }
    binary = binary.to(predictions.device)
    scorers = {
        "binary": (binary, lambda p, y, m: task_metrics(p, y, m, n_bins)),
        "continuous": (~binary, regression_metrics),
    }
    for kind, (columns, score) in scorers.items():
        index = torch.nonzero(columns).flatten()
        if index.numel():
            values = score(predictions[:, index], labels[:, index], masks[:, index])
            for name in (*METRICS_BY_KIND[kind], "labelled"):
                results[name][index] = values[name]
    return results


def channel_means(values: torch.Tensor, schema: DatasetSchema) -> dict[str, torch.Tensor]:
    """Mean of a per-task metric [T] over each channel's tasks, ignoring NaN; tasks without a channel are skipped."""
    channels = sorted({t.channel for t in schema.tasks if t.channel is not None})
    means = {}
    for channel in channels:
        index = torch.tensor([i for i, t in enumerate(schema.tasks) if t.channel == channel])
        means[channel] = values[index].nanmean()
    return means


@dataclass(frozen=True)
class Selection:
    """The composite validation criterion used for checkpointing and early stopping (higher is better).

    Written as "<metric>_mean" (mean over tasks where the metric is defined, e.g. "auc_mean",
    "ne_mean") or "<metric>:<task>=<weight>,..." (weighted mean over the named tasks, e.g.
    "auc:conversion_push=2,unsubscribe_push=1"). Lower-is-better metrics (logloss, ne, ece, rmse, mae) are
    negated. A metric is defined only for tasks of its kind, so "auc_mean" is the mean AUC over binary tasks.

    Args:
        metric: one of auc, logloss, ne, ece (binary tasks), rmse, mae (continuous tasks).
        weights: [T] weight of each task in schema order.
    """

    metric: str
    weights: torch.Tensor

    @classmethod
    def parse(cls, spec: str, task_names: list[str], kinds: Sequence[str] | None = None) -> Selection:
        """Args: spec: the criterion; task_names: the schema's tasks; kinds: each task's objective kind, to
        reject a criterion that no weighted task defines (such as "rmse_mean" without continuous tasks)."""
        match = re.fullmatch(r"(\w+?)_mean|(\w+):(.+)", spec.strip())
        metric = (match.group(1) or match.group(2)) if match else None
        if metric not in HIGHER_IS_BETTER:
            raise InputError(
                f"selection_metric {spec!r}: expected '<metric>_mean' or '<metric>:<task>=<weight>,...' "
                f"with metric in {sorted(HIGHER_IS_BETTER)}"
            )
        if match.group(1):
            weights = torch.ones(len(task_names), dtype=torch.float64)
        else:
            weights = _task_weights(spec, match.group(3), task_names)
        if kinds is not None:
            scored = {kind for kind, weight in zip(kinds, weights.tolist(), strict=True) if weight}
            if not any(metric in METRICS_BY_KIND[kind] for kind in scored):
                defined = " or ".join(k for k, names in METRICS_BY_KIND.items() if metric in names)
                raise InputError(f"selection_metric {spec!r}: {metric} scores {defined} tasks; none is weighted")
        return cls(metric, weights)

    def score(self, metrics: dict[str, torch.Tensor]) -> torch.Tensor:
        """Weighted mean of the metric over tasks where it is defined, signed so that higher is better."""
        values = metrics[self.metric]
        weights = torch.where(torch.isnan(values), torch.zeros_like(self.weights), self.weights.to(values.device))
        mean = (torch.nan_to_num(values) * weights).sum() / weights.sum()
        return mean if HIGHER_IS_BETTER[self.metric] else -mean


def _task_weights(spec: str, items: str, task_names: list[str]) -> torch.Tensor:
    """[T] weights of "task=weight,..." in schema order, 0 for tasks not named."""
    weights = torch.zeros(len(task_names), dtype=torch.float64)
    for item in items.split(","):
        task, _, weight = item.partition("=")
        if task.strip() not in task_names:
            raise InputError(f"selection_metric {spec!r}: unknown task {task.strip()!r}; tasks: {task_names}")
        try:
            weights[task_names.index(task.strip())] = float(weight)
        except ValueError as error:
            raise InputError(f"selection_metric {spec!r}: weight of {task.strip()!r} is not a number") from error
    return weights


class GateUsage:
    """Accumulates gate weights over an epoch to show how experts are used (and whether they collapse).

    Per gate it reports the mean weight of each expert, "max_share" (the largest mean weight; 1 means
    one expert takes everything) and "entropy" (mean per-row gate entropy over log(n_experts): 1 is a
    uniform gate, 0 a one-hot one).
    """

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.entropy: dict[str, torch.Tensor] = {}
        self.rows = 0

    def update(self, gates: dict[str, torch.Tensor]) -> None:
        """Args: gates: gate name -> [B, n_experts] weights whose rows sum to 1."""
        for name, weights in gates.items():
            weights = weights.detach().to(torch.float64)
            row_entropy = -(weights * weights.clamp(min=1e-12).log()).sum(1)
            self.sums[name] = self.sums.get(name, 0) + weights.sum(0)
            self.entropy[name] = self.entropy.get(name, 0) + row_entropy.sum()
        if gates:
            self.rows += next(iter(gates.values())).shape[0]

    def compute(self) -> dict[str, torch.Tensor]:
        """Flat name -> value, e.g. "{gate}/expert_0", "{gate}/max_share", "{gate}/entropy"."""
        summary: dict[str, torch.Tensor] = {}
        for name, sums in self.sums.items():
            mean = sums / max(self.rows, 1)
            summary.update({f"{name}/expert_{k}": value for k, value in enumerate(mean)})
            summary[f"{name}/max_share"] = mean.max()
            n_experts = mean.numel()
            summary[f"{name}/entropy"] = self.entropy[name] / max(self.rows, 1) / max(math.log(n_experts), 1e-12)
        return summary
