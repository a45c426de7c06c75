"""One epoch of the estimator's training: mlpx's step plus scikit-learn's L2 and sample weights.

scikit-learn's ``MLPClassifier`` minimises, on a mini-batch ``B`` with sample weights ``w``
(all ones without ``sample_weight``)::

    loss_B = sum_(i in B) w_i l_i / s_B + alpha / (2 s_B) * sum_l ||W_l||_F^2
    s_B = sum_(i in B) w_i

so its gradients are the weighted mean loss gradient plus ``alpha / s_B * W_l`` on the
weights only (not on the biases). :class:`Trainer` reproduces exactly that:

* without sample weights, mlpx's own step (:class:`mlpx.fast.step.FastStep` on NumPy,
  :class:`mlpx.train.GenericStep` elsewhere) computes the mean loss and its gradients, and
  ``alpha / n_B * W_l`` is added to ``g.weights[l]`` in place before the update;
* with sample weights, :func:`weighted_loss_and_grads` runs the lecture's code
  (:meth:`mlpx.MLP.forward`, :meth:`mlpx.MLP.backward`) with ``delta_f_L`` row ``i`` scaled by
  ``w_i / s_B`` (B3 with weights), and the result is written into the step's gradients.

``clip_norm`` then clips the global gradient norm; the optimizer updates every parameter.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mlpx.backend import is_numpy
from mlpx.data import iterate_minibatches
from mlpx.nn.losses import log_softmax, one_hot
from mlpx.nn.model import MLP, Gradients
from mlpx.nn.optim import Optimizer, clip_grad_norm, global_norm
from mlpx.train import make_step

__all__ = ["Trainer", "weighted_loss_and_grads"]


def weighted_loss_and_grads(
    net: MLP, X: Any, y: Any, w: Any, denom: float
) -> tuple[float, Gradients]:
    """``sum_i w_i l_i / denom`` and its gradients, through the lecture's code.

    X : (n, d) and y : (n,) on the network's backend (checked); w : (n,) weights.
    ``delta_f_L = diag(w / denom) (mu - Y)`` (B3 with weights), then B7 as usual.
    """
    xp = net.xp
    logits = net.forward(X, validate=False)
    log_mu = log_softmax(logits)
    Y = one_hot(y, logits.shape[1], logits.dtype, xp)
    coef = w / denom
    loss = -float(xp.sum(coef * xp.sum(log_mu * Y, axis=1)))
    delta_f = (xp.exp(log_mu) - Y) * coef[:, None]
    return loss, net.backward(delta_f)


def _squared(a: Any) -> float:
    if type(a) is np.ndarray:
        v = a.reshape(-1)
        return float(v @ v)
    return global_norm([a]) ** 2


class Trainer:
    """The parts of a fit that live between epochs: the network, the optimizer, the step.

    net : the :class:`~mlpx.MLP` being trained; optimizer : an :mod:`mlpx.nn.optim` rule;
    alpha : scikit-learn's L2 strength; clip_norm : the global gradient norm bound or None.
    """

    def __init__(self, net: MLP, optimizer: Optimizer, alpha: float, clip_norm: float | None):
        self.net, self.optimizer = net, optimizer
        self.alpha, self.clip_norm = alpha, clip_norm
        self.step = make_step(net, optimizer)
        self.numpy = is_numpy(net.xp)

    def _weights_squared(self) -> float:
        return sum(_squared(W) for W in self.net.weights)

    def epoch(
        self,
        X: Any,
        y: Any,
        w: Any | None,
        batch_size: int,
        rng: np.random.Generator,
        shuffle: bool,
    ) -> tuple[float, dict[str, float]]:
        """One pass over (X, y) (checked by ``net.check_data``; ``w`` (n,) weights or None).

        Returns ``(loss, grad_norms)``: scikit-learn's epoch loss (each batch's penalised
        loss weighted by its number of rows, divided by n) and the mean over the epoch's steps
        of ``grad_norm/layer_<l>`` (``||delta_W_l||_F``) and ``grad_norm/global``, measured on
        the gradients the optimizer receives before clipping.
        """
        net, step, alpha = self.net, self.step, self.alpha
        n = y.shape[0]
        L = net.num_layers
        total = 0.0
        sums = [0.0] * (L + 1)
        steps = 0
        for rows in iterate_minibatches(n, batch_size, rng, shuffle):
            nb = rows.shape[0]
            if not self.numpy:
                rows = net.backend.asarray(rows)
            if w is None:
                loss, _, g = step.train_batch(X, y, rows)
                denom = float(nb)
            else:
                xp = net.xp
                wb = xp.take(w, rows, axis=0)
                denom = float(xp.sum(wb))
                if denom == 0.0:  # every row of this batch weighs 0: nothing to learn
                    continue
                Xb, yb = xp.take(X, rows, axis=0), xp.take(y, rows, axis=0)
                loss, g_w = weighted_loss_and_grads(net, Xb, yb, wb, denom)
                g = self._adopt_grads(g_w)
            if alpha:
                total += (float(loss) + 0.5 * alpha * self._weights_squared() / denom) * nb
                c = alpha / denom
                for gW, W in zip(g.weights, net.weights):
                    gW += c * W
            else:
                total += float(loss) * nb
            sq = [_squared(gW) for gW in g.weights]
            sq_all = sum(sq) + sum(_squared(gb) for gb in g.biases)
            for i, s in enumerate(sq):
                sums[i] += math.sqrt(s)
            sums[L] += math.sqrt(sq_all)
            if self.clip_norm is not None:
                clip_grad_norm(g.parameters(), self.clip_norm)
            step.update()
            steps += 1
        norms = {f"grad_norm/layer_{i + 1}": sums[i] / max(steps, 1) for i in range(L)}
        norms["grad_norm/global"] = sums[L] / max(steps, 1)
        return total / n, norms

    def _adopt_grads(self, g_w: Gradients) -> Gradients:
        """Put gradients computed outside the step where its ``update`` reads them."""
        step = self.step
        if self.numpy:  # FastStep: copy into the flat gradient buffer's views
            g = step.g
            for dst, src in zip(g.parameters(), g_w.parameters()):
                dst[...] = src
            return g
        step.g = g_w  # GenericStep reads step.g
        return g_w
