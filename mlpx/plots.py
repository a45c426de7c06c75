"""Figures for the MLflow dashboard, drawn from metric histories.

A history is what :class:`mlpx.tracking.MemoryTracker` keeps and what the training loop
accumulates: ``{metric_key: [(step_or_epoch, value), ...]}`` with the keys of the metric
conventions (``train/loss``, ``val/accuracy``, ``grad_norm/layer_<l>``, ``grad_norm/global``).

The figures are built with matplotlib's object-oriented API (``matplotlib.figure.Figure``)
and never through pyplot: no GUI backend is selected, no global figure registry holds them,
and they render with Agg when saved (``fig.savefig("x.png")``), in a headless job or a
notebook alike, without switching the user's backend. They are freed when the last reference
goes; ``tracker.log_figure`` (or ``plt.close(fig)``, harmless here) is still the polite end.
matplotlib is imported inside the functions, so ``import mlpx.plots`` costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["grad_norms", "learning_curves"]

History = Mapping[str, Sequence[tuple[int, float]]]

_SPLIT_STYLE = {"train": "-", "val": "--", "test": ":"}
_LAYER_KEY = re.compile(r"^grad_norm/layer_(\d+)$")


def _new_figure(ncols: int, width: float, height: float) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _xy(points: Sequence[tuple[int, float]]) -> tuple[list[float], list[float]]:
    xs = [float(p[0]) for p in points]
    ys = [float(p[1]) for p in points]
    return xs, ys


def learning_curves(history: History) -> Figure:
    """Loss (left axes) and accuracy (right axes) against epoch, train and val.

    Reads ``train/loss``, ``val/loss``, ``train/accuracy``, ``val/accuracy`` (each a list of
    ``(epoch, value)``); missing or empty keys are skipped, the two axes are always there.
    Returns a ``matplotlib.figure.Figure`` with 2 axes and one line per key found.
    """
    fig, (ax_loss, ax_acc) = _new_figure(2, 10.0, 4.0)
    for ax, metric in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        for split in ("train", "val"):
            points = history.get(f"{split}/{metric}")
            if not points:
                continue
            xs, ys = _xy(points)
            ax.plot(xs, ys, _SPLIT_STYLE[split], marker="." if len(xs) < 30 else None, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(metric)
        ax.grid(True, alpha=0.3)
        if ax.get_lines():
            ax.legend()
    return fig


def grad_norms(history: History) -> Figure:
    """Every ``grad_norm/layer_<l>`` (and ``grad_norm/global``) against step, log y-axis.

    One line per layer labelled ``"layer l"`` in layer order (l = 1..L, lecture numbering),
    plus ``"global"`` (black, dashed) when logged. Non-positive values are masked by the log
    scale. Returns a ``matplotlib.figure.Figure`` with one axes.
    """
    fig, (ax,) = _new_figure(1, 7.0, 4.0)
    layers = sorted(
        (int(m.group(1)), key) for key in history if (m := _LAYER_KEY.match(key)) is not None
    )
    for layer, key in layers:
        if history[key]:
            ax.plot(*_xy(history[key]), label=f"layer {layer}", linewidth=1.0)
    if history.get("grad_norm/global"):
        ax.plot(*_xy(history["grad_norm/global"]), "k--", label="global", linewidth=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("gradient norm (L2)")
    ax.set_title("gradient norms per layer")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_lines():
        ax.legend(fontsize="small", ncols=2 if len(ax.get_lines()) > 6 else 1)
    return fig
