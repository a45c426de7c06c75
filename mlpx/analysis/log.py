"""The analyses of a run, logged: what the training command calls around ``fit``.

Thin wrappers that compute with :mod:`~mlpx.analysis.sanity`,
:mod:`~mlpx.analysis.gradcheck`, :mod:`~mlpx.analysis.inputs` and
:mod:`~mlpx.analysis.plots`, log to a tracker (the :class:`mlpx.tracking.Tracker`
protocol: ``log_metrics``, ``log_figure``, ``log_text``; never MLflow itself) and return
what they logged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlpx.analysis.gradcheck import GradcheckReport
from mlpx.analysis.inputs import (
    adversarial_metrics,
    class_visualisation,
    fgsm,
    fgsm_accuracy,
    saliency,
)
from mlpx.analysis.sanity import SanityResult
from mlpx.backend import to_numpy
from mlpx.nn.model import MLP

__all__ = ["eval_split", "log_analyses", "log_gradcheck", "log_sanity_checks"]


def eval_split(data: Any) -> tuple[str, np.ndarray, np.ndarray]:
    """The split the analyses use: test, else validation, else training.

    data : a :class:`mlpx.data.Dataset`. Returns ``(name, X (n, d), y (n,))``; raises
    ``ValueError`` when every split is empty.
    """
    for name in ("test", "val", "train"):
        X = getattr(data, f"X_{name}")
        if X.shape[0] > 0:
            return name, X, getattr(data, f"y_{name}")
    raise ValueError("the dataset has no samples to analyse: every split is empty")


def log_sanity_checks(tracker: Any, results: Sequence[SanityResult], step: int = 0) -> None:
    """Set every result's :meth:`~mlpx.analysis.sanity.SanityResult.tags` (``sanity.<name>``
    = passed/failed and its numbers) and log their lines of text as ``sanity_checks.txt``.
    ``step`` is kept for callers; tags have none."""
    tags: dict[str, str] = {}
    for r in results:
        tags.update(r.tags())
    tracker.set_tags(tags)
    tracker.log_text("\n".join(str(r) for r in results) + "\n", "sanity_checks.txt")


def log_gradcheck(tracker: Any, report: GradcheckReport, threshold: float, step: int = 0) -> None:
    """Log a gradient check: its :meth:`~GradcheckReport.metrics` at ``step`` and the
    Markdown table with the verdict at ``threshold`` (``gradcheck/report.md``)."""
    tracker.log_metrics(report.metrics(), step=step)
    tracker.log_text(report.to_markdown(threshold), "gradcheck/report.md")


def log_analyses(
    tracker: Any,
    net: MLP,
    data: Any,
    *,
    history: Mapping[str, Sequence[tuple[int, float]]] | None = None,
    step: int = 0,
    saliency_maps: bool = True,
    adversarial_epsilons: Sequence[float] | None = (0.0, 0.05, 0.1, 0.2, 0.3),
    adversarial_clip: bool = True,
    class_images: Mapping[str, Any] | None = None,
    figures: bool = True,
    draw: bool = True,
    max_images: int = 8,
) -> dict[str, float]:
    """The post-training analyses of a run, logged to ``tracker``; returns the metrics.

    data : a :class:`mlpx.data.Dataset`; the analyses use :func:`eval_split`.
    ``history``: the run's metric history (for the heat map).

    * ``adversarial_epsilons`` (None or empty: off): ``adversarial/accuracy_eps_<e>`` at
      ``step``; for image data, ``figures/adversarial.png`` (flipped examples at the
      largest epsilon). ``adversarial_clip`` keeps the inputs within the training split's
      range.
    * ``saliency_maps``, image data: ``figures/saliency.png``.
    * ``class_images`` (keyword arguments of
      :func:`~mlpx.analysis.inputs.class_visualisation`, e.g.
      ``{"steps": 100, "lr": 0.1, "norm_bound": None}``; None: off), image data:
      ``figures/class_visualisation.png``.
    * ``figures``: ``figures/grad_norm_heatmap.png`` (when ``history`` has gradient
      norms), ``figures/confusion_matrix.png``, ``figures/activation_histograms.png`` and,
      for 2-D data, ``figures/decision_boundary.png``.
    * ``draw=False`` (``logger.log_figures`` off, or no tracker) builds no figure at all:
      only the adversarial metrics are computed.

    Overwrites the network's forward cache; the weights are not changed.
    """
    from mlpx.analysis import plots

    split, X, y = eval_split(data)
    image_shape = getattr(data, "image_shape", None)
    raw = {"mean": getattr(data, "mean", None), "scale": getattr(data, "scale", None)}
    metrics: dict[str, float] = {}
    out_figures: list[tuple[str, Any]] = []

    if adversarial_epsilons:
        clip = (data.X_train.min(axis=0), data.X_train.max(axis=0)) if adversarial_clip else None
        acc = fgsm_accuracy(net, X, y, adversarial_epsilons, clip=clip)
        metrics.update(adversarial_metrics(acc))
        if draw and image_shape is not None:
            eps = max(float(e) for e in adversarial_epsilons)
            X_adv = fgsm(net, X, y, eps, clip=clip)
            y_clean, y_adv = to_numpy(net.predict(X)), to_numpy(net.predict(X_adv))
            fig = plots.adversarial_figure(
                X,
                X_adv,
                y,
                y_clean,
                y_adv,
                image_shape,
                epsilon=eps,
                class_names=data.class_names,
                max_images=max_images,
                **raw,
            )
            out_figures.append(("figures/adversarial.png", fig))
    if draw and image_shape is not None and saliency_maps:
        k = min(max_images, X.shape[0])
        sal = saliency(net, X[:k], y[:k])
        labels = [data.class_names[int(c)] for c in y[:k]]
        fig = plots.saliency_figure(X[:k], sal, image_shape, labels=labels, **raw)
        out_figures.append(("figures/saliency.png", fig))
    if draw and image_shape is not None and class_images is not None:
        images = class_visualisation(net, **dict(class_images))
        fig = plots.class_visualisation_figure(
            images, image_shape, class_names=data.class_names, **raw
        )
        out_figures.append(("figures/class_visualisation.png", fig))
    if draw and figures:
        if history and any(k.startswith("grad_norm/layer_") for k in history):
            out_figures.append(("figures/grad_norm_heatmap.png", plots.grad_norm_heatmap(history)))
        y_pred = to_numpy(net.predict(X))
        fig = plots.confusion_matrix(y, y_pred, data.class_names)
        fig.axes[0].set_title(f"{fig.axes[0].get_title()} on the {split} split")
        out_figures.append(("figures/confusion_matrix.png", fig))
        out_figures.append(
            ("figures/activation_histograms.png", plots.activation_histograms(net, X[:2000]))
        )
        if X.shape[1] == 2:
            fig = plots.decision_boundary(
                net, data.X_train, data.y_train, class_names=data.class_names
            )
            out_figures.append(("figures/decision_boundary.png", fig))
    if metrics:
        tracker.log_metrics(metrics, step=step)
    for name, fig in out_figures:
        tracker.log_figure(fig, name)
    return metrics
