"""`mtr ope ...`: off-policy evaluation experiments checked against truth."""

from __future__ import annotations

from pathlib import Path

from mtr.ranking.open_bandit import CAMPAIGNS, TARGETS, OpenBanditOpeConfig, run_open_bandit_ope


def ope_open_bandit(
    out: Path,
    campaigns: list[str] = list(CAMPAIGNS),  # noqa: B006 (jsonargparse reads the default)
    targets: list[str] = list(TARGETS),  # noqa: B006
    source: Path | None = None,
    reward_prior: float = 200.0,
    folds: int = 2,
) -> None:
    """Estimate the Open Bandit BTS policy's click rate from the uniform-random logs, against BTS's own.

    Writes results.json and README.md into `out` (replaced atomically).

    Args:
        out: output folder.
        campaigns: "all", "men" and/or "women".
        targets: estimates of BTS's action distribution: "frequency", "daily_frequency", "mean_propensity".
        source: the small-dataset folder (default: $MTR_DATA_DIR/open_bandit_dataset_small).
        reward_prior: pseudo-impressions of the position click rate in the DR reward model's shrinkage.
        folds: cross-fitting folds (contiguous in time) of the DR reward model.
    """
    config = OpenBanditOpeConfig(tuple(campaigns), tuple(targets), str(source) if source else None, reward_prior, folds)
    run_open_bandit_ope(out, config)
