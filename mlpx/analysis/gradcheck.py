"""The gradient check: every delta of backprop against centered finite differences.

For the configured network and a few samples ``(X, y)``, every delta the backward pass
returns (``delta_W_l``, ``delta_b_l``, ``delta_a_l``, ``delta_f_l`` for l = 1..L and
``delta_x``) is compared with the centered difference of the batch-mean loss::

    numeric_i = (loss(theta + eps e_i) - loss(theta - eps e_i)) / (2 eps)

in float64. The network is copied first (float64, same backend when the backend has
float64, else NumPy), so the check exercises the backend's own backward code and leaves
the real network alone. The finite differences are taken on NumPy float64 copies of the
weights, recomputing the forward pass from the perturbed layer onwards only.

Each row of the report is one quantity of one layer:

* ``rel_error``: ``||num - ana||_2 / (||num||_2 + ||ana||_2)`` over the checked entries
  (0 when both vanish; 1 when unrelated). The row-wise norm keeps entries whose gradient
  is tiny (where round-off dominates ``num``) from swamping the error; a derivative off by
  10% gives ~0.05, round-off alone ~1e-9.
* ``max_abs_error``: the worst ``|num_i - ana_i|``.
* ``checked`` of ``total`` entries: sub-sampled (seeded) when ``max_params_per_layer`` is
  smaller than the quantity.
* ``kinks``: checked entries whose ``+eps`` and ``-eps`` evaluations put some unit of a
  kinked activation (one whose derivative jumps at 0: relu, leaky_relu) on different
  sides of its kink. The centered difference is not the derivative there, so these
  entries are left out of the error and counted instead.

Usage::

    report = gradcheck(net, X[:8], y[:8], max_params_per_layer=200)
    print(report.to_markdown())
    assert report.ok(1e-6), report.max_error
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlpx.backend import to_numpy
from mlpx.nn.activations import Activation
from mlpx.nn.losses import softmax_cross_entropy
from mlpx.nn.model import MLP

__all__ = ["QUANTITIES", "GradcheckReport", "float64_copy", "gradcheck", "has_kink"]

#: What can be checked, in the order of the table (per layer; ``delta_x`` once).
QUANTITIES = ("delta_W", "delta_b", "delta_a", "delta_f", "delta_x")


def has_kink(act: Activation) -> bool:
    """True when ``phi'`` jumps at 0 (relu, leaky_relu): finite differences break there."""
    a = np.array([-1e-9, 1e-9])
    d = act.grad(a, act.forward(a, np), np)
    return bool(abs(float(d[1]) - float(d[0])) > 1e-3)


@dataclass
class GradcheckReport:
    """The per-quantity table of a gradient check.

    rows : one dict per quantity and layer, with keys ``layer`` (1..L; 0 for
        ``delta_x``), ``quantity``, ``shape``, ``checked``, ``total``, ``rel_error``,
        ``max_abs_error``, ``kinks``.
    eps : the finite-difference step; n_samples : rows of X used;
    backend : where the analytic deltas were computed.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    eps: float = 1e-6
    n_samples: int = 0
    backend: str = "numpy"

    @property
    def max_error(self) -> float:
        """The largest ``rel_error`` of any row (NaN if a row is NaN, 0 with no rows)."""
        errors = [r["rel_error"] for r in self.rows]
        if any(math.isnan(e) for e in errors):
            return math.nan
        return max(errors, default=0.0)

    @property
    def kinks(self) -> int:
        """Checked entries left out because a perturbation crossed a relu kink."""
        return sum(r["kinks"] for r in self.rows)

    def ok(self, threshold: float = 1e-6) -> bool:
        """True when every row's relative error is at most ``threshold`` (NaN fails)."""
        err = self.max_error
        return not math.isnan(err) and err <= threshold

    def worst(self) -> dict[str, Any] | None:
        """The row with the largest relative error."""
        if not self.rows:
            return None
        return max(self.rows, key=lambda r: -1.0 if math.isnan(r["rel_error"]) else r["rel_error"])

    def metrics(self) -> dict[str, float]:
        """Values to log: ``gradcheck/<quantity>/layer_<l>``, ``gradcheck/delta_x``,
        ``gradcheck/max_rel_error``, ``gradcheck/kinks``."""
        out = {}
        for r in self.rows:
            key = (
                f"gradcheck/{r['quantity']}"
                if r["layer"] == 0
                else f"gradcheck/{r['quantity']}/layer_{r['layer']}"
            )
            out[key] = float(r["rel_error"])
        out["gradcheck/max_rel_error"] = float(self.max_error)
        out["gradcheck/kinks"] = float(self.kinks)
        return out

    def to_markdown(self, threshold: float | None = None) -> str:
        """The table in Markdown; with ``threshold``, a pass/fail column and a verdict."""
        head = ["layer", "quantity", "shape", "checked", "rel. error", "max abs error", "kinks"]
        if threshold is not None:
            head.append("ok")
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            cells = [
                "x" if r["layer"] == 0 else str(r["layer"]),
                r["quantity"],
                "x".join(str(s) for s in r["shape"]),
                f"{r['checked']}/{r['total']}",
                f"{r['rel_error']:.2e}",
                f"{r['max_abs_error']:.2e}",
                str(r["kinks"]),
            ]
            if threshold is not None:
                cells.append("yes" if r["rel_error"] <= threshold else "**NO**")
            lines.append("| " + " | ".join(cells) + " |")
        text = "\n".join(lines)
        summary = (
            f"\n\nmax relative error {self.max_error:.2e} over {self.n_samples} samples, "
            f"eps {self.eps:g}, analytic deltas on {self.backend}, {self.kinks} kink crossings "
            "left out"
        )
        if threshold is not None:
            verdict = "PASS" if self.ok(threshold) else "FAIL"
            summary += f"; threshold {threshold:g}: {verdict}"
        return text + summary + "\n"

    def __repr__(self) -> str:
        return (
            f"GradcheckReport(rows={len(self.rows)}, max_error={self.max_error:.2e}, "
            f"kinks={self.kinks}, n_samples={self.n_samples}, eps={self.eps:g}, "
            f"backend={self.backend!r})"
        )


def float64_copy(net: MLP) -> MLP:
    """``net`` in float64: same sizes, activation objects and weights (cast to float64).

    On the network's own backend when it has float64 (so the check runs that backend's
    backward code), else on NumPy (MPS has no float64). The copy's initial draw uses a
    private seed and is overwritten, so no caller's random generator is consumed.
    """
    same = {"activations": net.activations, "seed": 0, "dtype": "float64", "jit": net.jit}
    try:
        twin = MLP(net.sizes, backend=net.backend, **same)
    except (TypeError, RuntimeError, ValueError):  # e.g. MPS has no float64
        twin = MLP(net.sizes, backend="numpy", **same)
    twin.activation_fns = list(net.activation_fns)  # the very objects (tests patch them)
    twin.weights = [to_numpy(W).astype(np.float64, copy=True) for W in net.weights]
    twin.biases = [to_numpy(b).astype(np.float64, copy=True) for b in net.biases]
    return twin


class _Forward:
    """The loss as a function of one perturbed array, recomputed from that layer on.

    Parameters are NumPy float64 copies; ``f[i]`` is ``f_i`` (n, p_i) with ``f[0] = X``,
    ``a[i]`` is ``a_(i+1)``, as in the model's ``net.cache``.
    """

    def __init__(
        self,
        Ws: list[np.ndarray],
        bs: list[np.ndarray],
        acts: list[Activation],
        X: np.ndarray,
        y: np.ndarray,
    ) -> None:
        self.Ws, self.bs, self.acts, self.y = Ws, bs, acts, y
        self.kinked = [has_kink(act) for act in acts]
        self.a: list[np.ndarray] = []
        self.f: list[np.ndarray] = [X]
        f = X
        for W, b, act in zip(Ws, bs, acts):
            a = f @ W.T + b
            f = act.forward(a, np)
            self.a.append(a)
            self.f.append(f)

    def from_f(self, i: int, f: np.ndarray) -> tuple[float, list[np.ndarray]]:
        """Loss with ``f_i`` replaced by ``f``; the relu masks of the layers after ``i``."""
        masks = []
        for j in range(i, len(self.Ws)):
            a = f @ self.Ws[j].T + self.bs[j]
            if self.kinked[j]:
                masks.append(a > 0)
            f = self.acts[j].forward(a, np)
        return softmax_cross_entropy(f, self.y)[0], masks

    def from_a(self, i: int, a: np.ndarray) -> tuple[float, list[np.ndarray]]:
        """Loss with ``a_(i+1)`` replaced by ``a``."""
        loss, masks = self.from_f(i + 1, self.acts[i].forward(a, np))
        return loss, ([a > 0] if self.kinked[i] else []) + masks

    def from_layer(self, i: int) -> tuple[float, list[np.ndarray]]:
        """Loss with the current ``W_(i+1)``, ``b_(i+1)`` (after a perturbation)."""
        return self.from_f(i, self.f[i])


def _crossed(m1: list[np.ndarray], m2: list[np.ndarray]) -> bool:
    return any(not np.array_equal(p, q) for p, q in zip(m1, m2))


def _pick(total: int, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    if limit is None or limit >= total:
        return np.arange(total)
    return np.sort(rng.choice(total, size=limit, replace=False))


# The loss after a perturbation, with the relu masks of the layers it went through.
_LossFn = Callable[[], tuple[float, list[np.ndarray]]]


def _central(
    target: np.ndarray, flat_idx: np.ndarray, eps: float, loss_fn: _LossFn
) -> tuple[np.ndarray, np.ndarray]:
    """Centered differences of ``loss_fn()`` in the entries ``flat_idx`` of ``target``
    (perturbed in place and restored); also whether each crossed a kink."""
    view = target.reshape(-1)  # a view: target is C-contiguous
    num = np.empty(len(flat_idx))
    kink = np.zeros(len(flat_idx), dtype=bool)
    for k, j in enumerate(flat_idx):
        old = view[j]
        view[j] = old + eps
        up, m_up = loss_fn()
        view[j] = old - eps
        down, m_down = loss_fn()
        view[j] = old
        num[k] = (up - down) / (2.0 * eps)
        kink[k] = _crossed(m_up, m_down)
    return num, kink


def _row(
    layer: int,
    quantity: str,
    shape: tuple[int, ...],
    num: np.ndarray,
    ana: np.ndarray,
    kink: np.ndarray,
) -> dict[str, Any]:
    """One row of the report from the numeric and analytic entries (kinks left out)."""
    keep = ~kink
    n, a = num[keep], ana[keep]
    den = float(np.linalg.norm(n) + np.linalg.norm(a))
    diff = np.abs(n - a)
    return {
        "layer": layer,
        "quantity": quantity,
        "shape": tuple(int(s) for s in shape),
        "checked": len(num),
        "total": int(np.prod(shape)),
        "rel_error": float(np.linalg.norm(n - a) / den) if den > 0 else 0.0,
        "max_abs_error": float(diff.max()) if diff.size else 0.0,
        "kinks": int(kink.sum()),
    }


def gradcheck(
    net: MLP,
    X: Any,
    y: Any,
    *,
    eps: float = 1e-6,
    max_params_per_layer: int | None = None,
    rng: np.random.Generator | int | None = None,
    quantities: tuple[str, ...] = QUANTITIES,
) -> GradcheckReport:
    """Check every delta of ``net`` on ``(X, y)`` against centered finite differences.

    X : (n, d) a few samples (8 is plenty; the cost grows with n), y : (n,) labels.
    eps : the step of the centered difference (float64; 1e-6 balances truncation, eps^2,
        against round-off, 1e-16 / eps).
    max_params_per_layer : check at most this many entries of each quantity of each
        layer (chosen by ``rng``, default seeded 0); None checks them all.
    quantities : a subset of :data:`QUANTITIES`.
    Returns a :class:`GradcheckReport`; ``net`` (its weights and forward cache) is not
    changed and no caller's random generator is consumed.
    """
    unknown = [q for q in quantities if q not in QUANTITIES]
    if unknown:
        raise ValueError(f"quantities must be among {', '.join(QUANTITIES)}, got {unknown}")
    if not (isinstance(eps, int | float) and math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    if max_params_per_layer is not None and (
        isinstance(max_params_per_layer, bool)
        or not isinstance(max_params_per_layer, int | np.integer)
        or max_params_per_layer < 1
    ):
        raise ValueError(
            f"max_params_per_layer must be an integer >= 1 or None, got {max_params_per_layer!r}"
        )
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng or 0)

    ref = float64_copy(net)
    Xb, yb = ref.check_data(X, y)
    _, g = ref.loss_and_grads(Xb, yb, input_grad="delta_x" in quantities)
    Xn = to_numpy(Xb).astype(np.float64, copy=True)
    yn = to_numpy(yb)
    Ws = [to_numpy(W).astype(np.float64, copy=True) for W in ref.weights]
    bs = [to_numpy(b).astype(np.float64, copy=True) for b in ref.biases]
    fw = _Forward(Ws, bs, list(ref.activation_fns), Xn, yn)
    L = len(Ws)

    def check(
        layer: int, quantity: str, target: np.ndarray, analytic: Any, loss_fn: _LossFn
    ) -> dict[str, Any]:
        ana_all = to_numpy(analytic).astype(np.float64).reshape(-1)
        idx = _pick(ana_all.size, max_params_per_layer, rng)
        num, kink = _central(target, idx, eps, loss_fn)
        return _row(layer, quantity, target.shape, num, ana_all[idx], kink)

    report = GradcheckReport(eps=float(eps), n_samples=int(Xn.shape[0]), backend=ref.backend.name)
    for i in range(L):
        l = i + 1
        if "delta_W" in quantities:
            report.rows.append(
                check(l, "delta_W", Ws[i], g.weights[i], lambda i=i: fw.from_layer(i))
            )
        if "delta_b" in quantities:
            report.rows.append(
                check(l, "delta_b", bs[i], g.biases[i], lambda i=i: fw.from_layer(i))
            )
        if "delta_a" in quantities:
            a = fw.a[i].copy()
            report.rows.append(
                check(l, "delta_a", a, g.pre_activations[i], lambda i=i, a=a: fw.from_a(i, a))
            )
        if "delta_f" in quantities:
            f = fw.f[i + 1].copy()
            report.rows.append(
                check(l, "delta_f", f, g.activations[i], lambda i=i, f=f: fw.from_f(i + 1, f))
            )
    if "delta_x" in quantities:
        x = Xn.copy()
        report.rows.append(check(0, "delta_x", x, g.inputs, lambda: fw.from_f(0, x)))
    return report
