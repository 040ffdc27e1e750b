"""A gymnasium vector environment over the simulator: one sub-environment per user, one step per day.

Every user of one simulated world (`mtr.sim.engine.draw_world`) is a sub-environment; a step takes one decision
per user (send nothing, or one of the day's send actions) and runs the simulator's day (`DayLoop`), so all users
share the catalog and the day and all episodes end together after `days` days. The world's draws are common random
numbers (`run_days(common_draws=...)`): the first episode after `reset(seed=s)` (or after construction, with
`seed`) draws opens and opt-outs as `run_days(default_rng(s), ..., common_draws=s)` does, and activity as
`drawn_activity(log, s)`, so replaying that run's choices reproduces its log when `s` is the constructor's seed
(the users and catalog are the constructor's whatever `s`). Later episodes restart the same users and catalog
with fresh draws.

Autoreset follows gymnasium's next-step mode: the step of the last day returns `truncated` True for every user
(the horizon ends the episode, not the user), its observation is the state after the last day with only "send
nothing" allowed, and the next `step` ignores its actions and returns the first observation of the next episode
with reward 0. `reset` restarts every user (a partial `reset_mask` is refused).

Rewards weigh named per-day signals of each user (`REWARD_SIGNALS`): "active", the truth's probability that the
user is active on the next day given the sends so far (the 28-day effects and the weariness of every send);
"conversions", the expected conversions of the day (organic plus the lift of the latest send while under 7 days
old); "opens" and "unsubscribes", the day's drawn opens and opt-outs; "sends", 1 for a send.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from mtr.errors import InputError
from mtr.rl.features import (
    action_names,
    check_reward_weights,
    decision_features,
    state_names,
    user_state,
    weighted_reward,
)
from mtr.sim.config import WorldConfig
from mtr.sim.engine import DayLoop, DayOutcome, draw_world
from mtr.sim.outcomes import (
    activity_base,
    effect_in_window,
    lift_overlap,
    organic_rate,
    sigmoid,
    weariness_after,
    weariness_logit,
)
from mtr.sim.rollout import ACTIVITY_STREAM


def episode_draws(seed: int, episode: int) -> int:
    """The common-random-number seed of an episode: `seed` itself for the first, so that it matches `run_days`."""
    return seed if episode == 0 else int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


class MessagingEnv(VectorEnv):
    """Each user of a simulated world is a sub-environment; a step is one day's decisions for all of them.

    Args:
        n_users: users of the world (`num_envs`).
        days: days of an episode.
        seed: the world's seed (its users and catalog, as `run_days(np.random.default_rng(seed), ...)` draws them)
            and the first episode's draws.
        world: the world's config (e.g. its `long_term_strength`).
        reward_weights: weight of each named per-day signal (`REWARD_SIGNALS`); by default "active" alone.

    Observations (per user): "state" [n_state] (`mtr.rl.features.user_state`), "candidates"
    [max_actions + 1, n_action_features] (`action_features` of the day's actions, zero-padded, row 0 = send
    nothing) and "mask" [max_actions + 1] (1 on send nothing and on the user's eligible sends). Actions: an index
    into the candidates; an index where the mask is 0 raises `InputError`.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        n_users: int,
        days: int,
        seed: int,
        world: WorldConfig | None = None,
        reward_weights: Mapping[str, float] | None = None,
    ) -> None:
        if n_users < 1 or days < 1:
            raise InputError(f"MessagingEnv: n_users and days must be >= 1, got {n_users} and {days}")
        self.world = WorldConfig() if world is None else world
        self.reward_weights = check_reward_weights({"active": 1.0} if reward_weights is None else reward_weights)
        self.num_envs, self.days, self.world_seed = n_users, days, seed
        self.start_us, self.users, self.catalog = draw_world(np.random.default_rng(seed), n_users, days, self.world)
        live_actions = (self.catalog.live[:, :, None] & self.catalog.allowed[None]).sum((1, 2))  # [days]
        self.max_actions = int(live_actions.max()) * len(self.world.hours)
        n_state, n_features = len(state_names()), len(action_names(self.world.hours))
        self.single_observation_space = spaces.Dict(
            {
                "state": spaces.Box(0.0, np.inf, (n_state,), np.float32),
                "candidates": spaces.Box(0.0, 1.0, (self.max_actions + 1, n_features), np.float32),
                "mask": spaces.MultiBinary(self.max_actions + 1),
            }
        )
        self.observation_space = batch_space(self.single_observation_space, n_users)
        self.single_action_space = spaces.Discrete(self.max_actions + 1)
        self.action_space = batch_space(self.single_action_space, n_users)
        self.organic = organic_rate(self.world, self.users)
        self.activity_base = activity_base(self.world, self.users)
        self.draws_seed, self.episode = seed, 0
        self.loop: DayLoop | None = None
        self.needs_reset = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode of the same world for every user: with `seed`, the first episode of that seed's draws
        (as `run_days(common_draws=seed)`); without, the next episode's draws."""
        mask = (options or {}).get("reset_mask")
        if mask is not None and not np.all(mask):
            raise InputError("reset: options['reset_mask'] must be all True, the users' episodes end together")
        super().reset(seed=seed)
        if seed is not None:
            self.draws_seed, self.episode = seed, 0
        elif self.loop is not None:
            self.episode += 1
        self.start_episode()
        return self.observe(), self.info()

    def step(
        self, actions: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Send each user the candidate `actions` [U] picks (0 = nothing), run the day and return the next day's
        observation; after the last day, start the next episode instead (next-step autoreset)."""
        if self.loop is None:
            raise InputError("MessagingEnv.step: call reset() first")
        if self.needs_reset:
            self.episode += 1
            self.start_episode()
            no = np.zeros(self.num_envs, bool)
            return self.observe(), np.zeros(self.num_envs), no, no.copy(), self.info()
        choice = self.check_actions(actions)
        outcome = self.loop.step(self.decision, choice)
        signals = self.signals(outcome)
        reward = weighted_reward(signals, self.reward_weights)
        if self.loop.day < self.days:
            self.decision = self.loop.decide()
        self.needs_reset = self.loop.day == self.days
        info = self.info()
        info["reward"], info["_reward"] = signals, np.ones(self.num_envs, bool)
        truncated = np.full(self.num_envs, self.needs_reset)
        return self.observe(), reward, np.zeros(self.num_envs, bool), truncated, info

    def common_actions(self, probabilities: np.ndarray | None = None) -> np.ndarray:
        """[U] candidates drawn with the episode's common random numbers from `probabilities` [U, 1 + max_actions]
        (default: the logging policy's, and stepping with them replays its run, `run_days(common_draws=...)`), so
        that two stochastic policies stepped in two episodes of the same draws meet the same luck."""
        if self.loop is None or self.needs_reset:
            raise InputError("MessagingEnv.common_actions: no decision is pending; call reset() first")
        decision = self.decision
        if probabilities is not None:
            width = decision.probabilities.shape[1]
            expected = (self.num_envs, self.max_actions + 1)
            if probabilities.shape != expected or np.any(probabilities[:, width:] > 0):
                raise InputError(f"probabilities: expected {list(expected)}, 0 beyond the day's {width} candidates")
            decision = replace(decision, probabilities=np.asarray(probabilities[:, :width], dtype=np.float64))
        return self.loop.common_choice(decision)

    def start_episode(self) -> None:
        """A fresh day loop on the same users and catalog, and the running truth of activity and conversions."""
        draws = episode_draws(self.draws_seed, self.episode)
        n_users = self.num_envs
        self.loop = DayLoop(self.world, self.users, self.catalog, self.days, common_draws=draws)
        self.activity_uniforms = np.random.default_rng([draws, ACTIVITY_STREAM]).random((n_users, self.days))
        self.effect_totals = np.zeros((n_users, self.days + 1))  # [:, k] effects of the sends of days < k
        self.weariness = np.zeros(n_users)
        self.offsets = np.zeros((n_users, self.days + 1))  # activity-logit offset of days 0 .. days
        self.active = np.zeros((n_users, self.days), bool)
        self.active[:, 0] = self.activity_uniforms[:, 0] < sigmoid(self.activity_base + self.offsets[:, 0])
        self.latest_time, self.latest_lift = np.full(n_users, -np.inf), np.zeros(n_users)
        self.decision = self.loop.decide()
        self.needs_reset = False

    def check_actions(self, actions: np.ndarray) -> np.ndarray:
        """[U] int64 actions, each one the user's mask allows."""
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,) or not np.issubdtype(actions.dtype, np.integer):
            raise InputError(
                f"actions: expected [{self.num_envs}] integers in 0..{self.max_actions}, "
                f"got shape {actions.shape} of {actions.dtype}"
            )
        mask = self.mask()
        inside = (actions >= 0) & (actions <= self.max_actions)
        allowed = inside & mask[np.arange(self.num_envs), np.where(inside, actions, 0)].astype(bool)
        if not allowed.all():
            user = int(np.argmin(allowed))
            raise InputError(
                f"actions: user {user} chose action {int(actions[user])} on day {self.loop.day}, "
                "which its mask does not allow (0 = send nothing is always allowed)"
            )
        return actions.astype(np.int64)

    def signals(self, outcome: DayOutcome) -> dict[str, np.ndarray]:
        """[U] each user's per-day signals of the day just run, updating the running truth of activity (the
        next day's logit) and conversions (the latest send)."""
        day, sends, n_users = outcome.day, outcome.sends, self.num_envs
        sent, opens, unsubscribes = np.zeros(n_users), np.zeros(n_users), np.zeros(n_users)
        sent[sends.user], opens[sends.user], unsubscribes[sends.user] = 1.0, outcome.opened, outcome.left
        effect = np.zeros(n_users)
        effect[sends.user] = outcome.outcomes.activity_effect
        self.effect_totals[:, day + 1] = self.effect_totals[:, day] + effect
        self.weariness = weariness_after(self.weariness, sent)
        self.offsets[:, day + 1] = effect_in_window(self.effect_totals, day + 1) + weariness_logit(
            self.world, self.weariness
        )
        p_active = sigmoid(self.activity_base + self.offsets[:, day + 1])
        if day + 1 < self.days:
            self.active[:, day + 1] = self.activity_uniforms[:, day + 1] < p_active
        send_time, lift = np.full(n_users, np.inf), np.zeros(n_users)
        send_time[sends.user], lift[sends.user] = day + sends.hour / 24.0, outcome.outcomes.lift
        carried = self.latest_lift * lift_overlap(self.latest_time, send_time, day, day + 1)
        own = np.where(sent > 0, lift * lift_overlap(send_time, np.inf, day, day + 1), 0.0)
        self.latest_time = np.where(sent > 0, send_time, self.latest_time)
        self.latest_lift = np.where(sent > 0, lift, self.latest_lift)
        return {
            "active": p_active,
            "opens": opens,
            "conversions": self.organic + carried + own,
            "sends": sent,
            "unsubscribes": unsubscribes,
        }

    def mask(self) -> np.ndarray:
        """[U, max_actions + 1] int8: send nothing always, the day's eligible sends (none after the last day)."""
        mask = np.zeros((self.num_envs, self.max_actions + 1), np.int8)
        mask[:, 0] = 1
        if self.loop.day < self.days:
            eligible = self.decision.eligible
            mask[:, 1 : 1 + eligible.shape[1]] = eligible
        return mask

    def observe(self) -> dict[str, np.ndarray]:
        """The batched observation of the current day (after the last day: the final state, nothing to send)."""
        loop = self.loop
        n_features = self.single_observation_space["candidates"].shape[1]
        candidates = np.zeros((self.max_actions + 1, n_features), np.float32)
        if loop.day < self.days:
            rows = decision_features(self.catalog, self.decision, self.world.hours)
            candidates[: len(rows)] = rows
        state = user_state(self.users, loop.history.sent, loop.engaged, self.active, loop.unsubscribe_day, loop.day)
        return {
            "state": state,
            "candidates": np.broadcast_to(candidates, (self.num_envs, *candidates.shape)).copy(),
            "mask": self.mask(),
        }

    def info(self) -> dict[str, Any]:
        """The day of the observation and the logging policy's probabilities over its candidates [U, 1 + max]."""
        probabilities = np.zeros((self.num_envs, self.max_actions + 1))
        if self.loop.day < self.days:
            probabilities[:, : self.decision.probabilities.shape[1]] = self.decision.probabilities
        else:
            probabilities[:, 0] = 1.0
        everyone = np.ones(self.num_envs, bool)
        return {
            "day": np.full(self.num_envs, self.loop.day),
            "_day": everyone,
            "logging_probabilities": probabilities,
            "_logging_probabilities": everyone.copy(),
        }
