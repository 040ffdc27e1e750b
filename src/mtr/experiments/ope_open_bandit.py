"""Off-policy evaluation checked on real logs: the Open Bandit Dataset (small), BTS estimated from random.

ZOZOTOWN logged the same campaigns with two policies: uniform random (propensity 1 / n_items at every
position) and Bernoulli Thompson sampling (BTS). Estimating BTS's click rate from the random policy's
logs with IPS, SNIPS and DR, and comparing with the click rate BTS itself logged, checks the estimators
against an on-policy truth (itself a sample of 10,000 impressions, so it has a standard error too).

The target policy. The logs give BTS's probability of the item it showed, at that time, not of every
item, so BTS's full action distribution has to be estimated from its log. The OBD paper evaluates BTS as
a context-free distribution over (item, position); we take

- "frequency": pi(item | position) = its share of the BTS log's impressions at that position, the
  unbiased estimate of BTS's time-averaged distribution (primary);
- "daily_frequency": the same share per calendar day, matched to each random impression's day, which
  follows BTS's posterior as it moved during the week;
- "mean_propensity": the mean logged propensity per (item, position), renormalised per position. It is
  size-biased (an item is logged more when its propensity is high, so its mean logged propensity
  overstates its average probability; the raw means sum to 2-3.7 per position) and is reported as
  the weaker alternative.

The DR reward model is the click rate per (item, position) on the random log, shrunk towards the
position's click rate, and cross-fitted: each fold's rows are predicted by a model fitted on the others.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from mtr.data.adapters.source import dataset_source, read_csv_table
from mtr.errors import InputError
from mtr.experiments.results import write_results
from mtr.ope.estimators import ESTIMATORS, OffPolicyResult, evaluate
from mtr.ope.logged_feedback import LoggedFeedback
from mtr.scoring.groups import NONE_CODE, CandidateGroups
from mtr.scoring.policy import PolicyDecision

FOLDER = "open_bandit_dataset_small"
CAMPAIGNS = ("all", "men", "women")
TARGETS = ("frequency", "daily_frequency", "mean_propensity")
POSITIONS = 3
LOG_COLUMNS: dict[str, pl.DataType] = {
    "timestamp": pl.Datetime("us", "UTC"),
    "item_id": pl.Int64(),
    "position": pl.Int64(),
    "click": pl.Int64(),
    "propensity_score": pl.Float64(),
}


@dataclass(frozen=True)
class OpenBanditOpeConfig:
    """The Open Bandit off-policy evaluation experiment.

    Args:
        campaigns: campaigns to evaluate ("all", "men", "women").
        targets: estimates of BTS's action distribution to evaluate (see the module docstring).
        source: the small-dataset folder (default: $MTR_DATA_DIR/open_bandit_dataset_small).
        reward_prior: pseudo-impressions of the position click rate in the DR reward model's shrinkage.
        folds: cross-fitting folds of the reward model (by time).
    """

    campaigns: tuple[str, ...] = CAMPAIGNS
    targets: tuple[str, ...] = TARGETS
    source: str | None = None
    reward_prior: float = 200.0
    folds: int = 2

    def __post_init__(self) -> None:
        for field, values, allowed in (("campaigns", self.campaigns, CAMPAIGNS), ("targets", self.targets, TARGETS)):
            unknown = sorted(set(values) - set(allowed))
            if unknown or not values:
                raise InputError(f"open bandit OPE: field '{field}' must be a non-empty subset of {allowed}")
        if self.reward_prior < 0 or self.folds < 2:
            raise InputError("open bandit OPE: reward_prior must be >= 0 and folds >= 2")


def read_log(source: Path, policy: str, campaign: str) -> pl.DataFrame:
    """One policy's log: timestamp, item_id, position (0-based), click, propensity_score, day."""
    log = read_csv_table(source / policy / campaign / f"{campaign}.csv.gz", LOG_COLUMNS)
    if log.height == 0:
        raise InputError(f"table '{policy}/{campaign}' is empty")
    return log.with_columns(pl.col("position") - 1, pl.col("timestamp").dt.date().alias("day")).sort("timestamp")


def bts_distribution(bts: pl.DataFrame, n_items: int, target: str, days: pl.Series) -> np.ndarray:
    """[len(days), POSITIONS, n_items] BTS's estimated probability of each item at each position.

    Args:
        bts: the BTS log.
        n_items: number of items in the campaign.
        target: "frequency", "daily_frequency" or "mean_propensity".
        days: the day of each row the distribution is needed for (only "daily_frequency" uses it).
    """
    table = np.zeros((POSITIONS, n_items))
    if target == "daily_frequency":
        by_day = {
            day: bts_distribution(part, n_items, "frequency", days[:1])[0] for (day,), part in bts.group_by("day")
        }
        missing = sorted({d for d in days.unique().to_list() if d not in by_day})
        if missing:
            raise InputError(f"open bandit: the BTS log has no impressions on {missing[:3]}")
        return np.stack([by_day[d] for d in days.to_list()])
    position, item = bts["position"].to_numpy(), bts["item_id"].to_numpy()
    weight = bts["propensity_score"].to_numpy() if target == "mean_propensity" else np.ones(bts.height)
    np.add.at(table, (position, item), weight)
    if target == "mean_propensity":
        counts = np.zeros_like(table)
        np.add.at(counts, (position, item), 1.0)
        table = np.divide(table, counts, out=np.zeros_like(table), where=counts > 0)
    return (table / table.sum(axis=1, keepdims=True))[None]


def reward_model(random: pl.DataFrame, n_items: int, prior: float, folds: int) -> np.ndarray:
    """[G, POSITIONS, n_items] cross-fitted click rate per (item, position) for each random-log row."""
    fold = np.arange(random.height) * folds // random.height  # contiguous blocks in time
    position, item, click = (random[c].to_numpy() for c in ("position", "item_id", "click"))
    out = np.empty((random.height, POSITIONS, n_items))
    for k in range(folds):
        fit = fold != k
        clicks, shows = np.zeros((POSITIONS, n_items)), np.zeros((POSITIONS, n_items))
        np.add.at(clicks, (position[fit], item[fit]), click[fit])
        np.add.at(shows, (position[fit], item[fit]), 1.0)
        position_rate = clicks.sum(axis=1, keepdims=True) / np.maximum(shows.sum(axis=1, keepdims=True), 1.0)
        out[fold == k] = (clicks + prior * position_rate) / (shows + prior)
    return out


def random_log_feedback(random: pl.DataFrame, n_items: int, predicted: np.ndarray) -> LoggedFeedback:
    """The random log as groups of one "none" (never shown, probability 0) plus every item at the row's position.

    OBD has no "send nothing"; the structure's none candidate is kept and given probability 0.
    """
    g = random.height
    sizes = np.full(g, n_items + 1)
    channel = np.tile(np.r_[NONE_CODE, np.zeros(n_items, dtype=np.int8)], g)
    groups = CandidateGroups.build(sizes, channel, np.arange(g), np.zeros(g))
    position = random["position"].to_numpy()
    per_candidate = np.concatenate([np.zeros((g, 1)), predicted[np.arange(g), position]], axis=1)  # [G, 1 + items]
    return LoggedFeedback(
        groups,
        groups.starts + 1 + random["item_id"].to_numpy(),
        random["propensity_score"].to_numpy(),
        random["click"].to_numpy().astype(np.float64)[:, None],
        np.ones((g, 1), dtype=bool),
        per_candidate.reshape(-1, 1),
        ("click",),
        (True,),
    )


def evaluate_campaign(source: Path, campaign: str, config: OpenBanditOpeConfig) -> dict:
    """Estimates of BTS's click rate from the random log for each target variant, with the BTS truth."""
    random, bts = read_log(source, "random", campaign), read_log(source, "bts", campaign)
    n_items = int(max(random["item_id"].max(), bts["item_id"].max())) + 1
    feedback = random_log_feedback(random, n_items, reward_model(random, n_items, config.reward_prior, config.folds))
    clicks = bts["click"].to_numpy().astype(np.float64)
    truth = {"value": float(clicks.mean()), "standard_error": float(clicks.std(ddof=1) / np.sqrt(clicks.size))}
    result = {"n_items": n_items, "random_rows": random.height, "random_click_rate": float(random["click"].mean())}
    result |= {"bts_rows": bts.height, "bts_click_rate": truth, "targets": {}}
    position = random["position"].to_numpy()
    for target in config.targets:
        distribution = bts_distribution(bts, n_items, target, random["day"])  # [1 or G, P, items]
        rows = np.arange(random.height) if distribution.shape[0] > 1 else np.zeros(random.height, dtype=np.int64)
        per_row = distribution[rows, position]  # [G, items]
        probabilities = np.concatenate([np.zeros((random.height, 1)), per_row], axis=1).reshape(-1)
        estimates = evaluate(feedback, PolicyDecision(feedback.groups, probabilities=probabilities))
        result["targets"][target] = _against_truth(estimates, truth)
    return result


def _against_truth(estimates: OffPolicyResult, truth: dict[str, float]) -> dict:
    out = {"effective_sample_size": estimates.effective_sample_size["click"]}
    for name in ESTIMATORS:
        estimate = estimates.estimates["click"][name]
        low, high = estimate.interval
        combined = np.hypot(estimate.standard_error, truth["standard_error"])
        out[name] = {
            **estimate.to_dict(),
            "relative_error": abs(estimate.value - truth["value"]) / truth["value"],
            "z_vs_truth": (estimate.value - truth["value"]) / combined,
            "ci_covers_truth": bool(low <= truth["value"] <= high),
        }
    return out


def run_open_bandit_ope(out: Path, config: OpenBanditOpeConfig) -> dict:
    """Evaluate every campaign and write results.json and README.md (the tables) into `out`, atomically."""
    source = dataset_source(Path(config.source) if config.source else None, FOLDER)
    campaigns = {c: evaluate_campaign(source, c, config) for c in config.campaigns}
    results = {"config": asdict(config), "campaigns": campaigns}
    write_results(out, results, results_table(results), "ope open-bandit")
    return results


def results_table(results: dict) -> str:
    """The results as a Markdown table: one row per campaign, target variant and estimator."""
    lines = [
        "# BTS click rate estimated from the uniform-random log (Open Bandit small data)",
        "",
        "Written by `mtr ope open-bandit`. Truth: BTS's own logged click rate (± its standard error).",
        "",
        "| campaign | target pi | estimator | estimate | 95% CI | BTS logged CTR | relative error | z | ESS |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for campaign, result in results["campaigns"].items():
        truth = result["bts_click_rate"]
        for target, by_estimator in result["targets"].items():
            for name in ESTIMATORS:
                e = by_estimator[name]
                lines.append(
                    f"| {campaign} | {target} | {name} | {e['value']:.5f} | [{e['ci_low']:.5f}, {e['ci_high']:.5f}] | "
                    f"{truth['value']:.4f} ± {truth['standard_error']:.4f} | {e['relative_error']:.1%} | "
                    f"{e['z_vs_truth']:+.2f} | {by_estimator['effective_sample_size']:.0f} |"
                )
    return "\n".join(lines) + "\n"
