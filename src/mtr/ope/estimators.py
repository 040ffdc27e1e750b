"""Off-policy evaluation: what a target policy would achieve, estimated from logs with propensities.

For every logged opportunity i (one group of candidates) with logged action a_i, logging propensity
mu_i = mu(a_i | x_i), reward r_ik for reward k and the target policy's probability pi_i = pi(a_i | x_i),
the importance weight is w_i = pi_i / mu_i. Every estimator here is a weighted mean over the rows where
reward k is observed (`Estimator`), registered by name in `ESTIMATORS`:

    IPS    V = sum_i w_i r_ik / n
    SNIPS  V = sum_i w_i r_ik / sum_i w_i
    DR     V = sum_i [ sum_a pi(a | x_i) rhat_k(x_i, a) + w_i (r_ik - rhat_k(x_i, a_i)) ] / n

with rhat the reward model (the multi-task model's predictions: the direct method). Variants transform the
importance weights with g (`Estimator.transform`) at the scale s = sqrt(n), the truncation level of
Ionides (2008) with the mean weight replaced by its expectation E_mu[w] = 1, so no hyperparameter is fitted:

    DR-clip    g(w) = min(w, s)                        clipped weights
    Switch-DR  g(w) = w 1[w <= s]                      the direct method alone where w > s (Wang et al. 2017)
    DRos       g(w) = lambda w / (w^2 + lambda), lambda = s^2 = n   optimistic shrinkage (Su et al. 2020)

The estimate of a binary reward (`LoggedFeedback.binary`: 0/1 labels, send volume) is clipped to [0, 1],
its interval too: a rate below 0 (DR's residuals can push a rare reward there) is never reported, and a
budget of 0 is never "met" by a negative estimate. Standard errors come
from each row's influence value a_i (y_i - V) / mean(a) of the weighted mean (the delta method for SNIPS's
ratio; plain centring for a mean), summed per user before squaring (a user's daily decisions have
overlapping outcome windows, so they are one cluster, not independent rows), 95% intervals by the normal
approximation, and the effective sample size is (sum w)^2 / sum w^2. Adding an estimator is one
`register(Estimator(...))`: `evaluate` and the Pareto study's vectorised evaluator (`mtr.ope.evaluator`)
both run every registered estimator's terms.

Missing labels: a reward whose label is missing for a row (an immature window, a task without a label
on that channel) is estimated on the rows that have it. The estimate is then the policy's value on
the opportunities whose label exists, which equals the value on all opportunities when labels are
missing independently of the action (true for maturity, which depends on time only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mtr.errors import InputError
from mtr.ope.logged_feedback import LoggedFeedback
from mtr.ope.policy_rows import PolicyRows
from mtr.scoring.policy import PolicyDecision

Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Estimator:
    """One estimator: a weighted mean V = sum_i a_i y_i / sum_i a_i over the observed rows of a reward, with

        IPS-like:  a_i = 1,        y_i = g(w_i) r_i
        self-normalised:  a_i = g(w_i),  y_i = r_i
        doubly robust:  a_i = 1,   y_i = dm_i + g(w_i) (r_i - rhat_i)

    where g transforms importance weights (identity, clipping, shrinkage) and dm_i = sum_a pi(a | x_i) rhat(x_i, a).
    Each row's influence value is a_i (y_i - V) / mean(a), from which the standard error follows.

    Args:
        name: the name results and configs use (`estimator: dr`).
        doubly_robust: add the direct method's term and weight the residuals (needs the reward model).
        self_normalised: weight rows by g(w) (the sum of the weights replaces the row count); not with
            doubly_robust.
        transform: g, elementwise on importance weights; it must map 0 to 0 (rows the policy never takes
            contribute nothing but their direct term). None: the identity.
        sqrt_n_scaled: apply the transform in units of s = sqrt(n) (n: the reward's observed rows),
            g(w) = s * transform(w / s), so that one dimensionless transform sets its threshold by the rule
            of the module docstring at every data size.
    """

    name: str
    doubly_robust: bool = False
    self_normalised: bool = False
    transform: Callable[[np.ndarray], np.ndarray] | None = None
    sqrt_n_scaled: bool = False

    def __post_init__(self) -> None:
        if self.doubly_robust and self.self_normalised:
            raise InputError(f"estimator '{self.name}': a weighted mean is either self-normalised or doubly robust")
        # The vectorised evaluator sums only the rows a deterministic policy takes: g(0) must be 0 elsewhere.
        if self.transform is not None and np.any(self.transform(np.zeros(2)) != 0):
            raise InputError(f"estimator '{self.name}': its weight transform must map 0 to 0")

    def applies(self, has_model: bool) -> bool:
        """Whether the estimator can run: doubly robust ones need the reward model's predictions."""
        return has_model or not self.doubly_robust

    def terms(self, weight: Any, rewards: Any, residual: Any, direct: Any, observed: Any, n: Any) -> tuple[Any, Any]:
        """Per-row weights a and values y of the weighted mean, elementwise in any layout (a = 0 unobserved);
        n (observed rows per reward) broadcasts against the weights."""
        g = self.transformed(weight, n)
        if self.self_normalised:
            return g, rewards
        return observed, (direct + g * residual) if self.doubly_robust else g * rewards

    def transformed(self, weight: Any, n: Any) -> Any:
        """g(w): the weights as the estimator uses them."""
        if self.transform is None:
            return weight
        if not self.sqrt_n_scaled:
            return self.transform(weight)
        scale = np.sqrt(np.maximum(n, 1))
        return scale * self.transform(weight / scale)

    def estimate(self, rows: PolicyRows) -> tuple[np.ndarray, np.ndarray]:
        """[K] values (binary rewards' within [0, 1]) and [K] standard errors for a policy's reward-major rows."""
        a, y = self.terms(rows.weight, rows.rewards, rows.residual, rows.direct, rows.observed, rows.n[:, None])
        total = a.sum(axis=1)
        value = (a * y).sum(axis=1) / np.where(total > 0, total, np.nan)
        influence = a * (y - value[:, None])
        if self.self_normalised:  # the delta method of a ratio: divide by the mean weight
            influence /= (total / np.maximum(rows.n, 1))[:, None]
        return within_range(value, rows.bounded), _standard_errors(influence, rows.n, rows.user, rows.observed)

    def logged_terms(
        self, weight: np.ndarray, rewards: np.ndarray, residual: np.ndarray | None, observed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """[G, K] a * y without the direct term, and a, for a policy taking each logged action (`sparse_value`)."""
        a, y = self.terms(weight, rewards, residual, 0.0, observed, observed.sum(axis=0))
        return a * y, a

    def sparse_value(
        self,
        weighted: np.ndarray,
        a: np.ndarray,
        matched: np.ndarray,
        direct: np.ndarray | None,
        n: np.ndarray,
        bounded: np.ndarray,
    ) -> np.ndarray:
        """[K] value of a policy whose importance weights are 0 except on the `matched` rows (a deterministic
        policy that takes the logged action there): there the weights are 1 / mu, elsewhere only the direct
        term counts.

        Args:
            weighted, a: [G, K] `logged_terms` with w = 1 / mu.
            matched: [M] the rows where the policy takes the logged action.
            direct: [K] sum of the direct term over the observed rows (doubly robust estimators).
            n: [K] observed rows.
            bounded: [K] True for binary rewards (the value is kept in [0, 1]).
        """
        total = weighted[matched].sum(axis=0)
        if self.doubly_robust:
            total = direct + total
        count = a[matched].sum(axis=0) if self.self_normalised else n
        return within_range(np.divide(total, count, out=np.full_like(total, np.nan), where=count > 0), bounded)


ESTIMATORS: dict[str, Estimator] = {}


def register(estimator: Estimator) -> Estimator:
    """Add an estimator to the registry (replacing one of the same name); returns it."""
    ESTIMATORS[estimator.name] = estimator
    return estimator


def get_estimator(name: str) -> Estimator:
    if name not in ESTIMATORS:
        raise InputError(f"estimator must be one of {list(ESTIMATORS)}, got {name!r}")
    return ESTIMATORS[name]


register(Estimator("ips"))
register(Estimator("snips", self_normalised=True))
register(Estimator("dr", doubly_robust=True))
register(Estimator("dr_clip", doubly_robust=True, transform=lambda u: np.minimum(u, 1.0), sqrt_n_scaled=True))
register(Estimator("switch_dr", doubly_robust=True, transform=lambda u: np.where(u <= 1.0, u, 0.0), sqrt_n_scaled=True))
register(Estimator("dros", doubly_robust=True, transform=lambda u: u / (u * u + 1.0), sqrt_n_scaled=True))


def within_range(value: np.ndarray, bounded: np.ndarray) -> np.ndarray:
    """[K] values with those of binary rewards clipped to [0, 1], the only values their means can take."""
    return np.where(bounded, np.clip(value, 0.0, 1.0), value)


@dataclass(frozen=True)
class Estimate:
    """One estimate of one reward's mean per opportunity."""

    value: float
    standard_error: float
    bounded: bool = False

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% normal-approximation confidence interval (within [0, 1] for a binary reward)."""
        half = Z_95 * self.standard_error
        low, high = self.value - half, self.value + half
        return (max(low, 0.0), min(high, 1.0)) if self.bounded else (low, high)

    def to_dict(self) -> dict[str, float]:
        low, high = self.interval
        return {"value": self.value, "standard_error": self.standard_error, "ci_low": low, "ci_high": high}


@dataclass(frozen=True)
class OffPolicyResult:
    """Estimates per reward: estimates[reward][estimator], plus rows used and effective sample size."""

    estimates: dict[str, dict[str, Estimate]]
    n_rows: dict[str, int]
    effective_sample_size: dict[str, float]

    def value(self, reward: str, estimator: str) -> float:
        return self.estimates[reward][estimator].value

    def to_dict(self) -> dict[str, dict]:
        return {
            reward: {
                "n_rows": self.n_rows[reward],
                "effective_sample_size": self.effective_sample_size[reward],
                **{name: estimate.to_dict() for name, estimate in by_estimator.items()},
            }
            for reward, by_estimator in self.estimates.items()
        }


def evaluate(
    feedback: LoggedFeedback, target: PolicyDecision, estimators: Iterable[str] | None = None
) -> OffPolicyResult:
    """Every registered estimator's estimate (or those named) of each reward's mean under `target`.

    All rewards are handled at once; a reward's missing rows contribute nothing. Doubly robust estimators
    run only when the feedback has the reward model's predictions.

    Args:
        feedback: the logs aligned with the candidates.
        target: the target policy's action distribution over the same candidates.
        estimators: names of registered estimators; default: all.
    """
    rows = PolicyRows.of(feedback, target)
    chosen = [get_estimator(name) for name in (ESTIMATORS if estimators is None else estimators)]
    estimates = {e.name: e.estimate(rows) for e in chosen if e.applies(rows.direct is not None)}
    ess = effective_sample_sizes(rows.weight)
    names = feedback.reward_names
    return OffPolicyResult(
        {
            reward: {
                e: Estimate(float(value[k]), float(se[k]), bool(rows.bounded[k]))
                for e, (value, se) in estimates.items()
            }
            for k, reward in enumerate(names)
        },
        {reward: int(rows.n[k]) for k, reward in enumerate(names)},
        {reward: float(ess[k]) for k, reward in enumerate(names)},
    )


def _standard_errors(
    centred: np.ndarray, n: np.ndarray, user: np.ndarray | None = None, observed: np.ndarray | None = None
) -> np.ndarray:
    """[K] standard error of a mean from centred per-row influence values [K, G] (0 on unobserved rows).

    With `user` [G], rows of one user are one cluster (their outcome windows overlap, so their rewards
    are correlated): the influence values are summed per user before squaring, with the small-sample
    factor C / (C - 1) over the C users observed. Without it, rows are independent.
    """
    if user is None or observed is None:
        squares = np.einsum("kg,kg->k", centred, centred)  # no [K, G] temporary
        return np.sqrt(squares / np.where(n > 1, n - 1, np.nan) / np.where(n > 0, n, np.nan))
    errors = np.empty(len(n))
    for k in range(len(n)):
        per_user = np.bincount(user, weights=centred[k])
        clusters = np.count_nonzero(np.bincount(user, weights=observed[k]))
        factor = clusters / (clusters - 1) if clusters > 1 else np.nan
        errors[k] = np.sqrt(factor * per_user @ per_user) / n[k] if n[k] > 0 else np.nan
    return errors


def snips(weight: np.ndarray, reward: np.ndarray) -> Estimate:
    """Self-normalised IPS of one reward: sum w r / sum w, with the delta-method standard error."""
    observed = np.ones((1, weight.size))
    rows = PolicyRows(weight[None, :], reward[None, :], observed, observed.sum(axis=1), np.zeros(1, bool), None, None)
    value, se = ESTIMATORS["snips"].estimate(rows)
    return Estimate(float(value[0]), float(se[0]))


def effective_sample_sizes(weight: np.ndarray) -> np.ndarray:
    """[K] (sum w)^2 / sum w^2 of [K, G] weights: the number of on-policy rows each weighted sample is worth."""
    total, squares = weight.sum(axis=1), (weight**2).sum(axis=1)
    return np.divide(total**2, squares, out=np.zeros_like(total, dtype=np.float64), where=squares > 0)


def effective_sample_size(weight: np.ndarray) -> float:
    """The effective sample size of one [G] vector of weights."""
    return float(effective_sample_sizes(np.asarray(weight, dtype=np.float64)[None, :])[0])
