"""The surrogate index (Athey, Chetty, Imbens and Kang): a long-term outcome predicted from short-term signals.

A population where both are observed (the logging policy's users, followed for 8 weeks) fits E[long | short
signals, pre-treatment covariates]; a new policy's effect on the long-term outcome is then read from its users'
first weeks alone, as the mean of the fitted index over them. It identifies the long-term effect when the
signals carry all of the policy's effect on the outcome (surrogacy) and the fit carries over to the new
policy's users (comparability); both are assumptions, which `experiments/long_term` checks against the
simulator's truth. The fit is ordinary least squares with an intercept; its coefficients are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtr.errors import InputError


@dataclass(frozen=True)
class SurrogateIndex:
    """A fitted index: long ~ intercept + short signals + covariates.

    Attributes:
        signals: the names of the short-term signals, then of the covariates, in column order.
        coefficients: [1 + k] the intercept, then one coefficient per named column.
        r2: the share of the long-term outcome's variance the fit explains on its own population.
    """

    signals: tuple[str, ...]
    coefficients: np.ndarray
    r2: float

    @classmethod
    def fit(cls, columns: dict[str, np.ndarray], long_term: np.ndarray) -> SurrogateIndex:
        """Fit on a population with its short-term signals and covariates (`columns`, each [N]) and outcome [N]."""
        names = tuple(columns)
        design = _design(columns, names, len(long_term))
        if len(long_term) <= design.shape[1]:
            raise InputError(f"surrogate index: {len(long_term)} rows cannot fit {design.shape[1]} coefficients")
        coefficients, *_ = np.linalg.lstsq(design, long_term, rcond=None)
        residual = long_term - design @ coefficients
        r2 = 1.0 - residual.var() / long_term.var() if long_term.var() > 0 else 0.0
        return cls(names, coefficients, float(r2))

    def predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """[N] the index of a population: its predicted long-term outcome from the same named columns."""
        missing = [name for name in self.signals if name not in columns]
        if missing:
            raise InputError(f"surrogate index: columns {missing} are missing (fitted on {list(self.signals)})")
        n = len(next(iter(columns.values())))
        return _design(columns, self.signals, n) @ self.coefficients


def _design(columns: dict[str, np.ndarray], names: tuple[str, ...], n: int) -> np.ndarray:
    for name in names:
        if np.shape(columns[name]) != (n,) or not np.isfinite(columns[name]).all():
            raise InputError(f"surrogate index: column '{name}' must be {n} finite values")
    return np.column_stack([np.ones(n), *(np.asarray(columns[name], dtype=np.float64) for name in names)])
