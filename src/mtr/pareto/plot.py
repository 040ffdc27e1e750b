"""Plots of a Pareto study: every trial, the feasible front and the chosen point, as PNG and as HTML.

Each panel puts one maximised objective against the last objective (by default unsubscribe, the
cost every other objective trades against). The HTML is self-contained (plotly.js embedded), so it
opens without a network.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from mtr.io import atomic_write_bytes
from mtr.pareto.study import Direction, TrialRecord


def _panels(objectives: Mapping[str, Direction]) -> list[tuple[str, str]]:
    """(y, x) objective pairs: each other objective against the last one."""
    names = list(objectives)
    return [(name, names[-1]) for name in names[:-1]]


def _values(records: list[TrialRecord], name: str) -> np.ndarray:
    return np.array([r.estimates[name] for r in records], dtype=np.float64)


def write_png(
    path: Path, records: list[TrialRecord], front: list[TrialRecord], chosen: TrialRecord, objectives: Mapping
) -> None:
    """Matplotlib panels: trials (grey), feasible front (blue), its true values if known (green), chosen (red)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _panels(objectives)
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)
    for axis, (y, x) in zip(axes[0], panels, strict=True):
        axis.scatter(_values(records, x), _values(records, y), s=8, c="0.75", label="trials")
        axis.scatter(_values(front, x), _values(front, y), s=16, c="tab:blue", label="front (estimates)")
        if front and front[0].truth is not None:
            tx = [r.truth[x] for r in front]
            ty = [r.truth[y] for r in front]
            axis.scatter(tx, ty, s=12, c="tab:green", marker="x", label="front (true values)")
        axis.scatter([chosen.estimates[x]], [chosen.estimates[y]], s=80, c="tab:red", marker="*", label="chosen")
        axis.set_xlabel(f"{x} per opportunity ({objectives[x][:3]})")
        axis.set_ylabel(f"{y} per opportunity ({objectives[y][:3]})")
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(tmp, dpi=110)
    plt.close(figure)
    tmp.replace(path)


def write_html(
    path: Path, records: list[TrialRecord], front: list[TrialRecord], chosen: TrialRecord, objectives: Mapping
) -> None:
    """The same panels in plotly, with each point's trial number and parameters on hover; plotly.js embedded."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = _panels(objectives)
    figure = make_subplots(rows=1, cols=len(panels), subplot_titles=[f"{y} vs {x}" for y, x in panels])
    groups = (("trials", records, "lightgray", 5), ("front", front, "royalblue", 8), ("chosen", [chosen], "red", 14))
    for column, (y, x) in enumerate(panels, start=1):
        for label, group, color, size in groups:
            hover = [f"trial {r.number}<br>" + "<br>".join(f"{k}={v:.4g}" for k, v in r.params.items()) for r in group]
            figure.add_trace(
                go.Scatter(
                    x=_values(group, x),
                    y=_values(group, y),
                    mode="markers",
                    name=label,
                    marker={"color": color, "size": size},
                    text=hover,
                    showlegend=column == 1,
                ),
                row=1,
                col=column,
            )
        figure.update_xaxes(title_text=x, row=1, col=column)
        figure.update_yaxes(title_text=y, row=1, col=column)
    atomic_write_bytes(path, figure.to_html(include_plotlyjs=True, full_html=True).encode())
