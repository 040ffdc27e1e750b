"""Logged journeys: what the logging policy did to each user day after day, as trajectories for off-policy work.

A window of `horizon` decision days starting at `first_day` of a simulated log becomes, per user, the states
before each decision (`mtr.rl.features`), the day's candidates and which were eligible, the logging policy's
probabilities and its choice, the per-step rewards a platform observes (drawn activity of the next day, opens,
sends, opt-outs, drawn conversions of the day), and the probabilities target policies would have given at the
same states. Target policies are the simulator's (`mtr.sim.rollout`): each is asked at every logged day while
the logging policy decides, so its probabilities are those of the states the log reached.

Candidates are padded to the most any day offers; padded and ineligible ones have probability 0 everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mtr.errors import InputError
from mtr.rl.features import CHANNELS, decision_features, reachable, user_state, weighted_reward
from mtr.sim.config import WorldConfig
from mtr.sim.engine import DayView, Policy, SimulatedLog, run_days
from mtr.sim.history import NEVER
from mtr.sim.population import Population
from mtr.sim.rollout import drawn_activity, drawn_conversions, expected_active_days_between, expected_conversions


@dataclass(frozen=True)
class LoggedJourneys:
    """H logged decision days of U users, with C = 1 + the most send actions of any day (column 0: nothing).

    Attributes:
        states: [U, H + 1, S] float32 states before each decision and after the last.
        candidates: [H + 1, C, F] float32 features of each day's candidates (zeros where padded).
        eligible: [U, H + 1, C] bool, which candidates each user could get ("send nothing" always).
        logging: [U, H + 1, C] the logging policy's probabilities.
        chosen: [U, H] the logged candidate column.
        signals: reward signal name -> [U, H] what each step brought (`REWARD_SIGNALS`).
        targets: policy name -> [U, H + 1, C] its probabilities at the logged states.
        first_day: the log's day of step 0.
    """

    states: np.ndarray
    candidates: np.ndarray
    eligible: np.ndarray
    logging: np.ndarray
    chosen: np.ndarray
    signals: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    first_day: int

    @property
    def horizon(self) -> int:
        return self.chosen.shape[1]

    @property
    def n_users(self) -> int:
        return self.chosen.shape[0]

    def propensity(self) -> np.ndarray:
        """[U, H] the logging policy's probability of each logged choice."""
        return np.take_along_axis(self.logging[:, :-1], self.chosen[..., None], axis=2)[..., 0]

    def reward(self, weights: Mapping[str, float]) -> np.ndarray:
        """[U, H] the weighted sum of the named reward signals."""
        return weighted_reward(self.signals, weights)

    def policy(self, name: str) -> np.ndarray:
        """[U, H + 1, C] the probabilities of a target policy, or of the logging policy (`logging`)."""
        if name == "logging":
            return self.logging
        if name not in self.targets:
            raise InputError(f"policy '{name}' is not among the journeys' targets {['logging', *self.targets]}")
        return self.targets[name]


def collect_journeys(
    n_users: int,
    days: int,
    seed: int,
    world: WorldConfig,
    first_day: int,
    horizon: int,
    targets: Mapping[str, Policy] | None = None,
) -> tuple[SimulatedLog, LoggedJourneys]:
    """Run the logging policy on the world of `seed` (common random numbers, as `mtr.sim.rollout`) and cut the
    decision days [first_day, first_day + horizon] into journeys; `targets` are asked at every one of them."""
    if first_day < 0 or horizon < 1 or first_day + horizon >= days:
        raise InputError(
            f"journeys: days [{first_day}, {first_day + horizon}] and the activity of the day after need a run "
            f"of at least {first_day + horizon + 1} days, got days={days}"
        )
    window = range(first_day, first_day + horizon + 1)
    asked: dict[str, list[np.ndarray]] = {name: [] for name in targets or {}}
    decisions: list[DayView] = []

    def logging_and_asking(view: DayView) -> np.ndarray:
        if view.day in window:
            decisions.append(view)
            for name, policy in (targets or {}).items():
                asked[name].append(policy(view))
        return view.decision.probabilities

    log = run_days(np.random.default_rng(seed), n_users, days, world, policy=logging_and_asking, common_draws=seed)
    width = 1 + max(len(view.decision.message) for view in decisions)
    return log, LoggedJourneys(
        states=_states(log, seed, window),
        candidates=np.stack(
            [_padded(decision_features(log.catalog, v.decision, world.hours), width) for v in decisions]
        ),
        eligible=np.stack([_padded(_with_nothing(view.decision.eligible), width, axis=1) for view in decisions], 1),
        logging=np.stack([_padded(view.decision.probabilities, width, axis=1) for view in decisions], 1),
        chosen=_chosen_columns(log, decisions[:-1]),
        signals=_signals(log, seed, first_day, horizon),
        targets={name: np.stack([_padded(p, width, axis=1) for p in probs], 1) for name, probs in asked.items()},
        first_day=first_day,
    )


def unsubscribe_days(log: SimulatedLog) -> np.ndarray:
    """[U, 3] the day each user left each channel (NEVER if not)."""
    days = np.full((log.users.size, 3), NEVER, dtype=np.int64)
    user, day = np.nonzero(log.unsubscribed)
    np.minimum.at(days, (user, log.history.channel[user, day]), day)
    return days


def _states(log: SimulatedLog, seed: int, window: range) -> np.ndarray:
    active, left = drawn_activity(log, seed), unsubscribe_days(log)
    return np.stack([user_state(log.users, log.history.sent, log.engaged, active, left, day) for day in window], 1)


def _with_nothing(eligible: np.ndarray) -> np.ndarray:
    return np.concatenate([np.ones((len(eligible), 1), bool), eligible], axis=1)


def _padded(values: np.ndarray, width: int, axis: int = 0) -> np.ndarray:
    pad = [(0, 0)] * values.ndim
    pad[axis] = (0, width - values.shape[axis])
    return np.pad(values, pad)


def _chosen_columns(log: SimulatedLog, decisions: list[DayView]) -> np.ndarray:
    """[U, H] the column of each logged action among its day's candidates (0 for no send)."""
    h, chosen = log.history, np.zeros((log.users.size, len(decisions)), dtype=np.int64)
    for step, view in enumerate(decisions):
        d, day = view.decision, view.day
        sent = np.nonzero(h.sent[:, day])[0]
        match = (
            (d.message[None, :] == h.message[sent, day][:, None])
            & (d.channel[None, :] == h.channel[sent, day][:, None])
            & (d.hour[None, :] == h.hour[sent, day][:, None])
        )
        if not match.any(1).all():
            raise RuntimeError(f"journeys: day {day}: a logged send is not among the day's candidates")
        chosen[sent, step] = 1 + match.argmax(1)
    return chosen


def _signals(log: SimulatedLog, seed: int, first_day: int, horizon: int) -> dict[str, np.ndarray]:
    steps = slice(first_day, first_day + horizon)
    return {
        "active": drawn_activity(log, seed)[:, first_day + 1 : first_day + horizon + 1].astype(np.float64),
        "conversions": drawn_conversions(log, seed)[:, steps].astype(np.float64),
        "opens": log.engaged[:, steps].astype(np.float64),
        "sends": log.history.sent[:, steps].astype(np.float64),
        "unsubscribes": log.unsubscribed[:, steps].astype(np.float64),
    }


def switched_at(first_day: int, policy: Policy) -> Policy:
    """The logging policy before `first_day`, `policy` from it on: a policy change in the middle of a log."""

    def decide(view: DayView) -> np.ndarray:
        return policy(view) if view.day >= first_day else view.decision.probabilities

    return decide


def journey_truth(
    n_users: int, days: int, seed: int, world: WorldConfig, first_day: int, horizon: int, policy: Policy
) -> dict[str, np.ndarray]:
    """[U] per signal: what `policy`, deciding the days [first_day, first_day + horizon) of the world of `seed`
    after the logging policy, brings each user over them, on the same users and luck as `collect_journeys`:
    the truth's expected active days of the next days and expected conversions, the drawn opens, sends and
    opt-outs, and whether it is still reachable on each channel after the last day (`reachable_push`, ...)."""
    log = run_days(
        np.random.default_rng(seed), n_users, days, world, policy=switched_at(first_day, policy), common_draws=seed
    )
    steps = slice(first_day, first_day + horizon)
    return {
        "active": expected_active_days_between(log, first_day + 1, first_day + horizon + 1),
        "conversions": expected_conversions(log, first_day, first_day + horizon),
        "opens": log.engaged[:, steps].sum(1).astype(np.float64),
        "sends": log.history.sent[:, steps].sum(1).astype(np.float64),
        "unsubscribes": log.unsubscribed[:, steps].sum(1).astype(np.float64),
        **reachable_at_end(log.users, unsubscribe_days(log), first_day + horizon),
    }


def reachable_at_end(users: Population, unsubscribe_day: np.ndarray, day: int) -> dict[str, np.ndarray]:
    """`reachable_{channel}` -> [U] 1.0 where the user can still be reached on the channel at `day`."""
    reach = reachable(users, unsubscribe_day, day).astype(np.float64)
    return {f"reachable_{channel}": reach[:, index] for index, channel in enumerate(CHANNELS)}
