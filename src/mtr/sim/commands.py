"""`mtr simulate`."""

from __future__ import annotations

from pathlib import Path

from mtr.errors import InputError
from mtr.sim.config import WorldConfig


def simulate(
    out: Path,
    users: int = 5000,
    days: int = 112,
    seed: int = 0,
    world: WorldConfig = WorldConfig(),  # noqa: B008 (frozen dataclass)
    overwrite: bool = False,
) -> None:
    """Simulate a messaging platform and write its raw event logs as Parquet, plus the truth.

    Writes the event-log contract (`mtr.events`) and meta.json to `out`, and the latent traits and
    true probabilities of the logged actions to `out/truth/` (read them with `mtr.sim.oracle.Oracle`).

    Args:
        out: output folder for the event logs.
        users: number of users.
        days: days the logging policy decides; the log ends with the last one, as a platform's extract
            does, so the last days' labels are immature. `mtr build-dataset` splits only days whose labels
            have matured, with embargoes of the longest label horizon between splits (29 days with
            retention): 112 days give train, validation and test 20, 4 and 4 days.
        seed: random seed; the same seed gives the same bytes.
        world: the world's knobs (policy, task correlation, base rates, schedule); see `WorldConfig`.
        overwrite: replace `out` even when it is not this command's earlier output (it never replaces an input).
    """
    if users < 1:
        raise InputError(f"--users must be >= 1, got {users}")
    if days < 1:
        raise InputError(f"--days must be >= 1, got {days}")
    from mtr.io import check_output_dir
    from mtr.sim.writer import write_simulation  # numpy/polars work only when the command runs

    check_output_dir(out, "simulate", overwrite)
    figures = write_simulation(Path(out), users, days, seed, world, overwrite)
    print(f"simulated {users} users x {days} days (seed {seed}) -> {out}")
    for name, value in figures.items():
        print(f"  {name:36s} {value:.4f}" if isinstance(value, float) else f"  {name:36s} {value}")
