"""Off-policy evaluation checked against the simulator's truth.

On a simulated log, every eligible candidate of every evaluated opportunity gets the trained model's
probabilities (for fused scores and the DR direct method) and the oracle's TRUE probabilities. For each
target policy, every registered estimator estimates each objective's rate per opportunity and the send
volume from the logs, and the truth is `mean_i sum_a pi(a | x_i) p_true(x_i, a)` over the same
opportunities (the oracle's one-step counterfactual: the rest of the log held fixed, which is what the
estimators target).

Estimators are judged at several data sizes: for each size, `repetitions` random subsets of users whose
opportunities number about that size are drawn, each estimated against its own truth; bias, RMSE and the
share of 95% intervals that cover the truth are taken over the repetitions.
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
from mtr.ope.scorers import load_scorers
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
        policies: the target policies.
        sizes: data sizes (opportunities, approximately: whole users are drawn) at which estimators are judged.
        repetitions: random user subsets per size.
        seed: seed of the subsets.
    """

    events: str
    dataset: str
    run: str
    checkpoint: str = "last.ckpt"
    first_day: int = 1
    days: int = 5
    policies: tuple[TargetPolicy, ...] = ()
    sizes: tuple[int, ...] = (10000, 2500, 625)
    repetitions: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.policies:
            raise InputError("simulator OPE: field 'policies' needs at least one policy")
        if self.days < 1 or self.first_day < 0:
            raise InputError("simulator OPE: days must be >= 1 and first_day >= 0")
        if not self.sizes or min(self.sizes) < 2:
            raise InputError(f"simulator OPE: field 'sizes' needs sizes of at least 2 opportunities, got {self.sizes}")
        if self.repetitions < 2:
            raise InputError(f"simulator OPE: field 'repetitions' must be >= 2, got {self.repetitions}")


@dataclass
class SimulatorLog:
    """Everything the evaluation needs that no target policy changes."""

    candidates: CandidateTable
    inputs: FusionInputs  # the model's [N, K] predictions and the objective table
    feedback: LoggedFeedback  # rewards: the K objectives and send volume
    truth: np.ndarray  # [N, K + 1] true probabilities (and send indicator) of every candidate


def load_simulator_log(config: SimulatorOpeConfig) -> SimulatorLog:
    """Candidates, model predictions, oracle truth and logged rewards of the evaluated days."""
    rows = _evaluated_rows(Path(config.dataset), config.first_day, config.days)
    scorers = load_scorers([Path(config.run)], config.checkpoint, splits=())
    candidates, problem = simulator_scored(scorers, rows, config.events)
    return SimulatorLog(candidates, problem.inputs, problem.feedback, problem.truth)


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


def evaluate_policy(log: SimulatorLog, policy: TargetPolicy, config: SimulatorOpeConfig) -> dict:
    """Estimates against truth for one policy: on the whole log, and bias / RMSE / coverage per data size."""
    decision = target_decision(log, policy)
    true_per_row = decision.expectation(log.truth)  # [G, K + 1]: the objectives and send volume
    names = log.feedback.reward_names
    result: dict[str, Any] = {"send_rate": decision.send_rate(), "rewards": {}}
    overall = evaluate(log.feedback, decision)
    for j, reward in enumerate(names):
        truth = float(true_per_row[log.feedback.mask[:, j], j].mean())
        entry = {"truth": truth, "n_rows": overall.n_rows[reward], "ess": overall.effective_sample_size[reward]}
        for name in ESTIMATORS:
            estimate = overall.estimates[reward][name]
            relative = (estimate.value - truth) / truth if truth and not np.isnan(truth) else None
            entry[name] = estimate.to_dict() | {"relative_error": relative}
        result["rewards"][reward] = entry
    result["sizes"] = {
        str(size): size_errors(log, decision, true_per_row, user_subsets(log, size, config)) for size in config.sizes
    }
    return result


def user_subsets(log: SimulatorLog, size: int, config: SimulatorOpeConfig) -> list[np.ndarray]:
    """`repetitions` [G] masks, each the opportunities of random users drawn until about `size` opportunities.

    Whole users are drawn (a user's opportunities share the user's state), so the subsets are independent
    draws of users; subsets of more than half the log overlap.
    """
    user = log.candidates.groups.user
    users, counts = np.unique(user, return_counts=True)
    rng = np.random.default_rng([config.seed, size])
    subsets = []
    for _ in range(config.repetitions):
        order = rng.permutation(users.size)
        taken = order[: int(np.searchsorted(np.cumsum(counts[order]), size)) + 1]
        subsets.append(np.isin(user, users[taken]))
    return subsets


def size_errors(
    log: SimulatorLog, decision: PolicyDecision, true_per_row: np.ndarray, subsets: list[np.ndarray]
) -> dict:
    """Per reward and estimator: bias, RMSE and 95% interval coverage over the subsets, each against its own
    truth; relative figures divide by the mean truth. Rewards without a truth (NaN) are left out."""
    names, mask = log.feedback.reward_names, log.feedback.mask
    judged = [j for j in range(len(names)) if not np.isnan(true_per_row[:, j]).any()]
    errors = {names[j]: {name: [] for name in ESTIMATORS} for j in judged}
    covered = {names[j]: {name: [] for name in ESTIMATORS} for j in judged}
    truths: dict[str, list[float]] = {names[j]: [] for j in judged}
    opportunities = []
    for rows in subsets:
        opportunities.append(int(rows.sum()))
        estimates = evaluate(_restricted(log.feedback, rows), decision).estimates
        for j in judged:
            reward = names[j]
            truth = float(true_per_row[mask[:, j] & rows, j].mean())
            truths[reward].append(truth)
            for name in ESTIMATORS:
                estimate = estimates[reward][name]
                low, high = estimate.interval
                errors[reward][name].append(estimate.value - truth)
                covered[reward][name].append(low <= truth <= high)
    result: dict[str, Any] = {"opportunities": float(np.mean(opportunities)), "rewards": {}}
    for reward in errors:
        scale = float(np.mean(truths[reward]))
        result["rewards"][reward] = {"truth": scale} | {
            name: _error_summary(np.array(errors[reward][name]), np.array(covered[reward][name]), scale)
            for name in ESTIMATORS
        }
    result["coverage"] = {name: float(np.mean([covered[r][name] for r in covered])) for name in ESTIMATORS}
    return result


def _error_summary(error: np.ndarray, covered: np.ndarray, scale: float) -> dict[str, float | None]:
    """Bias, RMSE and coverage of one estimator on one reward; relative ones divide by the truth's scale."""
    bias, rmse = float(error.mean()), float(np.sqrt(np.mean(error**2)))
    relative = scale > 0
    return {
        "bias": bias,
        "rmse": rmse,
        "coverage": float(covered.mean()),
        "relative_bias": bias / scale if relative else None,
        "relative_rmse": rmse / scale if relative else None,
    }


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
        "policies": {p.name: evaluate_policy(log, p, config) for p in config.policies},
    }
    write_results(out, results, results_table(results), "ope simulator")
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
    return "\n".join(lines + ["", *size_table(results)])


def size_table(results: dict) -> list[str]:
    """Markdown lines: per policy, data size and estimator, coverage over repetitions x rewards, and each
    reward's relative bias / relative RMSE / coverage."""
    config = results["config"]
    first = next(iter(results["policies"].values()))["sizes"]
    rewards = list(next(iter(first.values()))["rewards"])
    lines = [
        f"Per data size, {config['repetitions']} random user subsets (seed {config['seed']}), each estimated "
        "against its own truth. Coverage: the share of 95% intervals that cover the truth, over subsets x "
        "rewards. Per reward: relative bias / relative RMSE (divided by the mean truth) / coverage.",
        "",
        "| policy | opportunities | estimator | coverage | " + " | ".join(rewards) + " |",
        "| --- " * (len(rewards) + 4) + "|",
    ]
    for policy, result in results["policies"].items():
        for cell in result["sizes"].values():
            for name in ESTIMATORS:
                errors = [cell["rewards"][r][name] for r in rewards]
                figures = " | ".join(
                    f"{_relative(e['relative_bias'])} / {_percent(e['relative_rmse'])} / {e['coverage']:.0%}"
                    for e in errors
                )
                lines.append(
                    f"| {policy} | {cell['opportunities']:,.0f} | {name} | {cell['coverage'][name]:.0%} | {figures} |"
                )
    return lines


def _relative(error: float | None) -> str:
    """A relative error as a signed percentage; none when the truth is 0."""
    return "n/a" if error is None else f"{error:+.1%}"


def _percent(error: float | None) -> str:
    """A relative size as a percentage; none when the truth is 0."""
    return "n/a" if error is None else f"{error:.1%}"
