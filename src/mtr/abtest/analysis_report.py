"""Writing an analysis: summary table (CSV and Markdown), forest plot (PNG), results.json, README.md."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402

from mtr.abtest.analysis import AnalysisResult  # noqa: E402
from mtr.io import write_json  # noqa: E402


def summary_table(result: AnalysisResult) -> pl.DataFrame:
    """One row per metric and treatment arm, with the reported (CUPED when used) effect."""
    rows = []
    for r in result.metrics:
        e = r.effect
        rows.append(
            {
                "metric": r.metric.name,
                "arm": r.arm,
                "role": r.metric.role,
                "kind": "mean" if r.metric.column is not None else "ratio",
                "n_control": r.n_control,
                "n_treatment": r.n_treatment,
                "control": r.unadjusted.control,
                "treatment": r.unadjusted.treatment,
                "abs_diff": e.abs_diff,
                "abs_ci_low": e.abs_ci[0],
                "abs_ci_high": e.abs_ci[1],
                "rel_diff": e.rel_diff,
                "rel_ci_low": e.rel_ci[0],
                "rel_ci_high": e.rel_ci[1],
                "p_value": e.p_value,
                "p_holm": r.p_holm,
                "p_bh": r.p_bh,
                "significant": r.significant,
                "cuped_variance_reduction": r.variance_reduction,
                "abs_diff_unadjusted": r.unadjusted.abs_diff,
                "abs_ci_low_unadjusted": r.unadjusted.abs_ci[0],
                "abs_ci_high_unadjusted": r.unadjusted.abs_ci[1],
                "p_value_unadjusted": r.unadjusted.p_value,
                "mde": r.mde,
                "guardrail": None if r.guardrail is None else r.guardrail.status,
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None)


def markdown_summary(result: AnalysisResult) -> str:
    """The report's tables in Markdown: effects, decisions, sample ratio check and decompositions."""
    level = f"{1 - result.alpha:.0%}"
    lines = [
        f"| metric | arm | control | treatment | difference [{level} CI] | relative [{level} CI] | p | "
        f"p {result.correction} | CUPED var. red. | MDE | guardrail |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result.metrics:
        e = r.effect
        adjusted = r.p_holm if result.correction == "holm" else r.p_bh
        lines.append(
            f"| {r.metric.name} | {r.arm} | {_num(r.unadjusted.control)} | {_num(r.unadjusted.treatment)} | "
            f"{_num(e.abs_diff, True)} [{_num(e.abs_ci[0], True)}, {_num(e.abs_ci[1], True)}] | "
            f"{_pct(e.rel_diff)} [{_pct(e.rel_ci[0])}, {_pct(e.rel_ci[1])}] | {_p(e.p_value)} | "
            f"{_p(adjusted)}{' *' if r.significant else ''} | {_pct(r.variance_reduction, False)} | "
            f"{_num(r.mde)} | {_guardrail(r)} |"
        )
    lines += [
        "",
        "Control and treatment are plain means (or ratios of sums); differences, intervals and p-values are "
        "CUPED-adjusted where a variance reduction is shown.",
    ]
    lines += ["", "| arm | decision | reason |", "|---|---|---|"]
    lines += [f"| {arm} | **{d}** | {why} |" for arm, (d, why) in result.decisions.items()]
    srm = result.sample_ratio
    counts = ", ".join(f"{a}: {n:,} ({srm.expected_share[a]:.1%} expected)" for a, n in srm.observed.items())
    lines += [
        "",
        f"Sample ratio check: {counts}; chi2 = {srm.chi2:.2f}, p = {_p(srm.p_value)} "
        f"({'MISMATCH' if srm.mismatch else 'no mismatch'} at p < {srm.threshold}).",
    ]
    for d in result.decompositions:
        lines += [
            "",
            f"Decomposition of {d.name}, {d.arm} against {result.control}: {_num(d.control)} -> {_num(d.treatment)} "
            f"({_pct(d.rel_lift)}).",
            "",
            "| factor | control | treatment | relative lift | share of log-lift |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {f.metric} | {_num(f.control)} | {_num(f.treatment)} | {_pct(f.rel_lift)} | {_pct(f.share, False)} |"
            for f in d.factors
        ]
    return "\n".join(lines) + "\n"


def forest_plot(result: AnalysisResult, path: Path) -> None:
    """Relative differences with their intervals, one line per metric and arm, written as PNG."""
    rows = [r for r in result.metrics if math.isfinite(r.effect.rel_diff)]
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 1.4))
    for y, r in enumerate(reversed(rows)):
        e = r.effect
        better = (e.abs_diff > 0) == (r.metric.better == "higher")
        colour = ("tab:green" if better else "tab:red") if r.significant else "tab:gray"
        colour = "tab:orange" if r.guardrail is not None else colour
        ax.errorbar(
            100 * e.rel_diff,
            y,
            xerr=[[100 * (e.rel_diff - e.rel_ci[0])], [100 * (e.rel_ci[1] - e.rel_diff)]],
            fmt="o",
            color=colour,
            capsize=3,
        )
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(rows)), [f"{r.metric.name} | {r.arm}" for r in reversed(rows)])
    ax.set_xlabel(f"relative difference against {result.control} (%), {1 - result.alpha:.0%} CI")
    ax.set_title("green / red: significantly better / worse after correction; orange: guardrail", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(
    result: AnalysisResult,
    folder: Path,
    title: str,
    description: str,
    command: str,
    extra: dict[str, Any] | None = None,
    extra_markdown: str = "",
) -> None:
    """Write summary.csv, summary.md, forest.png, results.json and README.md into `folder`.

    Args:
        extra: more figures for results.json (for example a simulated test's one-step estimates).
        extra_markdown: a section appended to README.md.
    """
    table = summary_table(result)
    table.write_csv(folder / "summary.csv")
    summary = markdown_summary(result)
    (folder / "summary.md").write_text(summary)
    forest_plot(result, folder / "forest.png")
    payload: dict[str, Any] = {"title": title, "command": command, **result.to_dict(), **(extra or {})}
    write_json(folder / "results.json", payload)
    readme = [f"# {title}", "", description.strip(), "", "Command:", "", "```", command, "```", "", summary]
    readme += ["![forest plot](forest.png)", "", extra_markdown]
    (folder / "README.md").write_text("\n".join(readme))


def _num(value: float | None, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def _pct(value: float | None, signed: bool = True) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{100 * value:+.2f}%" if signed else f"{100 * value:.1f}%"


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2e}" if value < 1e-4 else f"{value:.4f}"


def _guardrail(r: Any) -> str:
    if r.guardrail is None:
        return ""
    g = r.guardrail
    unit = "%" if r.metric.margin_relative else ""
    scale = 100 if r.metric.margin_relative else 1
    return f"{g.status} (harm bound {scale * g.harm_bound:.3g}{unit} vs margin {scale * g.margin:.3g}{unit})"
