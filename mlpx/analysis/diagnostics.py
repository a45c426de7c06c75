"""What backprop tells you besides the update: health metrics, sanity checks, input gradients.

The lecture ends with how to use the results of backprop: ``delta_W`` for training,
``delta_x`` "to generate data with constraint", and ``delta_f``, ``delta_a`` "for
debugging, interpreting results, and visualizing the output of the network and its
layers". This module turns each into numbers and arrays (the figures are in
:mod:`mlpx.analysis.plots`, the gradient check in :mod:`mlpx.analysis.gradcheck`):

* :func:`health_metrics` (with :func:`weight_snapshot`): per-layer weight norms, update
  ratios, ``||delta_a_l||``, activation statistics, dead and saturated units, at logging
  steps of the training loop;
* :func:`sanity_checks`: the initial loss is close to ``ln C``, and a copy of the network
  overfits 20 samples;
* :func:`saliency`, :func:`fgsm`, :func:`fgsm_accuracy`: ``delta_x`` as a map of what
  the loss is sensitive to, and as the direction of the fast gradient sign attack;
* :func:`class_visualisation`: gradient ascent on the input to maximise one logit under
  a norm bound, the lecture's "generate data with constraint".

Everything works on the network's own array namespace (``net.xp``: NumPy, torch, CuPy,
array_api_strict) and hands back plain floats or NumPy arrays. Layers are numbered
l = 1..L as in the lecture (metric keys ``<name>/layer_<l>``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlpx.backend import Backend, to_numpy
from mlpx.nn.activations import Activation
from mlpx.nn.losses import one_hot
from mlpx.nn.model import MLP, Gradients

Array = Any

__all__ = [
    "SATURATION",
    "SanityResult",
    "adversarial_metrics",
    "class_visualisation",
    "copy_network",
    "fgsm",
    "fgsm_accuracy",
    "health_metrics",
    "initial_loss_check",
    "input_gradients",
    "log_analyses",
    "log_gradcheck",
    "log_sanity_checks",
    "overfit_check",
    "saliency",
    "sanity_checks",
    "weight_snapshot",
]

#: A unit counts as saturated where ``|tanh| > 0.99`` or ``sigmoid < 0.01`` or ``> 0.99``:
#: there ``phi'`` is below 2% (tanh) or 4% (sigmoid) of its value at 0, so almost no
#: gradient passes. Other saturating activations: ``phi'(a) < SATURATION * phi'(0)``.
SATURATION = 0.01


# --------------------------------------------------------------------------- copies


def copy_network(
    net: MLP, *, dtype: str | None = None, backend: str | Backend | None = None
) -> MLP:
    """An independent copy of ``net``: same sizes, activation objects and weights.

    ``dtype`` / ``backend`` default to the network's own. No random numbers are drawn from
    any generator the caller holds (the copy's initial draw uses a private seed and is
    overwritten), so copying does not change a training run.
    """
    copy = MLP(
        net.sizes,
        activations=net.activations,
        init="glorot_uniform",
        seed=0,
        dtype=dtype or net.dtype,
        backend=net.backend if backend is None else backend,
        jit=net.jit,
    )
    copy.activation_fns = list(net.activation_fns)  # the very objects (tests patch them)
    # np.array(copy=True): on NumPy the setter would otherwise keep the very same arrays
    copy.weights = [np.array(to_numpy(W), copy=True) for W in net.weights]
    copy.biases = [np.array(to_numpy(b), copy=True) for b in net.biases]
    return copy


# --------------------------------------------------------------------------- health metrics


def weight_snapshot(net: MLP) -> list[Array]:
    """Copies of ``W_1 .. W_L`` on the network's device, for :func:`health_metrics`.

    Take one just before ``optimizer.step`` at a logging step (a copy of the weights,
    no transfer to the host); the update ratio is then measured exactly.
    """
    xp = net.xp
    return [xp.asarray(W, copy=True) for W in net.weights]


def _fro(x: Array, xp: Any) -> Array:
    return xp.sqrt(xp.sum(x * x))


def _saturated(act: Activation, a: Array, f: Array, xp: Any) -> Array:
    """Boolean (n, p): which entries of ``f = phi(a)`` sit in a flat tail of phi."""
    if act.name == "tanh":
        return xp.abs(f) > 1.0 - SATURATION
    if act.name == "sigmoid":
        return (f < SATURATION) | (f > 1.0 - SATURATION)
    zero = xp.zeros_like(a[:1, ...])
    d0 = act.grad(zero, act.forward(zero, xp), xp)
    return xp.abs(act.grad(a, f, xp)) < SATURATION * xp.abs(d0)


def health_metrics(
    net: MLP, g: Gradients | None = None, *, before: Sequence[Array] | None = None
) -> dict[str, float]:
    """Per-layer health of the network after a training step, as loggable floats.

    Reads the forward cache of the last ``forward`` (the batch of the step: ``net._a``,
    ``net._f``), the deltas ``g`` of that batch and the current weights. For l = 1..L:

    * ``weight_norm/layer_<l>``: ``||W_l||_F`` (current weights);
    * ``update_ratio/layer_<l>`` (with ``before``, the :func:`weight_snapshot` taken just
      before the step): ``||W_l - W_l^before||_F / ||W_l^before||_F``; ~1e-3 is the
      usual healthy order, 1e-1 too fast, 1e-6 stalled;
    * ``delta_a_norm/layer_<l>`` (with ``g``): ``||delta_a_l||_F`` over the batch;
    * ``activation_mean/layer_<l>``, ``activation_std/layer_<l>``: of every entry of
      ``f_l`` (n, p_l) over the batch (l = L: the logits);
    * ``dead_units/layer_<l>`` for relu-like layers (relu, leaky_relu, elu, gelu, silu):
      the fraction of the layer's p_l units with ``a_l <= 0`` for every sample of the
      batch (for relu: zero output and zero gradient on the whole batch);
    * ``saturated_units/layer_<l>`` for saturating layers (sigmoid, tanh): the fraction of
      entries of ``f_l`` (unit x sample) in a flat tail, see :data:`SATURATION`.

    All values are reduced on the device and come to the host in one transfer.
    """
    if not net._f or len(net._f) != net.num_layers + 1:
        raise RuntimeError("health_metrics needs the forward cache of a batch: call forward(X)")
    xp = net.xp
    keys: list[str] = []
    values: list[Array] = []

    def put(key: str, value: Array) -> None:
        keys.append(key)
        values.append(xp.reshape(value, (1,)))

    with np.errstate(divide="ignore", invalid="ignore"):  # a zero W_l gives inf/NaN ratios
        _health_values(net, g, before, put)
    host = to_numpy(xp.concat(values)) if values else np.zeros(0)
    return {k: float(v) for k, v in zip(keys, host)}


def _health_values(
    net: MLP, g: Gradients | None, before: Sequence[Array] | None, put: Callable
) -> None:
    xp = net.xp
    for i, (W, act) in enumerate(zip(net.weights, net.activation_fns)):
        l = i + 1
        put(f"weight_norm/layer_{l}", _fro(W, xp))
        if before is not None:
            W0 = before[i]
            put(f"update_ratio/layer_{l}", _fro(W - W0, xp) / _fro(W0, xp))
        if g is not None:
            put(f"delta_a_norm/layer_{l}", _fro(g.pre_activations[i], xp))
        f, a = net._f[l], net._a[i]
        put(f"activation_mean/layer_{l}", xp.mean(f))
        put(f"activation_std/layer_{l}", xp.std(f))
        if act.relu_like:
            dead = xp.all(a <= 0, axis=0)
            put(f"dead_units/layer_{l}", xp.mean(xp.astype(dead, f.dtype)))
        elif act.saturating:
            saturated = xp.astype(_saturated(act, a, f, xp), f.dtype)
            put(f"saturated_units/layer_{l}", xp.mean(saturated))


# --------------------------------------------------------------------------- sanity checks


@dataclass(frozen=True)
class SanityResult:
    """One check: its name, whether it passed, its numbers, and a one-line message."""

    name: str
    passed: bool
    numbers: dict[str, float] = field(default_factory=dict)
    message: str = ""

    def metrics(self) -> dict[str, float]:
        """``sanity/<name>/passed`` (1.0 or 0.0) and ``sanity/<name>/<number>``."""
        out = {f"sanity/{self.name}/passed": float(self.passed)}
        out.update({f"sanity/{self.name}/{k}": float(v) for k, v in self.numbers.items()})
        return out

    def __str__(self) -> str:
        return f"{self.name}: {'pass' if self.passed else 'FAIL'}: {self.message}"


def initial_loss_check(
    net: MLP, X: Array, y: Array, *, tolerance: float = 0.5, max_rows: int = 4096
) -> SanityResult:
    """The loss of the untrained network (on the first ``max_rows`` rows) is close to ``ln C``.

    With logits near zero the softmax is uniform and the loss is exactly ``ln C``,
    whatever the labels. Passes when ``|loss - ln C| <= tolerance * ln C``. The default
    50% corresponds to initial logits with a standard deviation below about 1.4 (C = 2) to
    1.7 (C = 10): a network that starts out confidently wrong, from too large an
    initialisation of the last layers or unscaled inputs, fails. Numbers: ``loss``,
    ``expected`` (= ln C), ``relative_deviation``, ``logit_std``.
    """
    C = net.sizes[-1]
    expected = math.log(C)
    X, y = net.check_data(X, y)
    m = min(int(max_rows), int(X.shape[0]))
    loss = net.loss(X[:m, ...], y[:m])
    logit_std = float(net.xp.std(net._f[-1]))
    deviation = abs(loss - expected) / expected
    passed = bool(math.isfinite(loss) and deviation <= tolerance)
    message = (
        f"initial loss {loss:.4f}, ln C = {expected:.4f} (C = {C}), off by {deviation:.0%} "
        f"(tolerance {tolerance:.0%}), logit std {logit_std:.2f}"
    )
    if not passed:
        message += (
            ": the network starts confidently wrong; use a smaller initialisation "
            "(model.init) or standardised inputs"
        )
    return SanityResult(
        "initial_loss",
        passed,
        {
            "loss": float(loss),
            "expected": expected,
            "relative_deviation": deviation,
            "logit_std": logit_std,
        },
        message,
    )


def _default_optimizer() -> Any:
    from mlpx.nn.optim import make_optimizer

    return make_optimizer("adam", lr=1e-2)


def overfit_check(
    net: MLP,
    X: Array,
    y: Array,
    *,
    n_samples: int = 20,
    max_steps: int = 1000,
    make_optimizer: Callable[[], Any] | None = None,
) -> SanityResult:
    """A copy of ``net`` reaches training accuracy 1.0 on the first ``n_samples`` rows.

    Full-batch steps of ``make_optimizer()`` (default: Adam, lr 1e-2) on a copy (same
    backend and dtype) for at most ``max_steps`` steps; the real network, its optimizer
    and every random generator are left untouched. A network that cannot fit 20 points
    has a bug in its gradients, an optimizer that does not move, or too little capacity.
    Numbers: ``steps`` (to accuracy 1.0, or ``max_steps``), ``accuracy``, ``loss``,
    ``n_samples``.
    """
    X, y = net.check_data(X, y)
    m = min(int(n_samples), int(X.shape[0]))
    Xs, ys = X[:m, ...], y[:m]
    copy = copy_network(net)
    opt = (make_optimizer or _default_optimizer)()
    params = copy.parameters()
    xp = copy.xp
    g = None
    steps, acc, loss = 0, 0.0, math.nan
    for steps in range(1, max_steps + 2):
        loss_t, g = copy.batch_loss_and_grads(Xs, ys, out=g)
        acc = float(xp.mean(xp.astype(xp.argmax(copy._f[-1], axis=1) == ys, xp.float64)))
        loss = float(loss_t)
        if acc == 1.0 or steps > max_steps or not math.isfinite(loss):
            break
        opt.step(params, g.parameters())
    steps -= 1  # updates taken before the forward pass that measured ``acc``
    passed = acc == 1.0
    message = f"accuracy {acc:.3f} on {m} samples after {steps} steps, loss {loss:.4f}"
    if not passed:
        message += (
            f": the network cannot overfit {m} samples in {max_steps} full-batch steps; "
            "check the gradients (mlpx mode=gradcheck), the optimizer and the model's capacity"
        )
    return SanityResult(
        "overfit",
        passed,
        {"steps": float(steps), "accuracy": acc, "loss": loss, "n_samples": float(m)},
        message,
    )


def sanity_checks(
    net: MLP,
    X: Array,
    y: Array,
    *,
    loss_tolerance: float = 0.5,
    n_samples: int = 20,
    max_steps: int = 1000,
    make_optimizer: Callable[[], Any] | None = None,
) -> list[SanityResult]:
    """:func:`initial_loss_check` and :func:`overfit_check` on the training data.

    Call before training, on the freshly initialised network: it is not changed (the
    overfit check trains a copy), but its forward cache is overwritten.
    """
    return [
        initial_loss_check(net, X, y, tolerance=loss_tolerance),
        overfit_check(
            net, X, y, n_samples=n_samples, max_steps=max_steps, make_optimizer=make_optimizer
        ),
    ]


# --------------------------------------------------------------------------- input gradients


def input_gradients(net: MLP, X: Array, y: Array, *, batch_size: int = 4096) -> Array:
    """``delta_x`` scaled to each sample's own loss: ``d loss_i / d x_i``, (n, d).

    The backward pass gives the gradient of the batch mean (``1/n`` per row); this
    multiplies it back by the rows of each chunk, so the values do not depend on n or
    ``batch_size``. Returns an array of the network's backend. Overwrites the forward
    cache.
    """
    X, y = net.check_data(X, y)
    xp = net.xp
    n = X.shape[0]
    parts = []
    for s in range(0, n, batch_size):
        e = min(s + batch_size, n)
        _, g = net.batch_loss_and_grads(X[s:e, ...], y[s:e], input_grad=True)
        parts.append(g.inputs * (e - s))
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)


def saliency(net: MLP, X: Array, y: Array) -> np.ndarray:
    """``|d loss_i / d x_i|`` (n, d) as NumPy: how much each input feature moves the loss
    of its own sample (true labels ``y``). For images, reshape rows to the image."""
    xp = net.xp
    return to_numpy(xp.abs(input_gradients(net, X, y)))


def _clip(X: Array, clip: tuple[Any, Any] | None, xp: Any, net: MLP) -> Array:
    if clip is None:
        return X
    lo, hi = (net.backend.asarray(np.asarray(v, dtype=np.float64), net.dtype) for v in clip)
    return xp.minimum(xp.maximum(X, lo), hi)


def fgsm(
    net: MLP,
    X: Array,
    y: Array,
    epsilon: float,
    *,
    clip: tuple[Any, Any] | None = None,
    delta_x: Array | None = None,
) -> np.ndarray:
    """The fast gradient sign method: ``x + epsilon * sign(delta_x)``, (n, d) NumPy.

    One step of size ``epsilon`` per feature (max-norm) in the direction that increases
    each sample's loss. ``clip = (low, high)`` (scalars or (d,) arrays, e.g. the training
    split's per-feature min and max) keeps the result in the data range. Pass
    ``delta_x`` (from :func:`input_gradients`) to reuse it across epsilons.
    """
    xp = net.xp
    X, y = net.check_data(X, y)
    if delta_x is None:
        delta_x = input_gradients(net, X, y)
    return to_numpy(_clip(X + epsilon * xp.sign(delta_x), clip, xp, net))


def fgsm_accuracy(
    net: MLP,
    X: Array,
    y: Array,
    epsilons: Sequence[float],
    *,
    clip: tuple[Any, Any] | None = None,
) -> dict[float, float]:
    """Accuracy on FGSM inputs at each epsilon: ``{epsilon: accuracy}``.

    ``delta_x`` is computed once on the clean inputs and reused for every epsilon (the
    one-step attack); epsilon = 0 gives the clean accuracy. Epsilons are in the units of
    X (standard deviations for standardised data).
    """
    xp = net.xp
    X, y = net.check_data(X, y)
    dx = xp.sign(input_gradients(net, X, y))
    out = {}
    for eps in epsilons:
        X_adv = _clip(X + float(eps) * dx, clip, xp, net)
        out[float(eps)] = net.evaluate(X_adv, y, validate=False)[1]
    return out


def adversarial_metrics(accuracy: Mapping[float, float]) -> dict[str, float]:
    """``{"adversarial/accuracy_eps_<e>": acc}`` from :func:`fgsm_accuracy` (``e`` as
    ``%g``: 0, 0.05, 0.1)."""
    return {f"adversarial/accuracy_eps_{eps:g}": float(acc) for eps, acc in accuracy.items()}


def class_visualisation(
    net: MLP,
    *,
    steps: int = 100,
    lr: float = 0.1,
    norm_bound: float | None = None,
    classes: Sequence[int] | None = None,
) -> np.ndarray:
    """Inputs that maximise each class's logit under ``||x||_2 <= norm_bound``, (k, d).

    The lecture's "use delta_x to generate data with constraint": projected gradient
    ascent on the input. Each row starts at 0 (the mean of standardised data); a forward
    pass, then ``backward(delta_f = one-hot(c))`` gives ``delta_x = d f_(L,c) / dx`` for
    every class at once; each step moves x by ``lr * norm_bound`` along the normalised
    gradient, then projects back onto the ball. ``norm_bound`` defaults to ``sqrt(d)``,
    the typical norm of a standardised sample. ``classes`` defaults to all C. Overwrites
    the forward cache.
    """
    d, C = net.sizes[0], net.sizes[-1]
    bound = math.sqrt(d) if norm_bound is None else float(norm_bound)
    if not (math.isfinite(bound) and bound > 0):
        raise ValueError(f"norm_bound must be a positive number, got {norm_bound!r}")
    cls = list(range(C)) if classes is None else [int(c) for c in classes]
    xp = net.xp
    k = len(cls)
    x = net.backend.asarray(np.zeros((k, d)), net.dtype)
    target = one_hot(net.backend.asarray(np.asarray(cls, dtype=np.int64)), C, x.dtype, xp)
    tiny = 1e-12
    for _ in range(steps):
        net.forward(x, validate=False)
        gx = net.backward(target, input_grad=True).inputs
        gnorm = xp.sqrt(xp.sum(gx * gx, axis=1, keepdims=True))
        x = x + (lr * bound) * gx / (gnorm + tiny)
        norm = xp.sqrt(xp.sum(x * x, axis=1, keepdims=True))
        scale = bound / xp.maximum(norm, xp.full_like(norm, bound))
        x = x * scale
    return to_numpy(x)


# --------------------------------------------------------------------------- logging helpers
# Thin wrappers for the training loop and the command: they compute, log to a Tracker
# (mlpx.tracking: log_metrics / log_figure / log_text) and return what they logged.


def _eval_split(data: Any) -> tuple[str, np.ndarray, np.ndarray]:
    """The test split, else validation, else training: ``(name, X, y)``."""
    for name in ("test", "val", "train"):
        X = getattr(data, f"X_{name}")
        if X.shape[0] > 0:
            return name, X, getattr(data, f"y_{name}")
    raise ValueError("the dataset has no samples to analyse")


def log_sanity_checks(tracker: Any, results: Sequence[SanityResult], step: int = 0) -> None:
    """Log every result's :meth:`SanityResult.metrics` at ``step`` and the lines of text
    as ``sanity_checks.txt``."""
    metrics: dict[str, float] = {}
    for r in results:
        metrics.update(r.metrics())
    tracker.log_metrics(metrics, step=step)
    tracker.log_text("\n".join(str(r) for r in results) + "\n", "sanity_checks.txt")


def log_gradcheck(tracker: Any, report: Any, threshold: float, step: int = 0) -> None:
    """Log a :class:`mlpx.analysis.gradcheck.GradcheckReport`: its metrics and the Markdown table
    (``gradcheck/report.md``)."""
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

    data : a :class:`mlpx.data.Dataset`. Analyses use the test split (else val, else
    train). ``history``: the run's metric history (for the heat map).

    * ``adversarial_epsilons`` (None or empty: off): ``adversarial/accuracy_eps_<e>`` at
      ``step``; for image data, ``figures/adversarial.png`` (flipped examples at the
      largest epsilon). ``adversarial_clip`` keeps the inputs within the training split's
      range.
    * ``saliency_maps``, image data: ``figures/saliency.png``.
    * ``class_images`` (keyword arguments of :func:`class_visualisation`, e.g.
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

    split, X, y = _eval_split(data)
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
