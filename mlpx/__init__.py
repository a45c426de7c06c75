"""mlpx: config-driven experiments with the lecture's multilayer perceptron.

The public API::

    from mlpx import MLP, make_optimizer
    net = MLP([64, 128, 64, 10], activations="relu", seed=0)
    loss, g = net.loss_and_grads(X, y)
    make_optimizer("adam", lr=1e-3).step(net.parameters(), g.parameters())

The layers (arrows point down only; DESIGN.md):

    mlpx.app        the commands: cli (Hydra), config, sweep, report, build
    mlpx.train      fit: epochs of steps, logging, early stopping (talks to a Tracker)
    mlpx.data, mlpx.checkpoint, mlpx.analysis, mlpx.tracking
    mlpx.fast       the NumPy hot path (FastStep, FlatOptimizer, Numba kernels)
    mlpx.nn         the lecture: MLP, activations, losses, init, optim, schedules
    mlpx.backend, mlpx.checks   array namespaces; parameter constraints
"""

from mlpx.nn.activations import ACTIVATIONS, Activation
from mlpx.nn.init import INITIALIZERS
from mlpx.nn.losses import delta_f_jacobian_chain, log_softmax, softmax, softmax_cross_entropy
from mlpx.nn.model import MLP, Gradients
from mlpx.nn.optim import OPTIMIZERS, clip_grad_norm, global_norm, make_optimizer
from mlpx.nn.schedules import SCHEDULES, make_schedule
from mlpx.nn.state import flatten_state, unflatten_state

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "INITIALIZERS",
    "MLP",
    "OPTIMIZERS",
    "SCHEDULES",
    "Activation",
    "Gradients",
    "__version__",
    "clip_grad_norm",
    "delta_f_jacobian_chain",
    "flatten_state",
    "global_norm",
    "log_softmax",
    "make_optimizer",
    "make_schedule",
    "softmax",
    "softmax_cross_entropy",
    "unflatten_state",
]
