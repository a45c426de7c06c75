"""Figures for the MLflow dashboard, drawn from metric histories.

A history is what :class:`mlpx.tracking.MemoryTracker` keeps and what the training loop
accumulates: ``{metric_key: [(step_or_epoch, value), ...]}`` with the keys of the metric
conventions (``train/loss``, ``val/accuracy``, ``grad_norm/layer_<l>``, ``grad_norm/global``).

The analysis figures (gradient-norm heat map, decision boundary, confusion matrix,
activation histograms, and the input-gradient figures of :mod:`mlpx.analysis.inputs`:
saliency, adversarial examples, class visualisation) take arrays of any backend and the
network itself where they need a forward pass.

The figures are built with matplotlib's object-oriented API (``matplotlib.figure.Figure``)
and never through pyplot: no GUI backend is selected, no global figure registry holds them,
and they render with Agg when saved (``fig.savefig("x.png")``), in a headless job or a
notebook alike, without switching the user's backend. They are freed when the last reference
goes; ``tracker.log_figure`` (or ``plt.close(fig)``, harmless here) is still the polite end.
matplotlib is imported inside the functions, so ``import mlpx.analysis.plots`` costs nothing.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "activation_histograms",
    "adversarial_figure",
    "class_visualisation_figure",
    "confusion_matrix",
    "decision_boundary",
    "grad_norm_heatmap",
    "grad_norms",
    "learning_curves",
    "saliency_figure",
]

History = Mapping[str, Sequence[tuple[int, float]]]

_SPLIT_STYLE = {"train": "-", "val": "--", "test": ":"}
_LAYER_KEY = re.compile(r"^grad_norm/layer_(\d+)$")


def _new_figure(
    ncols: int, width: float, height: float, *, fixed: bool = False
) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    if not fixed:
        fig = Figure(figsize=(width, height), layout="constrained")
        return fig, list(fig.subplots(1, ncols, squeeze=False)[0])
    # Fixed margins in inches instead of constrained layout, for the two figures drawn for
    # every run of a sweep: the layout engine's measuring pass cost ~40% of their savefig
    # time (issue 14), and axes with numeric ticks and short labels need no solver.
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(
        left=0.8 / width,
        right=1 - 0.2 / width,
        bottom=0.55 / height,
        top=1 - 0.4 / height,
        wspace=0.9 * ncols / width,
    )
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
    fig, (ax_loss, ax_acc) = _new_figure(2, 10.0, 4.0, fixed=True)
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
    fig, (ax,) = _new_figure(1, 7.0, 4.0, fixed=True)
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


# --------------------------------------------------------------------------- analysis figures
# Figures of the analyses (mlpx.analysis.inputs, mlpx.analysis.log). Arrays may come from
# any backend; they are moved to NumPy with mlpx.backend.to_numpy first.


def _grid(n: int, max_cols: int, cell: float) -> tuple[Figure, list[Axes]]:
    """A figure with ``n`` axes on a grid of at most ``max_cols`` columns (extras removed)."""
    from matplotlib.figure import Figure

    ncols = max(1, min(n, max_cols))
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(figsize=(cell * ncols + 0.6, cell * nrows + 0.4), layout="constrained")
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.remove()
    return fig, axes[:n]


def _np(x: Any) -> np.ndarray:
    from mlpx.backend import to_numpy

    return np.asarray(to_numpy(x))


def _raw(X: np.ndarray, mean: Any, scale: Any) -> np.ndarray:
    """Standardised rows back to raw units, ``X * scale + mean``, when both are given."""
    if mean is None or scale is None:
        return X
    return X * np.asarray(scale, dtype=float) + np.asarray(mean, dtype=float)


def _epoch_of_steps(history: History) -> list[tuple[int, int]]:
    """``[(last step of epoch e, e), ...]`` from the ``epoch`` metric (logged at each
    epoch's last step)."""
    return sorted((int(s), round(float(e))) for s, e in history.get("epoch", []))


def grad_norm_heatmap(history: History) -> Figure:
    """Mean ``grad_norm/layer_<l>`` per layer (rows, l = 1..L) and epoch (columns).

    The values are logged against the step; a step ``s`` belongs to the first epoch whose
    last step (the ``epoch`` metric's step) is ``>= s``. Without an ``epoch`` history the
    columns are the logged steps. Colour: log10 of the mean norm; epochs without a logged
    step (``log_every_n_steps`` longer than an epoch) are interpolated from their
    neighbours, and the title says how many. Returns a Figure with the
    heat map's axes and its colour bar (2 axes; 1 when nothing was logged).
    """
    fig, (ax,) = _new_figure(1, 8.0, 3.5)
    layers = sorted(
        (int(m.group(1)), key) for key in history if (m := _LAYER_KEY.match(key)) is not None
    )
    layers = [(layer, key) for layer, key in layers if history[key]]
    ends = _epoch_of_steps(history)
    ax.set_ylabel("layer")
    ax.set_title("gradient norm ||delta_W_l|| by layer and epoch (log10)")
    if not layers:
        ax.text(0.5, 0.5, "no grad_norm/layer_<l> logged", ha="center", va="center")
        return fig
    if ends:
        end_steps = [s for s, _ in ends]
        columns = [e for _, e in ends]

        def column(step: int) -> int:
            i = bisect.bisect_left(end_steps, step)
            return min(i, len(end_steps) - 1)

        ax.set_xlabel("epoch")
    else:
        steps = sorted({int(s) for _, key in layers for s, _ in history[key]})
        columns = steps
        where = {s: i for i, s in enumerate(steps)}

        def column(step: int) -> int:
            return where[int(step)]

        ax.set_xlabel("step")
    total = np.zeros((len(layers), len(columns)))
    count = np.zeros_like(total)
    for r, (_, key) in enumerate(layers):
        for s, v in history[key]:
            c = column(int(s))
            total[r, c] += float(v)
            count[r, c] += 1
    with np.errstate(divide="ignore", invalid="ignore"):
        grid = np.log10(total / count)
    grid[~np.isfinite(grid)] = np.nan
    filled = _fill_gaps(grid)
    if filled:
        ax.set_title(ax.get_title() + f"; {filled} empty cells interpolated")
    image = ax.imshow(
        np.ma.masked_invalid(grid), aspect="auto", interpolation="nearest", cmap="viridis"
    )
    ax.set_yticks(range(len(layers)), [str(layer) for layer, _ in layers])
    ticks = list(range(0, len(columns), max(1, len(columns) // 10)))
    ax.set_xticks(ticks, [str(columns[i]) for i in ticks])
    fig.colorbar(image, ax=ax, label="log10 mean ||delta_W_l||")
    return fig


def _fill_gaps(grid: np.ndarray) -> int:
    """Fill NaN cells of each row by linear interpolation along the row (epochs in which no
    step was logged, when ``log_every_n_steps`` exceeds an epoch); return how many."""
    filled = 0
    cols = np.arange(grid.shape[1])
    for row in grid:
        bad = np.isnan(row)
        if bad.any() and not bad.all():
            row[bad] = np.interp(cols[bad], cols[~bad], row[~bad])
            filled += int(bad.sum())
    return filled


def decision_boundary(
    net: Any,
    X: Any,
    y: Any,
    *,
    class_names: Sequence[str] | None = None,
    resolution: int = 200,
    margin: float = 0.5,
) -> Figure:
    """The predicted class over the plane of 2-D data, with the points ``(X, y)`` on top.

    X : (n, 2), y : (n,) labels; ``net.predict`` colours a ``resolution`` x ``resolution``
    grid spanning the data plus ``margin``. Raises ``ValueError`` for other than 2
    features. Returns a Figure with one axes. Overwrites the network's forward cache.
    """
    X, y = _np(X), _np(y).astype(int)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"decision_boundary needs 2-D data (n, 2), got {X.shape}")
    C = int(net.sizes[-1])
    names = list(class_names) if class_names is not None else [str(c) for c in range(C)]
    (x0, y0), (x1, y1) = X.min(axis=0) - margin, X.max(axis=0) + margin
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    pred = _np(net.predict(grid)).reshape(gx.shape)
    fig, (ax,) = _new_figure(1, 6.0, 5.0)
    cmap = "tab10" if C <= 10 else "tab20"
    levels = np.arange(C + 1) - 0.5
    ax.contourf(gx, gy, pred, levels=levels, cmap=cmap, vmin=-0.5, vmax=9.5, alpha=0.3)
    for c in range(C):
        pts = X[y == c]
        if len(pts):
            ax.scatter(pts[:, 0], pts[:, 1], s=12, color=_cmap_color(cmap, c), label=names[c])
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x_1")
    ax.set_ylabel("x_2")
    ax.set_title("decision boundary")
    ax.legend(fontsize="small", loc="best")
    return fig


def _cmap_color(cmap: str, c: int) -> Any:
    from matplotlib import colormaps

    cm = colormaps[cmap]
    return cm(c % cm.N)


def confusion_matrix(
    y_true: Any, y_pred: Any, class_names: Sequence[str] | None = None, *, normalize: bool = False
) -> Figure:
    """Counts of (true class, predicted class), rows true, columns predicted.

    ``class_names`` (C names) fixes the classes; by default 0..max label. With
    ``normalize`` each row is divided by its total (recall per class). Each cell is
    annotated when C <= 20. Returns a Figure with the matrix's axes and its colour bar.
    """
    t, p = _np(y_true).astype(int).ravel(), _np(y_pred).astype(int).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {t.size} and {p.size}")
    C = (
        len(class_names)
        if class_names is not None
        else int(max(t.max(initial=0), p.max(initial=0)) + 1)
    )
    names = list(class_names) if class_names is not None else [str(c) for c in range(C)]
    counts = np.bincount(t * C + p, minlength=C * C).reshape(C, C).astype(float)
    values = counts
    if normalize:
        rows = counts.sum(axis=1, keepdims=True)
        values = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = 3.0 + 0.35 * C
    fig, (ax,) = _new_figure(1, size + 1.0, size)
    image = ax.imshow(values, cmap="Blues", interpolation="nearest")
    ax.set_xticks(range(C), names, rotation=45 if C > 6 else 0)
    ax.set_yticks(range(C), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = np.trace(counts) / counts.sum() if counts.sum() else float("nan")
    ax.set_title(f"confusion matrix (accuracy {accuracy:.3f})")
    if C <= 20:
        top = values.max() if values.size else 0.0
        for i in range(C):
            for j in range(C):
                text = f"{values[i, j]:.2f}" if normalize else f"{int(counts[i, j])}"
                dark = values[i, j] > 0.5 * top
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize="small",
                    color="white" if dark else "black",
                )
    fig.colorbar(image, ax=ax, label="fraction of the row" if normalize else "samples")
    return fig


def activation_histograms(net: Any, X: Any, *, bins: int = 50) -> Figure:
    """A histogram of every layer's outputs ``f_l`` (l = 1..L) on X, one panel per layer.

    One forward pass on X (n, d); panel l shows every entry of ``f_l`` (n, p_l) from the
    network's cache (``net.cache.f[l]``) and is titled ``layer l (activation)``. Exact
    zeros (the inactive units of a relu layer) would dwarf the rest: wherever there are
    any, they are left out of the histogram and their fraction is given in the title.
    Returns a Figure with L axes. Overwrites the network's forward cache.
    """
    net.forward(X)
    L = net.num_layers
    fig, axes = _grid(L, 4, 3.2)
    for i, (ax, name) in enumerate(zip(axes, net.activations)):
        f = _np(net.cache.f[i + 1]).ravel()
        f = f[np.isfinite(f)]
        title = f"layer {i + 1} ({name})"
        zeros = f == 0
        if zeros.any():
            title += f", {np.mean(zeros):.0%} zeros (not shown)"
            f = f[~zeros]
        if f.size:
            counts, edges = np.histogram(f, bins=bins)
            # one Polygon (stairs), not one Rectangle per bin: several times faster to draw
            ax.stairs(counts, edges, fill=True, color="C0")
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel("f_l" if i + 1 < L else "f_L (logits)")
    axes[0].set_ylabel("count")
    return fig


# Image figures are mosaics: one axes per row of tiles (each Axes costs ~10 ms to build).


def _unit(img: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """``img`` scaled to [0, 1] by ``lo``/``hi`` (default: its own min and max)."""
    lo = float(np.min(img)) if lo is None else lo
    hi = float(np.max(img)) if hi is None else hi
    return (img - lo) / (hi - lo) if hi > lo else np.full_like(img, 0.5)


def _mosaic_axes(
    ax: Axes,
    tiles: Sequence[np.ndarray],
    *,
    labels: Sequence[str] | None = None,
    ncols: int | None = None,
    cmap: str = "gray",
    vmin: float = 0.0,
    vmax: float = 1.0,
    ylabel: str | None = None,
) -> None:
    """Draw 2-D ``tiles`` side by side (``ncols`` per row) with a one-pixel gap, each
    ``labels[i]`` above its tile."""
    k = len(tiles)
    H, W = tiles[0].shape
    ncols = max(1, min(ncols or k, k))
    nrows = math.ceil(k / ncols)
    canvas = np.full((nrows * (H + 1) - 1, ncols * (W + 1) - 1), np.nan)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, ncols)
        canvas[r * (H + 1) : r * (H + 1) + H, c * (W + 1) : c * (W + 1) + W] = tile
    from matplotlib import colormaps

    cm = colormaps[cmap].with_extremes(bad="white")
    ax.imshow(np.ma.masked_invalid(canvas), cmap=cm, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    if labels is not None:
        for i, text in enumerate(labels):
            r, c = divmod(i, ncols)
            ax.text(
                c * (W + 1) + (W - 1) / 2,
                r * (H + 1) - 0.7,
                text,
                ha="center",
                va="bottom",
                fontsize="small",
            )
    if ylabel:
        ax.set_ylabel(ylabel)


def _tile_shape(image_shape: Sequence[int]) -> tuple[int, int]:
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 2:
        raise ValueError(f"image_shape must be (height, width), got {image_shape!r}")
    return shape  # type: ignore[return-value]


def _rows_figure(nrows: int, k: int, hw: tuple[int, int]) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    H, W = hw
    width = min(16.0, 0.2 * k * (W + 1) + 1.2)
    fig = Figure(figsize=(width, nrows * (0.2 * H + 0.6) + 0.5), layout="constrained")
    axes = fig.subplots(nrows, 1, squeeze=False)[:, 0]
    return fig, list(axes)


def saliency_figure(
    X: Any,
    sal: Any,
    image_shape: Sequence[int],
    *,
    labels: Sequence[Any] | None = None,
    max_images: int = 8,
    mean: Any = None,
    scale: Any = None,
) -> Figure:
    """Inputs (top row) above their saliency ``|delta_x|`` (bottom row), for image data.

    X, sal : (n, d) with ``d = prod(image_shape)``; the first ``max_images`` rows are
    drawn (labels above the inputs when given). With ``mean`` and ``scale`` (the dataset's
    standardisation, ``data.mean``, ``data.scale``) the inputs are shown in raw pixels.
    Each tile has its own grey (input) or heat (saliency) scale. Returns a Figure with 2
    axes (the two rows of tiles).
    """
    hw = _tile_shape(image_shape)
    X, sal = _raw(_np(X), mean, scale), _np(sal)
    k = max(1, min(int(max_images), X.shape[0]))
    fig, (top, bottom) = _rows_figure(2, k, hw)
    text = [f"label {labels[j]}" for j in range(k)] if labels is not None else None
    _mosaic_axes(top, [_unit(X[j].reshape(hw)) for j in range(k)], labels=text, ylabel="input")
    _mosaic_axes(
        bottom, [_unit(sal[j].reshape(hw), 0.0) for j in range(k)], cmap="hot", ylabel="|delta_x|"
    )
    fig.suptitle("saliency: |d loss / d x| of each sample")
    return fig


def adversarial_figure(
    X: Any,
    X_adv: Any,
    y_true: Any,
    y_clean: Any,
    y_adv: Any,
    image_shape: Sequence[int],
    *,
    epsilon: float | None = None,
    class_names: Sequence[str] | None = None,
    max_images: int = 8,
    mean: Any = None,
    scale: Any = None,
) -> Figure:
    """Examples that the attack flipped: clean input, adversarial input, perturbation.

    X, X_adv : (n, d) clean and attacked inputs; y_true, y_clean, y_adv : (n,) labels and
    the predictions on each. Shows up to ``max_images`` samples that were right on the
    clean input and wrong on the attacked one (the first ones if none flipped), one column
    each, rows: clean (``true -> predicted``) / adversarial (``-> predicted``) /
    ``X_adv - X`` (blue minus, red plus, one scale for all). With ``mean`` and ``scale``
    (the dataset's standardisation) all three are in raw pixel units. Each column shares
    one grey scale between its clean and adversarial image. Returns a Figure with 3 axes
    (the rows of tiles).
    """
    hw = _tile_shape(image_shape)
    X, X_adv = _raw(_np(X), mean, scale), _raw(_np(X_adv), mean, scale)
    t, c, a = (_np(v).astype(int) for v in (y_true, y_clean, y_adv))
    names = (lambda i: str(class_names[i])) if class_names is not None else str
    flipped = np.flatnonzero((c == t) & (a != t))
    chosen = flipped if flipped.size else np.arange(X.shape[0])
    chosen = chosen[: max(1, int(max_images))]
    clean, adv = [], []
    for i in chosen:
        lo = float(min(X[i].min(), X_adv[i].min()))
        hi = float(max(X[i].max(), X_adv[i].max()))
        clean.append(_unit(X[i].reshape(hw), lo, hi))
        adv.append(_unit(X_adv[i].reshape(hw), lo, hi))
    delta = X_adv[chosen] - X[chosen]
    span = float(np.abs(delta).max()) if delta.size else 0.0
    span = span or 1.0
    fig, (r0, r1, r2) = _rows_figure(3, len(chosen), hw)
    _mosaic_axes(
        r0, clean, labels=[f"{names(t[i])} -> {names(c[i])}" for i in chosen], ylabel="clean"
    )
    _mosaic_axes(r1, adv, labels=[f"-> {names(a[i])}" for i in chosen], ylabel="adversarial")
    _mosaic_axes(
        r2,
        [dl.reshape(hw) for dl in delta],
        cmap="coolwarm",
        vmin=-span,
        vmax=span,
        ylabel="perturbation",
    )
    what = f"eps = {epsilon:g}" if epsilon is not None else "FGSM"
    fig.suptitle(
        f"FGSM ({what}): {flipped.size} of {X.shape[0]} samples flipped (labels: true -> predicted)"
    )
    return fig


def class_visualisation_figure(
    images: Any,
    image_shape: Sequence[int],
    *,
    class_names: Sequence[str] | None = None,
    mean: Any = None,
    scale: Any = None,
) -> Figure:
    """One tile per class: the input that maximises its logit (from
    :func:`mlpx.analysis.inputs.class_visualisation`), 10 tiles a row. images : (C, d), in
    the network's input units; with ``mean`` and ``scale`` (the dataset's standardisation)
    shown in raw pixels, each tile on its own grey scale. Returns a Figure with 1 axes."""
    hw = _tile_shape(image_shape)
    images = _raw(_np(images), mean, scale)
    C = images.shape[0]
    from matplotlib.figure import Figure

    ncols = min(C, 10)
    nrows = math.ceil(C / ncols)
    fig = Figure(
        figsize=(min(16.0, 0.2 * ncols * (hw[1] + 1) + 1.0), nrows * (0.2 * hw[0] + 0.5) + 0.6),
        layout="constrained",
    )
    ax = fig.subplots()
    names = [str(class_names[i]) if class_names is not None else str(i) for i in range(C)]
    _mosaic_axes(ax, [_unit(images[i].reshape(hw)) for i in range(C)], labels=names, ncols=ncols)
    fig.suptitle("inputs that maximise each class's logit (||x|| bounded)")
    return fig
