"""A simulated online A/B test: users randomised between the logging policy and a variant policy,
both run forward in the simulator, then measured per user and analysed like any experiment.

Next to the measured effects come two one-step figures for the same per-opportunity rates, both read
from the control arm's log only: the off-policy estimate (self-normalised importance sampling with the
logged propensities) and the oracle's expectation (each eligible action's true rates weighted by each
policy's probabilities). Both hold the logged history fixed, so they leave out the dynamic effects an
online test includes (fatigue, frequency caps, unsubscribed channels): the gap between them and the
measured effect is that feedback.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from mtr.abtest.analysis import AnalysisResult
from mtr.abtest.spec import DecompositionSpec, MetricSpec
from mtr.errors import InputError
from mtr.sim.config import WorldConfig
from mtr.sim.draws import activity_frame, conversion_frame
from mtr.sim.engine import SimulatedLog, run_days
from mtr.sim.history import NEVER
from mtr.sim.logging_policy import Decision, decide
from mtr.sim.population import DAY_US

CONTROL, VARIANT = "logging", "variant"
RETENTION_WINDOW_DAYS = 7  # retained = active on any of the log's last 7 days


# The simulated test's metrics: per opportunity (one per user and day), with pre-period CUPED covariates.
SIMULATED_METRICS = [
    MetricSpec("engagements_per_opportunity", numerator="engagements", denominator="opportunities",
               covariate="pre_active_days"),
    MetricSpec("conversions_per_opportunity", numerator="conversions", denominator="opportunities",
               covariate="pre_conversions"),
    MetricSpec("retained", column="retained", covariate="pre_active_days"),
    MetricSpec("sends_per_opportunity", numerator="sends", denominator="opportunities", role="secondary"),
    MetricSpec("engagements_per_send", numerator="engagements", denominator="sends", role="secondary"),
    MetricSpec("conversions_per_engagement", numerator="conversions", denominator="engagements", role="secondary"),
    MetricSpec("unsubscribes_per_opportunity", numerator="unsubscribes", denominator="opportunities",
               role="guardrail", better="lower", margin=0.1),
]  # fmt: skip
SIMULATED_DECOMPOSITIONS = [
    DecompositionSpec(
        "conversions per opportunity",
        ["sends_per_opportunity", "engagements_per_send", "conversions_per_engagement"],
    )
]


def run_experiment(
    users: int, days: int, seed: int, world: WorldConfig, variant: WorldConfig, treatment_share: float = 0.5
) -> tuple[SimulatedLog, np.ndarray]:
    """Randomise users and run both policies forward in one world.

    Returns:
        The log and `in_variant` [users] bool. The assignment has its own random stream, so the world
        (users, catalog) is the one a plain `mtr simulate` with this seed would draw.
    """
    if not 0 < treatment_share < 1:
        raise InputError(f"treatment_share must be in (0, 1), got {treatment_share}")
    in_variant = np.random.default_rng([seed, 1]).random(users) < treatment_share
    log = run_days(np.random.default_rng(seed), users, days, world, variant, in_variant)
    return log, in_variant


def unit_table(log: SimulatedLog, in_variant: np.ndarray, seed: int) -> pl.DataFrame:
    """One row per user: arm, outcomes over the test and pre-period covariates.

    Conversions count purchases during the opportunity days; `retained` is activity on any of the
    log's last 7 days; `pre_active_days` and `pre_conversions` come from the 28 days before the test.
    """
    rng = np.random.default_rng([seed, 2])
    n_users, days = log.history.hour.shape
    index = pl.DataFrame({"user_id": log.users.user_id, "arm": np.where(in_variant, VARIANT, CONTROL)})
    day_of = (pl.col("ts").dt.epoch("us") - log.start_us) // DAY_US
    conversions = (
        conversion_frame(log, rng)
        .group_by("user_id")
        .agg(
            pre_conversions=(day_of < 0).sum(),
            conversions=((day_of >= 0) & (day_of < days)).sum(),
        )
    )
    last_day = (log.log_end_us - log.start_us) // DAY_US
    active_day = (pl.col("date").cast(pl.Int64) * DAY_US - log.start_us) // DAY_US
    activity = (
        activity_frame(log, rng)
        .group_by("user_id")
        .agg(
            pre_active_days=(active_day < 0).sum(),
            retained=(active_day >= last_day - RETENTION_WINDOW_DAYS).any().cast(pl.Int64),
        )
    )
    outcomes = pl.DataFrame(
        {
            "user_id": log.users.user_id,
            "opportunities": np.full(n_users, days),
            "sends": log.history.sent.sum(1),
            "engagements": log.engaged.sum(1),
            "unsubscribes": log.unsubscribed.sum(1),
        }
    )
    return (
        index.join(outcomes, on="user_id")
        .join(conversions, on="user_id", how="left")
        .join(activity, on="user_id", how="left")
        .fill_null(0)
        .with_columns(pl.col(pl.UInt32).cast(pl.Int64))
    )


@dataclass(frozen=True)
class OneStep:
    """Per-opportunity rates of both policies on the control arm's logged opportunities.

    Attributes:
        quantity: "sends", "engagements" or "unsubscribes" (per opportunity).
        oracle_logging: the oracle's expected rate under the logging policy.
        oracle_variant: the oracle's expected rate under the variant.
        off_policy_logging: the plain mean of the control arm's log.
        off_policy_variant: the self-normalised importance-sampling estimate for the variant.
    """

    quantity: str
    oracle_logging: float
    oracle_variant: float
    off_policy_logging: float
    off_policy_variant: float

    @property
    def oracle_difference(self) -> float:
        return self.oracle_variant - self.oracle_logging

    @property
    def off_policy_difference(self) -> float:
        return self.off_policy_variant - self.off_policy_logging


def one_step_estimates(log: SimulatedLog, in_variant: np.ndarray, variant: WorldConfig) -> list[OneStep]:
    """Oracle and off-policy per-opportunity rates of both policies, from the control arm's log."""
    rows = np.nonzero(~in_variant)[0]
    n_users, days = log.history.hour.shape
    unsubscribe_day = _unsubscribe_days(log)
    sums = np.zeros((2, 3))  # [policy, quantity] oracle sums
    weighted, weights = np.zeros(3), 0.0
    for day in range(days):
        logging = decide(log.world, log.users, log.catalog, log.history, unsubscribe_day, rows, day)
        tested = decide(variant, log.users, log.catalog, log.history, unsubscribe_day, rows, day)
        user, action = np.nonzero(logging.eligible | tested.eligible)
        outcomes = log.truth.send_outcomes(
            rows[user], np.full(len(user), day), logging.message[action], logging.channel[action], logging.hour[action]
        )
        for p, decision in enumerate((logging, tested)):
            probability = decision.probabilities[user, action + 1]
            sums[p] += [probability.sum(), probability @ outcomes.p_engagement, probability @ outcomes.p_unsubscribe]
        column = _logged_column(log, logging, rows, day)
        ratio = tested.probabilities[np.arange(len(rows)), column] / log.propensity[rows, day]
        observed = np.stack([log.history.sent[rows, day], log.engaged[rows, day], log.unsubscribed[rows, day]], 1)
        weighted += ratio @ observed
        weights += float(ratio.sum())
    opportunities = len(rows) * days
    logged = np.array([log.history.sent[rows].sum(), log.engaged[rows].sum(), log.unsubscribed[rows].sum()])
    return [
        OneStep(name, sums[0, i] / opportunities, sums[1, i] / opportunities, logged[i] / opportunities,
                weighted[i] / weights)
        for i, name in enumerate(("sends", "engagements", "unsubscribes"))
    ]  # fmt: skip


def _logged_column(log: SimulatedLog, decision: Decision, rows: np.ndarray, day: int) -> np.ndarray:
    """[N] column of each user's logged action in the decision's [none, actions] probabilities."""
    h = log.history
    key = (decision.message.astype(np.int64) * 3 + decision.channel) * 24 + decision.hour  # ascending
    logged = (h.message[rows, day].astype(np.int64) * 3 + h.channel[rows, day]) * 24 + h.hour[rows, day]
    return np.where(h.sent[rows, day], np.searchsorted(key, logged) + 1, 0)


def _unsubscribe_days(log: SimulatedLog) -> np.ndarray:
    """[U, 3] the day each user left each channel (NEVER if not), rebuilt from the log."""
    n_users, days = log.history.hour.shape
    left = np.full((n_users, 3), NEVER, dtype=np.int64)
    user, day = np.nonzero(log.unsubscribed)
    # An unsubscribed channel gets no more sends, so each (user, channel) appears at most once.
    left[user, log.history.channel[user, day]] = day
    return left


def one_step_section(steps: list[OneStep], result: AnalysisResult) -> tuple[dict[str, Any], str]:
    """The one-step figures next to the measured effects, for results.json and README.md."""
    measured = {r.metric.name: r.effect for r in result.metrics}
    rows, lines = (
        [],
        [
            "## Measured effects against the one-step oracle and off-policy estimate",
            "",
            "Per opportunity (one per user and day). Oracle and off-policy (self-normalised importance sampling) "
            "figures come from the control arm's log with its history held fixed; the measured difference is the "
            "online test's, with fatigue and frequency caps feeding back.",
            "",
            "| quantity | oracle, logging | oracle, variant | oracle difference | off-policy difference | "
            "measured difference [CI] |",
            "|---|---|---|---|---|---|",
        ],
    )
    for step in steps:
        effect = measured[f"{step.quantity}_per_opportunity"]
        rows.append(
            {
                **dataclasses.asdict(step),
                "oracle_difference": step.oracle_difference,
                "off_policy_difference": step.off_policy_difference,
                "measured_difference": effect.abs_diff,
                "measured_ci": list(effect.abs_ci),
            }
        )
        lines.append(
            f"| {step.quantity} | {step.oracle_logging:.4g} | {step.oracle_variant:.4g} | "
            f"{step.oracle_difference:+.4g} | {step.off_policy_difference:+.4g} | "
            f"{effect.abs_diff:+.4g} [{effect.abs_ci[0]:+.4g}, {effect.abs_ci[1]:+.4g}] |"
        )
    return {"one_step": rows}, "\n".join(lines) + "\n"
