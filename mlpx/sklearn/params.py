"""The estimator's parameters: declared once, checked at ``fit`` with scikit-learn's wording.

:data:`PARAMS` maps every constructor argument of :class:`mlpx.sklearn.MLPClassifier` to
an :mod:`mlpx.checks` constraint. :func:`check_estimator_params` checks them all when
``fit`` starts (never in ``__init__``, as scikit-learn requires) and raises
``ValueError("The 'alpha' parameter of MLPClassifier must be a non-negative finite number.
Got -1 instead.")``. :func:`build_optimizer` turns the checked values into an
:mod:`mlpx.nn.optim` optimizer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlpx.checks import (
    Choice,
    Constraint,
    Flag,
    Integer,
    Number,
    OneOf,
    Optional,
    Switch,
    Text,
)
from mlpx.nn.activations import ACTIVATIONS
from mlpx.nn.init import INITIALIZERS
from mlpx.nn.optim import OPTIMIZERS, Optimizer, check_hyperparameters, make_optimizer
from mlpx.nn.schedules import check_schedule

__all__ = [
    "ACTIVATION_ALIASES",
    "PARAMS",
    "SOLVERS",
    "activation_names",
    "build_optimizer",
    "check_estimator_params",
]

#: scikit-learn's activation names -> mlpx's (:data:`mlpx.ACTIVATIONS` also accepted).
ACTIVATION_ALIASES = {"identity": "linear", "logistic": "sigmoid"}
#: ``solver``: every rule of :data:`mlpx.OPTIMIZERS` (scikit-learn's ``sgd`` and ``adam``
#: among them; ``lbfgs`` is not a mini-batch rule and is not offered).
SOLVERS = tuple(sorted(OPTIMIZERS))
_ACTIVATIONS = tuple([*ACTIVATION_ALIASES, *ACTIVATIONS])


class _Verbose(Constraint):
    def describe(self) -> str:
        return "a bool or an integer >= 0"

    def check(self, key: str, value: Any) -> Any:
        if isinstance(value, bool | np.bool_):
            return bool(value)
        return Integer(low=0).check(key, value)


class _RandomState(Constraint):
    def describe(self) -> str:
        return "None, an integer in [0, 2**32 - 1], a numpy.random.RandomState or Generator"

    def check(self, key: str, value: Any) -> Any:
        if value is None or isinstance(value, np.random.RandomState | np.random.Generator):
            return value
        return Integer(0, 2**32 - 1).check(key, value)


class _Anything(Constraint):
    """Checked elsewhere (the value's own message is more precise)."""

    def describe(self) -> str:
        return "see the docstring"

    def check(self, key: str, value: Any) -> Any:
        return value


_UNIT_OPEN = Number(0, 1, high_open=True)
_POSITIVE = Number(0, low_open=True)

#: Every constructor argument and its constraint (one entry per ``__init__`` argument).
PARAMS: dict[str, Constraint] = {
    "hidden_layer_sizes": _Anything(),
    "activation": Choice(_ACTIVATIONS),
    "solver": Choice(SOLVERS),
    "alpha": Number(0),
    "batch_size": OneOf((Choice(("auto",)), Integer(low=1))),
    "learning_rate_init": _POSITIVE,
    "max_iter": Integer(low=1),
    "shuffle": Flag(),
    "random_state": _RandomState(),
    "tol": Number(0),
    "verbose": _Verbose(),
    "warm_start": Flag(),
    "momentum": Number(0, 1),
    "nesterovs_momentum": Flag(),
    "early_stopping": Flag(),
    "validation_fraction": _UNIT_OPEN,
    "beta_1": _UNIT_OPEN,
    "beta_2": _UNIT_OPEN,
    "epsilon": _POSITIVE,
    "n_iter_no_change": OneOf((Integer(low=1), Choice(("inf",)))),
    "activations": _Anything(),
    "init": Choice(tuple(INITIALIZERS)),
    "optimizer": _Anything(),
    "schedule": _Anything(),
    "clip_norm": Optional(_POSITIVE),
    "dtype": Choice(("float64", "float32")),
    "backend": _Anything(),
    "device": Optional(Text("a device name (cpu, cuda, cuda:1, mps)")),
    "jit": Switch(),
}


def _fail(owner: str, key: str, what: str, value: Any) -> ValueError:
    return ValueError(f"The {key!r} parameter of {owner} must be {what}. Got {value!r} instead.")


def _hidden_sizes(owner: str, value: Any) -> list[int]:
    what = "a positive integer or a sequence of positive integers (widths of the hidden layers)"
    items = [value] if not isinstance(value, Sequence | np.ndarray) else list(value)
    if isinstance(value, str | bytes) or np.ndim(value) > 1:
        raise _fail(owner, "hidden_layer_sizes", what, value)
    for p in items:
        if isinstance(p, bool | np.bool_) or not isinstance(p, int | np.integer) or p <= 0:
            raise _fail(owner, "hidden_layer_sizes", what, value)
    return [int(p) for p in items]


def activation_names(activation: str, activations: Any, n_hidden: int, owner: str) -> list[str]:
    """mlpx names of ``phi_1 .. phi_L``: the hidden layers' (``activations`` per layer, else
    ``activation`` for all), then ``linear`` for the output layer (softmax logits)."""
    if activations is None:
        names = [activation] * n_hidden
    else:
        what = f"None or a list of {n_hidden} activation names (one per hidden layer)"
        if isinstance(activations, str) or not isinstance(activations, Sequence):
            raise _fail(owner, "activations", what, activations)
        names = list(activations)
        if len(names) != n_hidden or any(n not in _ACTIVATIONS for n in names):
            raise _fail(owner, "activations", f"{what} from {', '.join(_ACTIVATIONS)}", activations)
    return [ACTIVATION_ALIASES.get(n, n) for n in names] + ["linear"]


def check_estimator_params(est: Any) -> dict[str, Any]:
    """Every parameter of ``est`` checked (the values ``fit`` uses), or ``ValueError`` with
    scikit-learn's wording: ``The 'alpha' parameter of MLPClassifier must be ... Got -1
    instead.`` Hyper-parameters that depend on each other (``optimizer`` for the solver,
    ``schedule``) are checked by :func:`build_optimizer`'s calls into :mod:`mlpx.nn.optim`."""
    owner = type(est).__name__
    params = est.get_params(deep=False)
    out: dict[str, Any] = {}
    for key, constraint in PARAMS.items():
        value = params[key]
        if key == "n_iter_no_change" and isinstance(value, float) and math.isinf(value):
            out[key] = math.inf
            continue
        try:
            out[key] = constraint.check(key, value)
        except ValueError:
            raise _fail(owner, key, constraint.describe(), value) from None
    out["hidden_layer_sizes"] = _hidden_sizes(owner, params["hidden_layer_sizes"])
    out["activation_names"] = activation_names(
        out["activation"], params["activations"], len(out["hidden_layer_sizes"]), owner
    )
    opt = params["optimizer"]
    if opt is not None and not isinstance(opt, Mapping):
        raise _fail(owner, "optimizer", "None or a dict of the solver's hyper-parameters", opt)
    if opt is not None and "lr" in opt:
        raise _fail(owner, "optimizer", "a dict without 'lr' (use learning_rate_init)", opt)
    try:
        out["schedule"] = check_schedule(params["schedule"], key="schedule")
        check_hyperparameters(out["solver"], solver_hparams(out, opt), prefix="optimizer.")
    except ValueError as exc:
        raise ValueError(f"Invalid parameter of {owner}: {exc}") from None
    backend = params["backend"]
    if not isinstance(backend, str) or not backend:
        raise _fail(owner, "backend", "a backend name (numpy, torch, cupy, ...)", backend)
    return out


def solver_hparams(p: Mapping[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """The optimizer's hyper-parameters from the scikit-learn-named ones (``momentum``,
    ``nesterovs_momentum``, ``beta_1``, ``beta_2``, ``epsilon``: where the rule has them),
    then ``extra`` (the ``optimizer`` dict), which wins."""
    solver = p["solver"]
    hp: dict[str, Any] = {"lr": p["learning_rate_init"]}
    if solver in ("sgd", "momentum", "nesterov"):
        hp["momentum"] = p["momentum"]
        if solver == "sgd":
            hp["nesterov"] = bool(p["nesterovs_momentum"]) and p["momentum"] > 0
    elif solver in ("adam", "adamw"):
        hp["betas"] = (p["beta_1"], p["beta_2"])
        hp["eps"] = p["epsilon"]
    hp.update(dict(extra or {}))
    return hp


def build_optimizer(p: Mapping[str, Any], extra: Mapping[str, Any] | None) -> Optimizer:
    """The checked parameters ``p`` as an :mod:`mlpx.nn.optim` optimizer (``jit`` passed on)."""
    hp = solver_hparams(p, extra)
    lr = hp.pop("lr")
    return make_optimizer(p["solver"], lr=lr, schedule=p["schedule"], jit=p["jit"], **hp)
