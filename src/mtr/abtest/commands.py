"""`mtr ab analyze`, `mtr ab plan` and `mtr ab simulate`.

The analysis spec is the function's arguments, so `mtr ab analyze --config spec.yaml --data FILE --out DIR`
loads it from YAML and a misspelt field fails naming the field.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtr.abtest.spec import Correction, DecompositionSpec, MetricSpec, PolicyChange
from mtr.errors import InputError
from mtr.sim.config import WorldConfig

if TYPE_CHECKING:  # names for annotations only: the command line imports this module and must stay light
    import polars as pl

    from mtr.abtest.analysis import AnalysisResult


def ab_analyze(
    data: Path,
    out: Path,
    arm_column: str,
    control: str,
    metrics: list[MetricSpec],
    arms: list[str] | None = None,
    unit_column: str | None = None,
    decompositions: list[DecompositionSpec] | None = None,
    alpha: float = 0.05,
    correction: Correction = "holm",
    expected_share: dict[str, float] | None = None,
    srm_threshold: float = 0.001,
    power: float = 0.8,
    title: str = "A/B analysis",
    description: str = "",
    overwrite: bool = False,
) -> None:
    """Analyse an A/B experiment from per-unit data.

    Writes summary.csv, summary.md, forest.png, results.json and README.md into `out`.

    Args:
        data: per-unit CSV (optionally .gz) or Parquet; a relative path that does not exist is looked
            up under $MTR_DATA_DIR (default ../shared/data).
        out: output folder (replaced atomically).
        arm_column: the assignment column.
        control: the control arm's value in `arm_column`.
        metrics: the metrics (mean or ratio, optional CUPED covariate, role and guardrail margin).
        arms: treatment arms to compare with control; default every other arm.
        unit_column: unit id column; when given it must be unique.
        decompositions: chained products whose lift is split into factors.
        alpha: two-sided level of intervals and tests (guardrails: one-sided).
        correction: multiple-testing correction deciding significance: "holm" or "fdr_bh".
        expected_share: designed share per arm for the sample ratio check; default equal shares.
        srm_threshold: p-value below which the sample ratio check fails.
        power: power for the minimum detectable effects.
        title: report title.
        description: Markdown paragraph placed at the top of README.md.
        overwrite: replace `out` even when it is not an earlier analysis (never the data).
    """
    from mtr.abtest.analysis import analyze
    from mtr.abtest.analysis_report import write_report
    from mtr.abtest.units import read_units, split_arms
    from mtr.io import atomic_output_dir, check_output_dir

    path = resolve_data_path(data)
    check_output_dir(out, "ab analyze", overwrite, [path])
    frame = read_units(path)
    split = split_arms(frame, path.name, arm_column, control, arms, metrics, unit_column)
    result = analyze(split, metrics, decompositions or [], alpha, correction, expected_share, srm_threshold, power)
    with atomic_output_dir(out, "ab analyze", overwrite, [path]) as folder:
        write_report(result, folder, title, description, _invocation(f"mtr ab analyze --data {data} --out {out}"))
    print((Path(out) / "summary.md").read_text())


def ab_plan(
    mde: float,
    baseline: float | None = None,
    sd: float | None = None,
    relative: bool = False,
    rho: float = 0.0,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
) -> None:
    """Print the units per arm needed to detect `mde`, without and with CUPED.

    Args:
        mde: minimum detectable effect (absolute, or relative to `baseline` when `relative`).
        baseline: control proportion, for a proportion metric.
        sd: per-unit standard deviation, for a mean metric (give this or `baseline`).
        relative: whether `mde` is relative to `baseline`.
        rho: correlation of the metric with the CUPED covariate.
        alpha: two-sided level.
        power: wanted power.
        ratio: treatment units per control unit.
    """
    from mtr.abtest.power import sample_size, sample_size_proportions

    if (baseline is None) == (sd is None):
        raise InputError("give exactly one of 'baseline' (a proportion metric) or 'sd' (a mean metric)")
    if relative and baseline is None:
        raise InputError("a relative 'mde' needs 'baseline'")
    absolute = mde * baseline if relative and baseline is not None else mde
    for label, r in (("without CUPED", 0.0), (f"with CUPED (rho={rho})", rho)):
        if baseline is not None:
            n = sample_size_proportions(baseline, absolute, alpha, power, ratio, r)
        else:
            n = sample_size(absolute, sd, alpha, power, ratio, r)  # type: ignore[arg-type]
        print(f"{label}: {n:,.0f} control units and {ratio * n:,.0f} treatment units for an effect of {absolute:+.4g}")


def ab_simulate(
    out: Path,
    users: int = 20000,
    days: int = 28,
    seed: int = 0,
    world: WorldConfig = WorldConfig(),  # noqa: B008 (frozen dataclass)
    variant: PolicyChange = PolicyChange(),  # noqa: B008 (frozen dataclass)
    treatment_share: float = 0.5,
    alpha: float = 0.05,
    correction: Correction = "holm",
    overwrite: bool = False,
) -> None:
    """Run a simulated online A/B test of the logging policy against a variant policy.

    Users are randomised between the two policies, both run forward in one simulated world, and the
    per-user outcomes are analysed like any experiment. The report adds, for sends, engagements and
    unsubscribes per opportunity, the oracle's one-step difference and the off-policy estimate of it.
    Writes units.parquet, summary.csv, summary.md, forest.png, results.json and README.md into `out`.

    Args:
        out: output folder (replaced atomically).
        users: simulated users.
        days: days with sending opportunities.
        seed: random seed of the world and the assignment.
        world: the simulated world; its policy knobs are the logging (control) policy's.
        variant: the policy knobs that differ in the treatment arm.
        treatment_share: share of users in the variant arm.
        alpha: two-sided level of intervals and tests.
        correction: multiple-testing correction: "holm" or "fdr_bh".
        overwrite: replace `out` even when it is not an earlier simulated test.
    """
    if users < 100 or days < 1:
        raise InputError(f"--users must be >= 100 and --days >= 1, got users={users}, days={days}")
    from mtr.abtest.analysis_report import write_report
    from mtr.io import atomic_output_dir, check_output_dir

    check_output_dir(out, "ab simulate", overwrite)
    tested = variant.apply(world)
    units, result, extra, section = _simulated_test(
        users, days, seed, world, tested, treatment_share, alpha, correction
    )
    description = (
        f"{users:,} simulated users over {days} days (seed {seed}), randomised {1 - treatment_share:.0%} / "
        f"{treatment_share:.0%} between the logging policy and a variant ({_knobs(world, tested)})."
    )
    with atomic_output_dir(out, "ab simulate", overwrite) as folder:
        units.write_parquet(folder / "units.parquet")
        command = _invocation(f"mtr ab simulate --out {out} --users {users} --days {days} --seed {seed}")
        write_report(result, folder, "Simulated online A/B test", description, command, extra, section)
    print((Path(out) / "README.md").read_text())


def _simulated_test(
    users: int,
    days: int,
    seed: int,
    world: WorldConfig,
    tested: WorldConfig,
    treatment_share: float,
    alpha: float,
    correction: Correction,
) -> tuple[pl.DataFrame, AnalysisResult, dict[str, Any], str]:
    """Run both arms in one simulated world and analyse them: (units, result, one-step figures, README section)."""
    from mtr.abtest.analysis import analyze
    from mtr.abtest.simulate import (
        CONTROL,
        SIMULATED_DECOMPOSITIONS,
        SIMULATED_METRICS,
        VARIANT,
        one_step_estimates,
        one_step_section,
        run_experiment,
        unit_table,
    )
    from mtr.abtest.units import split_arms

    log, in_variant = run_experiment(users, days, seed, world, tested, treatment_share)
    units = unit_table(log, in_variant, seed)
    split = split_arms(units, "simulated units", "arm", CONTROL, [VARIANT], SIMULATED_METRICS, "user_id")
    shares = {CONTROL: 1 - treatment_share, VARIANT: treatment_share}
    result = analyze(split, SIMULATED_METRICS, SIMULATED_DECOMPOSITIONS, alpha, correction, shares)
    extra, section = one_step_section(one_step_estimates(log, in_variant, tested), result)
    return units, result, extra, section


def _knobs(world: WorldConfig, variant: WorldConfig) -> str:
    changed = [f.name for f in dataclasses.fields(world) if getattr(world, f.name) != getattr(variant, f.name)]
    return ", ".join(f"{name} {getattr(world, name)} -> {getattr(variant, name)}" for name in changed)


def resolve_data_path(data: Path) -> Path:
    """`data` as given when it exists or is absolute, else under $MTR_DATA_DIR (default ../shared/data)."""
    data = Path(data)
    if data.exists() or data.is_absolute():
        return data
    return Path(os.environ.get("MTR_DATA_DIR", "../shared/data")) / data


def _invocation(fallback: str) -> str:
    """The command line, when run through the `mtr` console script; else `fallback`."""
    if Path(sys.argv[0]).name == "mtr":
        return shlex.join(["mtr", *sys.argv[1:]])
    return fallback
