"""`mtr ab analyze`, `mtr ab plan` and `mtr ab simulate`.

The analysis spec is the function's arguments, so `mtr ab analyze --config spec.yaml --data FILE --out DIR`
loads it from YAML and a misspelt field fails naming the field.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from mtr.abtest.spec import Correction, DecompositionSpec, MetricSpec
from mtr.errors import InputError


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
    """
    from mtr.abtest.analysis import analyze
    from mtr.abtest.report import write_report
    from mtr.abtest.units import read_units, split_arms
    from mtr.io import atomic_output_dir

    path = resolve_data_path(data)
    frame = read_units(path)
    split = split_arms(frame, path.name, arm_column, control, arms, metrics, unit_column)
    result = analyze(split, metrics, decompositions or [], alpha, correction, expected_share, srm_threshold, power)
    with atomic_output_dir(out) as folder:
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


def ab_simulate(out: Path) -> None:
    """Run a simulated online A/B test."""
    raise NotImplementedError("mtr ab simulate is being built")


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
