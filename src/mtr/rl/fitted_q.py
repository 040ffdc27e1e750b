"""Fitted-Q over logged journeys: evaluation of any policy's value over a horizon (FQE), and learning (FQI).

A finite horizon of H decision days, undiscounted, as the 8-week outcome is a plain sum: Q_t(s, a) is the
expected reward of the steps t .. H-1 after taking candidate a in state s at step t. One network scores every
candidate from the state's and the candidate's features (`mtr.rl.features`), so the action set can change from
day to day, and takes the steps still to go as an input, so that all steps share what they learn. It predicts
the mean reward per remaining step, times the steps to go, which keeps one output scale across the horizon.

Each iteration fits Q to the targets r_t + V(s_{t+1}) of the previous iteration's network, with
V(s) = sum_a pi(a | s) Q(s, a) for evaluation (Le, Voloshin and Yue 2019) or, for learning (fitted-Q iteration,
Ernst et al. 2005), the value of the learned policy's choice: the better of "send nothing" and the logging
policy's average send (`mtr.models.candidate_q.send_gate`; a maximum over every candidate chases the noisiest
values); after H iterations the targets of every step have propagated from the horizon's end. The
per-decision importance sampling and doubly robust estimators (Jiang and Li 2016)
use the same Q as their model: with H = 1 the doubly robust one is the contextual-bandit DR of
`mtr.ope.estimators`.

Why not a library: torchrl's and d3rlpy's Q-learners score a fixed set of discrete actions with one output per
action; here the candidates differ by day and user and are scored from their features, so the network and the
loop are ours (about a hundred lines of torch). torchrl 0.14 would also need tensordict < 0.15, below the
0.15.3 that torchrec brings; d3rlpy 2.8 pins gymnasium 1.0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mtr.errors import InputError
from mtr.models.candidate_q import CandidateQNetwork, send_gate
from mtr.ope.estimators import Z_95
from mtr.rl.trajectories import LoggedJourneys


@dataclass
class FittedQ:
    """A fitted Q over a horizon, for the journeys it was fitted on (or any of the same features)."""

    network: CandidateQNetwork
    horizon: int

    @torch.no_grad()
    def values(self, states: np.ndarray, candidates: np.ndarray, to_go: int) -> np.ndarray:
        """[U, C] Q of every candidate ([C, F], shared) for states [U, S] with `to_go` steps left."""
        state = torch.as_tensor(states, dtype=torch.float32)
        steps = torch.full((len(state),), float(to_go))
        return self.network(state, steps, torch.as_tensor(candidates)).double().numpy()

    def step_values(self, journeys: LoggedJourneys, step: int) -> np.ndarray:
        """[U, C] Q of every candidate of the journeys' step `step` (with H - step steps to go)."""
        return self.values(journeys.states[:, step], journeys.candidates[step], self.horizon - step)


@dataclass(frozen=True)
class HorizonEstimate:
    """A policy's value over the horizon, per user summed over steps: the mean and its 95% interval."""

    value: float
    standard_error: float
    per_user: np.ndarray

    @classmethod
    def of(cls, per_user: np.ndarray) -> HorizonEstimate:
        se = float(per_user.std(ddof=1) / np.sqrt(len(per_user))) if len(per_user) > 1 else float("nan")
        return cls(float(per_user.mean()), se, per_user)

    @property
    def interval(self) -> tuple[float, float]:
        return self.value - Z_95 * self.standard_error, self.value + Z_95 * self.standard_error


def fit_q(
    journeys: LoggedJourneys,
    reward: np.ndarray,
    policy: np.ndarray | None,
    pretraining_epochs: int = 6,
    representation_rounds: int = 2,
    exact_rounds: int | None = None,
    epochs: int = 2,
    batch_size: int = 1024,
    hidden: int = 64,
    learning_rate: float = 3e-3,
    ridge: float = 1e-3,
    seed: int = 0,
) -> FittedQ:
    """Fit Q over the journeys' horizon in three phases.

    1. The network learns its features from the logged returns to go (sum_{k >= t} r_k: the logging policy's
       own Q, exact targets at every step, no bootstrapping), `pretraining_epochs` passes.
    2. `representation_rounds` rounds of gradient steps on bootstrapped targets r_t + V(s_{t+1}) of the evaluated
       (or learned) policy, each followed by an exact least-squares refit of the last layer.
    3. The features are frozen, and `exact_rounds` rounds (default H + 1) refit only the last layer, exactly, to
       r_t + V(s_{t+1}). Gradient steps alone lag behind their targets a little in every round, and over an 8-week
       horizon the lags add up to a biased value; exact rounds do not lag, and after H of them every step's target
       reaches the horizon's end.

    Args:
        reward: [U, H] per-step rewards (`LoggedJourneys.reward`).
        policy: [U, H + 1, C] the evaluated policy's probabilities (FQE), or None to learn when to send (FQI:
            the next value is that of `send_gate`'s choice: send nothing, or the logging policy's average send).
        epochs: passes over the logged steps per representation round (warm-started from the last round).
        ridge: the least-squares refit's penalty on the last layer's weights of hidden features (not on the
            intercepts).
    """
    n_users, horizon = journeys.chosen.shape
    if reward.shape != (n_users, horizon):
        raise InputError(f"fitted Q: reward must be [{n_users}, {horizon}], got {list(reward.shape)}")
    if policy is not None and policy.shape != journeys.logging.shape:
        raise InputError(f"fitted Q: policy must be {list(journeys.logging.shape)}, got {list(policy.shape)}")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    network = CandidateQNetwork(journeys.states.shape[2], journeys.candidates.shape[2], horizon, hidden)
    fitted = FittedQ(network, horizon)
    optimiser = torch.optim.Adam(network.parameters(), lr=learning_rate)
    step = np.tile(np.arange(horizon), n_users)
    state = torch.as_tensor(journeys.states[:, :horizon].reshape(n_users * horizon, -1))
    to_go = torch.as_tensor(horizon - step, dtype=torch.float32)
    chosen = torch.as_tensor(journeys.candidates[step, journeys.chosen.reshape(-1)])[:, None, :]
    rewards = reward.reshape(-1)

    def descend(target: np.ndarray, passes: int) -> None:
        target_tensor = torch.as_tensor(target, dtype=torch.float32)
        for _ in range(passes):
            for rows in torch.randperm(len(target), generator=generator).split(batch_size):
                predicted = network(state[rows], to_go[rows], chosen[rows])[:, 0]
                # Per remaining step, so that long and short horizons weigh alike.
                loss = torch.mean(((predicted - target_tensor[rows]) / to_go[rows]) ** 2)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()

    returns_to_go = reward[:, ::-1].cumsum(axis=1)[:, ::-1].reshape(-1)
    descend(returns_to_go, pretraining_epochs)
    last_layer = _LastLayer(network, state, to_go, chosen, ridge)
    last_layer.refit(returns_to_go)
    for _ in range(representation_rounds):
        target = rewards + _next_values(fitted, journeys, policy).reshape(-1)
        descend(target, epochs)
        last_layer = _LastLayer(network, state, to_go, chosen, ridge)
        last_layer.refit(target)
    rounds = horizon + 1 if exact_rounds is None else exact_rounds
    if policy is not None:  # the policy's expected next features are fixed once the features are: cache them
        following = _expected_next_features(fitted, journeys, policy)
        for _ in range(rounds):
            last_layer.refit(rewards + following @ last_layer.coefficients())
    else:
        for _ in range(rounds):
            last_layer.refit(rewards + _next_values(fitted, journeys, None).reshape(-1))
    return fitted


class _LastLayer:
    """The exact least-squares refit of the last layer on frozen features: Q / steps-to-go = x . beta."""

    def __init__(
        self, network: CandidateQNetwork, state: torch.Tensor, to_go: torch.Tensor, chosen: torch.Tensor, ridge: float
    ) -> None:
        with torch.no_grad():
            features = network.features(state, to_go, chosen)[:, 0].double().numpy()
        self.network, self.to_go = network, to_go.double().numpy()
        # No bias column: the one-hot steps to go are the intercepts (one per step, not shrunk).
        penalty = ridge * len(features) * np.eye(features.shape[1])
        penalty[-network.horizon :, -network.horizon :] = 0.0
        self.solve = np.linalg.solve(features.T @ features + penalty, features.T)

    def refit(self, target: np.ndarray) -> None:
        solution = self.solve @ (target / self.to_go)
        with torch.no_grad():
            self.network.output.weight.copy_(torch.as_tensor(solution[None, :], dtype=torch.float32))
            self.network.output.bias.zero_()

    def coefficients(self) -> np.ndarray:
        """[d] the last layer's weights (its bias is 0)."""
        return self.network.output.weight[0].detach().double().numpy()


@torch.no_grad()
def _expected_next_features(fitted: FittedQ, journeys: LoggedJourneys, policy: np.ndarray) -> np.ndarray:
    """[U * H, d] steps-to-go * sum_c pi(c | s_{t+1}) features(s_{t+1}, c), 0 after the last step: V(s_{t+1}) is
    this times the last layer's weights."""
    network, horizon = fitted.network, fitted.horizon
    n_users = journeys.n_users
    expected = np.zeros((n_users, horizon, network.output.in_features))
    for step in range(horizon - 1):
        to_go = horizon - step - 1
        state = torch.as_tensor(journeys.states[:, step + 1])
        candidates = torch.as_tensor(journeys.candidates[step + 1])
        features = network.features(state, torch.full((n_users,), float(to_go)), candidates).double()
        mean = torch.einsum("uc,ucd->ud", torch.as_tensor(policy[:, step + 1]), features).numpy()
        expected[:, step] = mean * to_go
    return expected.reshape(n_users * horizon, -1)


def _next_values(fitted: FittedQ, journeys: LoggedJourneys, policy: np.ndarray | None) -> np.ndarray:
    """[U, H] V(s_{t+1}) under the current network (0 after the last step)."""
    n_users, horizon = journeys.chosen.shape
    values = np.zeros((n_users, horizon))
    for step in range(horizon - 1):
        q = fitted.step_values(journeys, step + 1)
        following = policy[:, step + 1] if policy is not None else None
        values[:, step] = state_values(q, journeys.eligible[:, step + 1], journeys.logging[:, step + 1], following)
    return values


def gated_probabilities(q: np.ndarray, eligible: np.ndarray, logging: np.ndarray) -> np.ndarray:
    """[U, C] the learned policy's probabilities (`send_gate`) from candidate values [U, C]."""
    gate = send_gate(torch.as_tensor(q), torch.as_tensor(eligible), torch.as_tensor(logging, dtype=torch.float64))
    return gate.numpy()


def state_values(
    q: np.ndarray, eligible: np.ndarray, logging: np.ndarray, probabilities: np.ndarray | None
) -> np.ndarray:
    """[U] V(s) from [U, C] candidate values: the policy's expectation, or (None) the learned policy's."""
    if probabilities is None:
        probabilities = gated_probabilities(q, eligible, logging)
    return (probabilities * q).sum(1)


def fitted_q_evaluation(journeys: LoggedJourneys, reward: np.ndarray, policy: str, **fit: Any) -> HorizonEstimate:
    """FQE: the value over the horizon of the journeys' policy `policy` (a target's name, or "logging"), from the
    logging policy's steps; the interval is the spread of the users' first states (the Q fit's own error is not
    in it)."""
    return off_policy_values(journeys, reward, policy, **fit)["fqe"]


def off_policy_values(
    journeys: LoggedJourneys, reward: np.ndarray, policy: str, **fit: Any
) -> dict[str, HorizonEstimate]:
    """FQE, per-decision IS and per-decision DR of one policy's value over the horizon, with one fitted Q."""
    probabilities = journeys.policy(policy)
    fitted = fit_q(journeys, reward, probabilities, **fit)
    q = fitted.step_values(journeys, 0)
    first = state_values(q, journeys.eligible[:, 0], journeys.logging[:, 0], probabilities[:, 0])
    return {"fqe": HorizonEstimate.of(first), **per_decision_estimates(journeys, reward, policy, fitted)}


def per_decision_estimates(
    journeys: LoggedJourneys, reward: np.ndarray, policy: str, fitted: FittedQ | None
) -> dict[str, HorizonEstimate]:
    """Per-decision importance sampling, and with `fitted` the per-decision doubly robust estimate:

        PDIS = mean_u sum_t w_t r_t,   PDDR = mean_u sum_t [w_t (r_t - Q_t(s_t, a_t)) + w_{t-1} V_t(s_t)],

    with w_t = prod_{k <= t} pi(a_k | s_k) / mu(a_k | s_k) and w_{-1} = 1; intervals from the spread over users.
    """
    probabilities = journeys.policy(policy)
    horizon = journeys.horizon
    target = np.take_along_axis(probabilities[:, :horizon], journeys.chosen[..., None], axis=2)[..., 0]
    weights = np.cumprod(target / journeys.propensity(), axis=1)
    estimates = {"pdis": HorizonEstimate.of((weights * reward).sum(1))}
    if fitted is not None:
        previous = np.concatenate([np.ones((journeys.n_users, 1)), weights[:, :-1]], axis=1)
        terms = np.zeros_like(reward)
        for step in range(horizon):
            q = fitted.step_values(journeys, step)
            taken = np.take_along_axis(q, journeys.chosen[:, step, None], axis=1)[:, 0]
            value = state_values(q, journeys.eligible[:, step], journeys.logging[:, step], probabilities[:, step])
            terms[:, step] = weights[:, step] * (reward[:, step] - taken) + previous[:, step] * value
        estimates["pddr"] = HorizonEstimate.of(terms.sum(1))
    return estimates
