"""The long-term knob's true effects: what weariness does to a world and to whole policies, over seeds.

    python experiments/long_term/world.py        (or: make reproduce-long-term-world)

For each strength and seed, the same world (users, catalog, logging decisions: the logging policy never sees
activity, so every strength replays the same sends with common random numbers) is simulated at 800 users x 112
days. From the oracle's truth, per strength: active days per user and day; the one-step effect of each logged
send of the first 50 days on the user's active days in the next 8 weeks (send against "send nothing", every
other decision held fixed); the share of sends that lose active days; and, for comparison, the same effect on
retention and the sends' engagement.

Whole policies (`mtr.sim.rollout`): each policy decides every day of the same world (users, catalog and, with
common random numbers, luck) for 112 days at strengths 0 and 1: the logging policy, a lighter and a heavier
sender (its none_share at 0.8 and 0.15), the myopic policy (each day the action with the highest true open
probability) and "send nothing". Per policy: expected active days and conversions per user in the last 8 weeks,
opens, sends and opt-outs per user, and the share of users still reachable by email at the end; and the change
in active days against the logging policy on the same users (paired).

The surrogate index (`mtr.ope.surrogate`): fitted on a population's users (their drawn active days, opens, sends
and opt-outs of the first 1 or 2 weeks, and their baseline activity, against their true active days over the 8
weeks from the start), then applied to every policy's users' first weeks. Two populations to fit on: the logging
policy's own users, and another seed's users in a historical experiment of sending intensity (the logging policy
with none_share 0.05, 0.3, 0.5, 0.7 or 0.95 by user). Per strength, population and weeks: the rank correlation
across the 5 policies between the index's and the truth's 8-week active days, and each policy's effect against
logging, predicted and true. Intervals are 95% over seeds (t with seeds - 1 degrees of freedom).
Writes results.json and the tables of README.md in this folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats

from mtr.experiments.results import seed_interval
from mtr.io import write_json, write_results_section
from mtr.ope.surrogate import SurrogateIndex
from mtr.sim.config import WorldConfig
from mtr.sim.engine import Policy, SimulatedLog
from mtr.sim.rollout import (
    PolicyOutcomes,
    active_days_from_start,
    logging_policy,
    most_engaging,
    randomised_intensity,
    roll_out,
    send_nothing,
    short_term_signals,
)
from mtr.sim.writer import simulate_tables

HERE = Path(__file__).resolve().parent
STRENGTHS = (0.0, 0.5, 1.0, 2.0)
SEEDS = (0, 1, 2)
USERS, DAYS, FIRST_DAYS = 800, 112, 50
POLICY_STRENGTHS = (0.0, 1.0)
POLICIES: dict[str, Policy] = {
    "logging": logging_policy(),
    "lighter (none_share 0.8)": logging_policy(none_share=0.8),
    "heavier (none_share 0.15)": logging_policy(none_share=0.15),
    "myopic (most engaging)": most_engaging,
    "send nothing": send_nothing,
}


def world_effects(strength: float, seed: int) -> dict[str, float]:
    """The true effects of one simulated world (see the module docstring)."""
    log, tables = simulate_tables(USERS, DAYS, seed, WorldConfig(long_term_strength=strength))
    truth, history = log.truth, log.history
    user, day = np.nonzero(history.sent[:, :FIRST_DAYS])
    sent = truth.evaluate(user, day, history.message[user, day], history.channel[user, day], history.hour[user, day])
    nothing = np.full(len(user), -1)
    none = truth.evaluate(user, day, nothing, nothing, nothing)
    effect = sent.active_days_8w - none.active_days_8w
    observed_days = (log.log_end_us - log.log_start_us) // 86_400_000_000
    return {
        "active_share_of_days": tables["activity"].height / (USERS * observed_days),
        "sends_per_user_day": float(history.sent.mean()),
        "send_effect_active_days_8w": float(effect.mean()),
        "share_of_sends_losing_active_days": float((effect < 0).mean()),
        "send_effect_retention": float((sent.retention - none.retention).mean()),
        "engagement_of_sends": float(np.nanmean(sent.engagement)),
    }


def rollouts(strength: float, seed: int) -> dict[str, tuple[SimulatedLog, PolicyOutcomes]]:
    """Every policy run on the world of `seed` at `strength` (the same users and luck)."""
    world = WorldConfig(long_term_strength=strength)
    return {name: roll_out(policy, USERS, DAYS, seed, world) for name, policy in POLICIES.items()}


def policy_effects(runs: dict[str, tuple[SimulatedLog, PolicyOutcomes]]) -> dict[str, dict[str, float]]:
    """Each policy's outcomes, with its active days paired against logging."""
    outcomes = {name: outcome for name, (_, outcome) in runs.items()}
    logging = outcomes["logging"].per_user_active_days
    return {
        name: {
            "active_days_last_8_weeks": float(o.per_user_active_days.mean()),
            "change_against_logging": float((o.per_user_active_days - logging).mean()),
            "conversions_last_8_weeks": float(o.per_user_conversions.mean()),
            "opens_per_user": float(o.per_user_opens.mean()),
            "sends_per_user": float(o.per_user_sends.mean()),
            "unsubscribes_per_user": float(o.per_user_unsubscribes.mean()),
            "reachable_by_email": float(o.reachable[1]),
        }
        for name, o in outcomes.items()
    }


SURROGATE_WEEKS = (1, 2)
HISTORICAL_EXPERIMENT = randomised_intensity((0.05, 0.3, 0.5, 0.7, 0.95))
OTHER_USERS = 100  # the historical experiment's world: seed + 100, other users than the policies'


def surrogate_effects(
    runs: dict[str, tuple[SimulatedLog, PolicyOutcomes]], strength: float, seed: int
) -> dict[str, dict]:
    """The index's 8-week predictions from each policy's first weeks against the truth (see the docstring)."""
    world = WorldConfig(long_term_strength=strength)
    logs = {name: log for name, (log, _) in runs.items()}
    truth = {name: float(active_days_from_start(log).mean()) for name, log in logs.items()}
    experiment = roll_out(HISTORICAL_EXPERIMENT, USERS, DAYS, seed + OTHER_USERS, world)[0]
    populations = {"logging users": (logs["logging"], seed), "intensity experiment": (experiment, seed + OTHER_USERS)}
    results = {}
    for population, (fitted_on, fitted_seed) in populations.items():
        for weeks in SURROGATE_WEEKS:
            signals = {name: short_term_signals(log, seed, 7 * weeks) for name, log in logs.items()}
            index = SurrogateIndex.fit(
                short_term_signals(fitted_on, fitted_seed, 7 * weeks), active_days_from_start(fitted_on)
            )
            predicted = {name: float(index.predict(signals[name]).mean()) for name in logs}
            rank = stats.spearmanr([truth[n] for n in logs], [predicted[n] for n in logs]).statistic
            results[f"{population}, {weeks}w"] = {
                "rank_correlation": float(rank),
                "r2_on_fitted_population": index.r2,
                "effects": {
                    name: {"true": truth[name] - truth["logging"], "predicted": predicted[name] - predicted["logging"]}
                    for name in logs
                    if name != "logging"
                },
            }
    return results


def main() -> None:
    results = {"users": USERS, "days": DAYS, "seeds": list(SEEDS), "strengths": {}}
    calm = {}
    for strength in STRENGTHS:
        runs = [world_effects(strength, seed) for seed in SEEDS]
        calm = calm or {seed: r["active_share_of_days"] for seed, r in zip(SEEDS, runs, strict=True)}
        for seed, r in zip(SEEDS, runs, strict=True):  # paired: the same seed's world at strength 0
            r["active_share_change"] = r["active_share_of_days"] - calm[seed]
        results["strengths"][str(strength)] = {name: seed_interval([r[name] for r in runs]) for name in runs[0]}
        print(f"strength {strength}: done")
    results["policies"], results["surrogate"] = {}, {}
    for strength in POLICY_STRENGTHS:
        by_seed = {seed: rollouts(strength, seed) for seed in SEEDS}
        runs = [policy_effects(by_seed[seed]) for seed in SEEDS]
        results["policies"][str(strength)] = {
            name: {figure: seed_interval([r[name][figure] for r in runs]) for figure in runs[0][name]}
            for name in POLICIES
        }
        print(f"policies at strength {strength}: done")
        runs = [surrogate_effects(by_seed[seed], strength, seed) for seed in SEEDS]
        results["surrogate"][str(strength)] = {
            weeks: {
                "rank_correlation": seed_interval([r[weeks]["rank_correlation"] for r in runs]),
                "r2_on_fitted_population": seed_interval([r[weeks]["r2_on_fitted_population"] for r in runs]),
                "effects": {
                    name: {
                        kind: seed_interval([r[weeks]["effects"][name][kind] for r in runs])
                        for kind in ("true", "predicted")
                    }
                    for name in runs[0][weeks]["effects"]
                },
            }
            for weeks in runs[0]
        }
        print(f"surrogate index at strength {strength}: done")
    write_json(HERE / "results.json", results)
    write_results_section(HERE / "README.md", table(results))


HEADERS = (
    "long_term_strength",
    "active days per user-day",
    "change against strength 0 (same seed)",
    "one send's effect on active days in 8 weeks",
    "sends that lose active days",
    "one send's effect on retention",
    "engagement of sends",
)

POLICY_HEADERS = (
    "long_term_strength",
    "policy",
    "active days per user, last 8 weeks",
    "change against logging (same users)",
    "conversions per user, last 8 weeks",
    "opens per user",
    "sends per user",
    "opt-outs per user",
    "reachable by email at the end",
)

SURROGATE_HEADERS = (
    "long_term_strength",
    "fitted on, first weeks seen",
    "rank correlation with truth across the 5 policies (per seed)",
    "R² on its population",
    "each policy's effect on 8-week active days against logging: predicted vs true (mean over seeds)",
)


def table(results: dict) -> str:
    rows = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for strength, figures in results["strengths"].items():
        cells = [
            f"{figures[name]['mean']:{fmt}} [{figures[name]['low']:{fmt}}, {figures[name]['high']:{fmt}}]"
            for name, fmt in (
                ("active_share_of_days", ".3f"),
                ("active_share_change", "+.3f"),
                ("send_effect_active_days_8w", "+.3f"),
                ("share_of_sends_losing_active_days", ".2f"),
                ("send_effect_retention", "+.4f"),
                ("engagement_of_sends", ".3f"),
            )
        ]
        rows.append(f"| {strength} | " + " | ".join(cells) + " |")
    rows += ["", "Whole policies, 112 days on the same users and luck:", "", "| " + " | ".join(POLICY_HEADERS) + " |"]
    rows.append("|" + "---|" * len(POLICY_HEADERS))
    for strength, policies in results["policies"].items():
        for name, figures in policies.items():
            cells = [
                f"{figures[figure]['mean']:{fmt}} [{figures[figure]['low']:{fmt}}, {figures[figure]['high']:{fmt}}]"
                for figure, fmt in (
                    ("active_days_last_8_weeks", ".2f"),
                    ("change_against_logging", "+.2f"),
                    ("conversions_last_8_weeks", ".3f"),
                    ("opens_per_user", ".1f"),
                    ("sends_per_user", ".1f"),
                    ("unsubscribes_per_user", ".3f"),
                    ("reachable_by_email", ".3f"),
                )
            ]
            rows.append(f"| {strength} | {name} | " + " | ".join(cells) + " |")
    rows += [
        "",
        "The surrogate index, fitted on the logging policy's users, predicting 8 weeks from the first weeks:",
        "",
    ]
    rows += ["| " + " | ".join(SURROGATE_HEADERS) + " |", "|" + "---|" * len(SURROGATE_HEADERS)]
    for strength, by_weeks in results["surrogate"].items():
        for weeks, figures in by_weeks.items():
            rank = figures["rank_correlation"]
            effects = "; ".join(
                f"{name}: {e['predicted']['mean']:+.2f} vs {e['true']['mean']:+.2f}"
                for name, e in figures["effects"].items()
            )
            per_seed = ", ".join(f"{r:.2f}" for r in rank["per_seed"])
            r2 = figures["r2_on_fitted_population"]["mean"]
            rows.append(f"| {strength} | {weeks} | {rank['mean']:.2f} ({per_seed}) | {r2:.3f} | {effects} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    main()
