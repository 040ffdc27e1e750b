"""Long-term policies learned and valued from logs, against the simulator's truth, over seeds and strengths.

    python experiments/long_term/policies/run.py        (or: make reproduce-long-term-policies)

For each long_term_strength (0 and 1) and seed (0, 1, 2), the logging policy runs a world of 800 users for 86
days with common random numbers; its decision days 28 .. 83 (8 weeks) are the logged journeys
(`mtr.rl.trajectories`):
- from them only, fitted-Q evaluation (`mtr.rl.fitted_q`) and the per-decision doubly robust estimate value each
  policy's 8 weeks of active days (the sum of the next day's drawn activity over the 56 decisions);
- from another log of the same world (seed + 100: other users, catalog and luck), fitted-Q iteration learns
  when to send (`mtr.models.candidate_q.send_gate`: send nothing where its Q beats the logging policy's average
  send, else one of the logging policy's sends in its proportions) for two rewards: active days alone, and
  active days + 10 x conversions.
Each policy then decides those 56 days on the same users and luck (`journey_truth`, `rollout_in_env`), and the
truth's expected active days and conversions, the drawn sends, opens and opt-outs per user, and the share of
users still reachable by email and push at the end are its row.
The policies: the logging policy, a lighter sender (none_share 0.8), the myopic one (the highest true open
probability every day), "send nothing", and the two learned ones. Intervals are 95% over the 3 seeds (t, 2
degrees of freedom); "against myopic" is the paired difference on the same users per seed.
Writes results.json and the table of README.md in this folder.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mtr.experiments.long_term import simulated_policies
from mtr.experiments.results import seed_interval
from mtr.io import write_json, write_results_section
from mtr.rl.fitted_q import fit_q, off_policy_values
from mtr.rl.policies import learned, learned_probabilities, rollout_in_env
from mtr.rl.trajectories import LoggedJourneys, collect_journeys, journey_truth
from mtr.sim.config import WorldConfig

HERE = Path(__file__).resolve().parent
STRENGTHS = (0.0, 1.0)
SEEDS = (0, 1, 2)
USERS, FIRST_DAY, HORIZON = 800, 28, 56
DAYS = FIRST_DAY + HORIZON + 2
SIMULATED = simulated_policies()  # the policies `mtr long-term` values, the logging policy first
LEARNED = {
    "FQI, active days": {"active": 1.0},
    "FQI, active days + 10 x conversions": {"active": 1.0, "conversions": 10.0},
}
VALUED = {"active": 1.0}  # what FQE and PDDR estimate: the 8 weeks' active days
SIGNALS = ("active", "conversions", "sends", "opens", "unsubscribes", "reachable_email", "reachable_push")
LEARNING_SEED_OFFSET = 100  # the learned policies' training log: the world of seed + 100


def estimates(journeys: LoggedJourneys, name: str) -> dict[str, float]:
    """FQE's and PDDR's value of the journeys' policy `name` over the horizon (active days per user)."""
    values = off_policy_values(journeys, journeys.reward(VALUED), name)
    return {"fqe": values["fqe"].value, "pddr": values["pddr"].value}


def one_world(strength: float, seed: int) -> dict[str, dict[str, float]]:
    world = WorldConfig(long_term_strength=strength)
    targets = {name: policy for name, policy in SIMULATED.items() if name != "logging"}
    _, journeys = collect_journeys(USERS, DAYS, seed, world, FIRST_DAY, HORIZON, targets)
    rows: dict[str, dict[str, float]] = {}
    per_user: dict[str, np.ndarray] = {}
    for name, policy in SIMULATED.items():
        truth = journey_truth(USERS, DAYS, seed, world, FIRST_DAY, HORIZON, policy)
        per_user[name] = truth["active"]
        rows[name] = {**{s: float(truth[s].mean()) for s in SIGNALS}, **estimates(journeys, name)}
    # Learned from another log of the same world (other users, catalog and luck), valued on this one: a policy
    # valued on the logs it was fitted to would look better than it is.
    _, training = collect_journeys(USERS, DAYS, seed + LEARNING_SEED_OFFSET, world, FIRST_DAY, HORIZON)
    for name, weights in LEARNED.items():
        fitted = fit_q(training, training.reward(weights), None, seed=seed)
        truth = rollout_in_env(USERS, DAYS, seed, world, FIRST_DAY, HORIZON, learned(fitted))
        per_user[name] = truth["active"]
        journeys.targets[name] = learned_probabilities(fitted, journeys)
        rows[name] = {**{s: float(truth[s].mean()) for s in SIGNALS}, **estimates(journeys, name)}
    for name in rows:
        rows[name]["active_against_myopic"] = float((per_user[name] - per_user["myopic (most engaging)"]).mean())
    return rows


def main() -> None:
    started = time.perf_counter()
    runs = {strength: [one_world(strength, seed) for seed in SEEDS] for strength in STRENGTHS}
    results = {
        "config": {"users": USERS, "first_day": FIRST_DAY, "horizon": HORIZON, "seeds": list(SEEDS)},
        "strengths": {
            str(strength): {
                name: {field: seed_interval([run[name][field] for run in seeds]) for field in seeds[0][name]}
                for name in seeds[0]
            }
            for strength, seeds in runs.items()
        },
        "run_seconds": round(time.perf_counter() - started, 1),
    }
    write_json(HERE / "results.json", results)
    write_results_section(HERE / "README.md", table(results))


def table(results: dict) -> str:
    def cell(summary: dict, digits: int = 2, signed: bool = False) -> str:
        f = f"{{:{'+' if signed else ''}.{digits}f}}"
        return f"{f.format(summary['mean'])} [{f.format(summary['low'])}, {f.format(summary['high'])}]"

    lines = [
        "| long_term_strength | policy | true active days per user, 8 weeks | FQE | FQE error against truth | PDDR | "
        "against myopic (true, same users) | conversions per user | sends per user | opens per user | "
        "opt-outs per user | reachable by email, push at the end |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for strength, rows in results["strengths"].items():
        for name, row in rows.items():
            errors = [e / t - 1 for e, t in zip(row["fqe"]["per_seed"], row["active"]["per_seed"], strict=True)]
            lines.append(
                f"| {strength} | {name} | {cell(row['active'])} | {cell(row['fqe'])} | "
                f"{np.mean(errors):+.1%} ({', '.join(f'{e:+.1%}' for e in errors)}) | {cell(row['pddr'])} | "
                f"{cell(row['active_against_myopic'], signed=True)} | {cell(row['conversions'], 3)} | "
                f"{cell(row['sends'], 1)} | {cell(row['opens'], 1)} | {cell(row['unsubscribes'], 3)} | "
                f"{cell(row['reachable_email'], 3)}, {cell(row['reachable_push'], 3)} |"
            )
    lines.append(f"\nRun time: {results['run_seconds']:.0f} s on the 2-core machine.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
