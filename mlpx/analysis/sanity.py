"""Sanity checks before training: two cheap tests that catch most broken set-ups.

* :func:`initial_loss_check`: the untrained network's loss is close to ``ln C``. With
  logits near 0 the softmax is uniform, ``mu = 1/C``, and ``l = -y^T log mu = ln C``
  whatever the labels.
* :func:`overfit_check`: a copy of the network fits 20 training samples exactly. A network
  that cannot has a bug in its gradients, an optimizer that does not move, or too little
  capacity.

:func:`sanity_checks` runs both; each returns a :class:`SanityResult` (pass or fail, its
numbers, a one-line message that says what to do). The network itself, its optimizer and
every random generator the caller holds are left untouched (only its forward cache is
overwritten).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlpx.nn.losses import softmax_cross_entropy
from mlpx.nn.model import MLP

Array = Any

__all__ = ["SanityResult", "initial_loss_check", "overfit_check", "sanity_checks"]


@dataclass(frozen=True)
class SanityResult:
    """One check: its name, whether it passed, its numbers, and a one-line message."""

    name: str
    passed: bool
    numbers: dict[str, float] = field(default_factory=dict)
    message: str = ""

    def tags(self) -> dict[str, str]:
        """Run tags: ``sanity.<name>`` = ``passed`` or ``failed``, and its numbers as
        ``sanity.<name>.<number>`` (6 significant digits). Tags, not metrics: a verdict and
        a few numbers measured once, kept off the run's metric list and charts."""
        out = {f"sanity.{self.name}": "passed" if self.passed else "failed"}
        out.update({f"sanity.{self.name}.{k}": f"{float(v):.6g}" for k, v in self.numbers.items()})
        return out

    def __str__(self) -> str:
        return f"{self.name}: {'pass' if self.passed else 'FAIL'}: {self.message}"


def initial_loss_check(
    net: MLP, X: Array, y: Array, *, tolerance: float = 0.5, max_rows: int = 4096
) -> SanityResult:
    """The loss of the untrained network on the first ``max_rows`` rows is close to ``ln C``.

    X : (n, d), y : (n,) labels. Passes when ``|loss - ln C| <= tolerance * ln C``. The
    default 50% corresponds to initial logits with a standard deviation below about 1.4
    (C = 2) to 1.7 (C = 10): a network that starts out confidently wrong, from too large an
    initialisation of the last layers or unscaled inputs, fails. Numbers: ``loss``,
    ``expected`` (= ln C), ``relative_deviation``, ``logit_std`` (of every entry of the
    logits ``f_L``, (m, C)).
    """
    C = net.sizes[-1]
    expected = math.log(C)
    X, y = net.check_data(X, y)
    m = min(int(max_rows), int(X.shape[0]))
    logits = net.forward(X[:m, ...], validate=False)
    loss, _ = softmax_cross_entropy(logits, y[:m])
    logit_std = float(net.xp.std(logits))
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
    """Adam with lr 1e-2: what :func:`overfit_check` uses unless told otherwise."""
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

    Full-batch steps of ``make_optimizer()`` (default: Adam, lr 1e-2) on
    ``copy.deepcopy(net)`` (same backend and dtype) for at most ``max_steps`` steps; the
    accuracy is read from the logits ``f_L`` of each step's own forward pass
    (``copy.cache.f[-1]``, (m, C)), before its update. The real network, its optimizer
    and every random generator are left untouched. Numbers: ``steps`` (updates taken
    before accuracy 1.0, or ``max_steps``), ``accuracy``, ``loss``, ``n_samples``.
    """
    X, y = net.check_data(X, y)
    m = min(int(n_samples), int(X.shape[0]))
    Xs, ys = X[:m, ...], y[:m]
    twin = copy.deepcopy(net)
    opt = (make_optimizer or _default_optimizer)()
    params = twin.parameters()
    xp = twin.xp
    g = None
    steps, acc, loss = 0, 0.0, math.nan
    for steps in range(1, max_steps + 2):
        loss_t, g = twin.batch_loss_and_grads(Xs, ys, out=g)
        hits = xp.argmax(twin.cache.f[-1], axis=1) == ys
        acc = float(xp.mean(xp.astype(hits, xp.float64)))
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

    X : (n, d), y : (n,). Call before training, on the freshly initialised network: it is
    not changed (the overfit check trains a copy), but its forward cache is overwritten.
    """
    return [
        initial_loss_check(net, X, y, tolerance=loss_tolerance),
        overfit_check(
            net, X, y, n_samples=n_samples, max_steps=max_steps, make_optimizer=make_optimizer
        ),
    ]
