"""Off-policy evaluation checked against the simulator's truth.

On a simulated log, every eligible candidate of every evaluated opportunity gets the trained model's
probabilities (for fused scores and the DR direct method) and the oracle's TRUE probabilities. For each
target policy, IPS / SNIPS / DR estimate each objective's rate per opportunity and the send volume
from the logs, and the truth is `mean_i sum_a pi(a | x_i) p_true(x_i, a)` over the same opportunities
(the oracle's one-step counterfactual: the rest of the log held fixed, which is what the estimators
target). Confidence-interval coverage is measured on disjoint user folds of the evaluated log.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mtr.errors import InputError
from mtr.experiments.results import write_results
from mtr.experiments.targets import TargetPolicy
from mtr.ope.estimators import ESTIMATORS, evaluate
from mtr.ope.logged_feedback import LoggedFeedback
from mtr.ope.problem import simulator_scored
from mtr.schema import DatasetSchema
from mtr.scoring.candidates import CandidateTable
from mtr.scoring.fusion import FusionInputs, fuse
from mtr.scoring.policy import PolicyConfig, PolicyDecision, decide
from mtr.scoring.weights import FusionWeights


@dataclass(frozen=True)
class SimulatorOpeConfig:
    """The simulator OPE experiment.

    Args:
        events: the evaluation log written by `mtr simulate` (the oracle reads it).
        dataset: the same log built by `mtr build-dataset` (features, labels, masks).
        run: the run folder of a model trained by `mtr fit` on another simulated log of the same world.
        checkpoint: checkpoint file in the run's checkpoints/.
        first_day: first evaluated day of the log (0-based).
        days: number of evaluated days.
        folds: disjoint user folds over which interval coverage is measured.
        policies: the target policies.
    """

    events: str
    dataset: str
    run: str
    checkpoint: str = "last.ckpt"
    first_day: int = 1
    days: int = 5
    folds: int = 5
    policies: tuple[TargetPolicy, ...] = ()

    def __post_init__(self) -> None:
        if not self.policies:
            raise InputError("simulator OPE: field 'policies' needs at least one policy")
        if self.days < 1 or self.first_day < 0 or self.folds < 1:
            raise InputError("simulator OPE: days and folds must be >= 1 and first_day >= 0")


@dataclass
class SimulatorLog:
    """Everything the evaluation needs that no target policy changes."""

    candidates: CandidateTable
    inputs: FusionInputs  # the model's [N, K] predictions and the objective table
    feedback: LoggedFeedback  # rewards: the K objectives and send volume
    truth: np.ndarray  # [N, K + 1] true probabilities (and send indicator) of every candidate
    fold: np.ndarray  # [G] user fold of each opportunity


def load_simulator_log(config: SimulatorOpeConfig) -> SimulatorLog:
    """Candidates, model predictions, oracle truth and logged rewards of the evaluated days."""
    rows = _evaluated_rows(Path(config.dataset), config.first_day, config.days)
    candidates, problem = simulator_scored(config.run, config.checkpoint, rows, config.events)
    user = candidates.groups.user
    fold = (user * 2654435761 % 2**32) % config.folds  # a fixed hash of the user index
    return SimulatorLog(candidates, problem.inputs, problem.feedback, problem.truth, fold)


def _evaluated_rows(dataset: Path, first_day: int, days: int) -> pl.DataFrame:
    schema = DatasetSchema.load(dataset)
    rows = pl.concat([pl.read_parquet(schema.split_path(dataset, s)) for s in schema.splits], how="vertical_relaxed")
    start = rows["ts"].min()
    day = (pl.col("ts") - pl.lit(start)).dt.total_days()
    rows = rows.filter(day.is_between(first_day, first_day + days - 1))
    if rows.height == 0:
        raise InputError(f"dataset {dataset}: no opportunities on days {first_day}..{first_day + days - 1}")
    return rows


def target_decision(log: SimulatorLog, policy: TargetPolicy) -> PolicyDecision:
    """The target policy's action distribution over the log's candidates."""
    groups = log.candidates.groups
    if policy.kind == "logging":
        return PolicyDecision(groups, probabilities=log.candidates.frame["propensity"].to_numpy())
    if policy.kind == "uniform":
        return PolicyDecision(groups, probabilities=1.0 / groups.sizes[groups.group_of])
    if policy.kind != "fused":
        raise InputError(f"policy '{policy.name}': kind must be logging, uniform or fused, got {policy.kind!r}")
    scores = fuse(log.inputs, FusionWeights.from_dict(policy.weights, f"policy '{policy.name}': weights"))
    return decide(groups, scores, PolicyConfig(threshold=policy.threshold, temperature=policy.temperature))


def evaluate_policy(log: SimulatorLog, policy: TargetPolicy, folds: int) -> dict:
    """Estimates against truth for one policy, on the whole log and on each user fold."""
    decision = target_decision(log, policy)
    true_per_row = decision.expectation(log.truth)  # [G, K + 1]: the objectives and send volume
    names = log.feedback.reward_names
    # Objectives the world does not draw have NaN truth: they are estimated, but coverage cannot be judged.
    judged = [j for j in range(len(names)) if not np.isnan(true_per_row[:, j]).any()]
    result: dict[str, Any] = {"send_rate": decision.send_rate(), "rewards": {}}
    overall = evaluate(log.feedback, decision)
    covered = {name: 0 for name in ESTIMATORS}
    for k in range(folds):
        in_fold = log.fold == k
        fold_estimates = evaluate(_restricted(log.feedback, in_fold), decision)
        for j in judged:
            reward, rows = names[j], log.feedback.mask[:, j] & in_fold
            truth = true_per_row[rows, j].mean()
            for name in ESTIMATORS:
                low, high = fold_estimates.estimates[reward][name].interval
                covered[name] += int(low <= truth <= high)
    for j, reward in enumerate(names):
        truth = float(true_per_row[log.feedback.mask[:, j], j].mean())
        entry = {"truth": truth, "n_rows": overall.n_rows[reward], "ess": overall.effective_sample_size[reward]}
        for name in ESTIMATORS:
            estimate = overall.estimates[reward][name]
            relative = (estimate.value - truth) / truth if truth and not np.isnan(truth) else None
            entry[name] = estimate.to_dict() | {"relative_error": relative}
        result["rewards"][reward] = entry
    result["fold_coverage"] = {name: covered[name] / (folds * max(len(judged), 1)) for name in ESTIMATORS}
    return result


def _restricted(feedback: LoggedFeedback, rows: np.ndarray) -> LoggedFeedback:
    """The same logs with every reward observed only on `rows` (a fold)."""
    return replace(feedback, mask=feedback.mask & rows[:, None])


def run_simulator_ope(out: Path, config: SimulatorOpeConfig) -> dict:
    """Evaluate every policy, write results.json and README.md (the tables) into `out`, atomically."""
    log = load_simulator_log(config)
    results = {
        "config": asdict(config),
        "opportunities": log.candidates.groups.n_groups,
        "candidates": log.candidates.groups.n_candidates,
        "logged_rates": dict(zip(log.feedback.reward_names, log.feedback.rewards.mean(axis=0).tolist(), strict=True)),
        "policies": {p.name: evaluate_policy(log, p, config.folds) for p in config.policies},
    }
    write_results(out, results, results_table(results))
    return results


def results_table(results: dict) -> str:
    """Markdown: one row per policy and reward with truth, every estimate and its relative error."""
    names = " | ".join(name.upper() for name in ESTIMATORS)
    lines = [
        "# Off-policy estimates against the simulator's truth",
        "",
        f"Written by `mtr ope simulator`: {results['opportunities']:,} opportunities, "
        f"{results['candidates']:,} candidates. Relative error = (estimate - truth) / truth.",
        "",
        f"| policy | send rate | reward | truth | {names} | DR 95% CI | ESS |",
        "| --- " * (len(ESTIMATORS) + 6) + "|",
    ]
    for policy, result in results["policies"].items():
        for reward, e in result["rewards"].items():
            cells = [f"{e[n]['value']:.4f} ({_relative(e[n]['relative_error'])})" for n in ESTIMATORS]
            lines.append(
                f"| {policy} | {result['send_rate']:.3f} | {reward} | {e['truth']:.4f} | {' | '.join(cells)} | "
                f"[{e['dr']['ci_low']:.4f}, {e['dr']['ci_high']:.4f}] | {e['ess']:.0f} |"
            )
    lines += ["", "95% interval coverage of the truth over user folds x rewards:", ""]
    lines += [f"| policy | {names} |", "| --- " * (len(ESTIMATORS) + 1) + "|"]
    for policy, result in results["policies"].items():
        coverage = result["fold_coverage"]
        lines.append(f"| {policy} | " + " | ".join(f"{coverage[n]:.0%}" for n in ESTIMATORS) + " |")
    return "\n".join(lines) + "\n"


def _relative(error: float | None) -> str:
    """A relative error as a signed percentage; none when the truth is 0."""
    return "n/a" if error is None else f"{error:+.1%}"
