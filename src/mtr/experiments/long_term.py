"""`mtr long-term`: learn a long-term policy from a simulated log and value every policy over weeks, beside the
truth.

The logging policy runs a world of the simulator with common random numbers; its decision days [first_day,
first_day + horizon) are the logged journeys (`mtr.rl.trajectories`). From another log of the same world,
fitted-Q iteration learns when to send for the reward (`mtr.models.candidate_q.send_gate`); from this one,
fitted-Q evaluation, per-decision importance sampling and per-decision DR value each policy's reward over the
horizon: the logging policy, a
lighter sender (none_share 0.8), the myopic one (highest true open probability), "send nothing" and the learned
one. Then each policy decides those days on the same users and luck, and the simulator's truth is its row. The
learned policy is exported as a serving artifact (`mtr.serving.long_term`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtr.errors import InputError
from mtr.sim.config import WorldConfig

if TYPE_CHECKING:
    from mtr.sim.engine import Policy

LEARNED = "learned (FQI send gate)"


def simulated_policies() -> dict[str, Policy]:
    """The simulator's policies every run values: the logging policy first."""
    from mtr.sim.rollout import logging_policy, most_engaging, send_nothing

    return {
        "logging": logging_policy(),
        "lighter (none_share 0.8)": logging_policy(none_share=0.8),
        "myopic (most engaging)": most_engaging,
        "send nothing": send_nothing,
    }


def long_term(
    out: Path,
    users: int = 800,
    first_day: int = 28,
    horizon: int = 56,
    seed: int = 0,
    learning_seed: int | None = None,
    world: WorldConfig = WorldConfig(long_term_strength=1.0),  # noqa: B008 (frozen dataclass)
    reward: dict[str, float] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Learn a long-term policy from the simulator's logs and value every policy over the horizon, truth beside.

    Writes `out/results.json` (per policy: each estimator's value of the reward over the horizon with its 95%
    interval, and the truth of every signal per user) and `out/policy/` (the learned policy's artifact).

    Args:
        out: output folder (replaced atomically).
        users: users of the simulated world.
        first_day: the log's first decision day of the journeys (the logging policy decides before it).
        horizon: decision days of the journeys (56: 8 weeks).
        seed: the world's seed (users, catalog and luck) whose log every policy is valued on.
        learning_seed: the seed of the log the policy is learned from (default seed + 100: other users, catalog
            and luck of the same world); a policy valued on the log it was fitted to would look better than it is.
        world: the world's knobs; long_term_strength sets how much sends wear users out.
        reward: weights of the per-day signals (active, conversions, opens, sends, unsubscribes) the policy is
            learned for and valued on; default: active days alone.
        overwrite: replace `out` even when it is not this command's earlier output.
    """
    # torch, numpy and polars load only when the command runs (`mtr --help` stays fast).
    import numpy as np

    from mtr.io import atomic_output_dir, write_json
    from mtr.rl.features import action_names, check_reward_weights, state_names, weighted_reward
    from mtr.rl.fitted_q import fit_q, off_policy_values
    from mtr.rl.policies import learned, learned_probabilities, rollout_in_env
    from mtr.rl.trajectories import collect_journeys, journey_truth
    from mtr.serving.long_term import export_long_term_policy

    weights = check_reward_weights({"active": 1.0} if reward is None else reward)
    if users < 10:
        raise InputError(f"--users must be >= 10, got {users}")
    days = first_day + horizon + 2
    policies = simulated_policies()
    targets = {name: policy for name, policy in policies.items() if name != "logging"}
    with atomic_output_dir(out, "long-term", overwrite) as folder:
        _, journeys = collect_journeys(users, days, seed, world, first_day, horizon, targets)
        rewards = journeys.reward(weights)
        learning_seed = seed + 100 if learning_seed is None else learning_seed
        _, training = collect_journeys(users, days, learning_seed, world, first_day, horizon)
        fitted = fit_q(training, training.reward(weights), None, seed=seed)
        journeys.targets[LEARNED] = learned_probabilities(fitted, journeys)
        truths = {name: journey_truth(users, days, seed, world, first_day, horizon, p) for name, p in policies.items()}
        truths[LEARNED] = rollout_in_env(users, days, seed, world, first_day, horizon, learned(fitted))
        rows = {}
        for name, truth in truths.items():
            estimates = off_policy_values(journeys, rewards, name, seed=seed)
            true_value = weighted_reward(truth, weights)
            rows[name] = {
                "estimates": {e: {"value": v.value, "interval": list(v.interval)} for e, v in estimates.items()},
                "true_value": float(np.mean(true_value)),
                "truth_per_user": {signal: float(values.mean()) for signal, values in truth.items()},
            }
        described = {
            "state_features": list(state_names()),
            "candidate_features": list(action_names(world.hours)),
            "reward": weights,
            "learned_from": {
                "simulator_seed": learning_seed,
                "users": users,
                "first_day": first_day,
                "world": vars(world),
            },
            "fqe_value": rows[LEARNED]["estimates"]["fqe"],
        }
        export_long_term_policy(fitted.network, described, folder / "policy")
        results = {
            "config": {
                "users": users,
                "first_day": first_day,
                "horizon": horizon,
                "seed": seed,
                "learning_seed": learning_seed,
                "reward": weights,
            },
            "world": vars(world),
            "policies": rows,
        }
        write_json(folder / "results.json", results)
    print(_table(results))
    return results


def _table(results: dict[str, Any]) -> str:
    config = results["config"]
    lines = [
        f"value of {config['reward']} per user over {config['horizon']} days "
        f"({config['users']} users, long_term_strength {results['world']['long_term_strength']}):",
        f"  {'policy':34s} {'truth':>7s}  {'FQE [95% interval]':>24s}  {'PDDR [95% interval]':>24s}  "
        f"{'sends':>6s} {'opt-outs':>8s}",
    ]
    for name, row in results["policies"].items():
        cells = []
        for estimator in ("fqe", "pddr"):
            e = row["estimates"][estimator]
            cells.append(f"{e['value']:7.2f} [{e['interval'][0]:7.2f}, {e['interval'][1]:7.2f}]")
        truth = row["truth_per_user"]
        lines.append(
            f"  {name:34s} {row['true_value']:7.2f}  {cells[0]:>24s}  {cells[1]:>24s}  "
            f"{truth['sends']:6.1f} {truth['unsubscribes']:8.3f}"
        )
    lines.append("  FQE's interval covers the users' first states only, not the Q fit's own error.")
    return "\n".join(lines)
