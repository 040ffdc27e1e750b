"""`mtr ope ...`: off-policy evaluation experiments checked against truth."""

from __future__ import annotations

from pathlib import Path

from mtr.experiments.ope_open_bandit import CAMPAIGNS, TARGETS, OpenBanditOpeConfig, run_open_bandit_ope
from mtr.experiments.targets import TargetPolicy


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


def ope_simulator(
    events: Path,
    dataset: Path,
    run: Path,
    out: Path,
    policies: list[TargetPolicy],
    checkpoint: str = "last.ckpt",
    first_day: int = 1,
    days: int = 5,
    sizes: list[int] | None = None,
    repetitions: int = 20,
    seed: int = 0,
) -> None:
    """Estimate target policies' rates from a simulated log with every estimator, against the oracle's truth.

    Writes results.json and README.md into `out` (replaced atomically).

    Args:
        events: the evaluation log written by `mtr simulate`.
        dataset: the same log built by `mtr build-dataset`.
        run: run folder of a model trained by `mtr fit` (on another log of the same world).
        out: output folder.
        policies: target policies (name, kind logging / uniform / fused, weights, threshold, temperature).
        checkpoint: checkpoint file in the run's checkpoints/.
        first_day: first evaluated day of the log (0-based).
        days: number of evaluated days.
        sizes: data sizes (opportunities) at which bias, RMSE and 95% interval coverage are measured
            (default: 10000, 2500, 625).
        repetitions: random user subsets per size.
        seed: seed of the subsets.
    """
    from mtr.experiments.ope_simulator import SimulatorOpeConfig, run_simulator_ope

    by_size = {"repetitions": repetitions, "seed": seed} | ({} if sizes is None else {"sizes": tuple(sizes)})
    config = SimulatorOpeConfig(
        str(events), str(dataset), str(run), checkpoint, first_day, days, tuple(policies), **by_size
    )
    run_simulator_ope(out, config)
