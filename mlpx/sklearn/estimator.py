""":class:`MLPClassifier`: the lecture's :class:`~mlpx.MLP` as a scikit-learn classifier."""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_array
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from mlpx.backend import to_numpy
from mlpx.nn.losses import log_softmax, softmax
from mlpx.nn.model import MLP
from mlpx.sklearn.params import build_optimizer, check_estimator_params
from mlpx.sklearn.training import Trainer

__all__ = ["MLPClassifier"]


def _make_rng(random_state: Any) -> np.random.Generator:
    """One NumPy Generator for init, shuffling and the validation split (DESIGN.md rule 5):
    an int seeds it (``MLP(seed=random_state)`` draws the same initial weights), a
    RandomState or Generator passed in is drawn from (so successive fits differ)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    return np.random.default_rng(random_state)


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron classifier: mlpx's :class:`~mlpx.MLP` and training step behind
    scikit-learn's ``MLPClassifier`` interface.

    The parameters named as in :class:`sklearn.neural_network.MLPClassifier` mean the same
    (softmax cross-entropy, ``alpha`` the L2 penalty ``alpha / (2 n_B) sum ||W||^2`` of each
    mini-batch on the weights only, ``batch_size='auto'`` = ``min(200, n)``, stopping after
    ``n_iter_no_change`` epochs without a ``tol`` improvement of the training loss, or of the
    validation accuracy with ``early_stopping``). Differences: no ``lbfgs`` (the solvers are
    mlpx's mini-batch rules), no ``learning_rate``/``power_t`` (use ``schedule``), biases
    start at zero, and the output layer always has one unit per class (also for two classes:
    ``n_outputs_ == 2``, ``out_activation_ == 'softmax'``).

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Widths ``p_1 .. p_(L-1)`` of the hidden layers (``()``: no hidden layer).
    activation : str, default='relu'
        Activation of every hidden layer: scikit-learn's ``identity``, ``logistic``,
        ``tanh``, ``relu`` or any name of :data:`mlpx.ACTIVATIONS` (``gelu``, ``silu``, ...).
    solver : str, default='adam'
        The update rule, a name of :data:`mlpx.OPTIMIZERS`: ``sgd``, ``adam`` (as in
        scikit-learn), ``momentum``, ``nesterov``, ``adamw``, ``rmsprop``, ``adagrad``.
    alpha : float, default=1e-4
        L2 strength, scaled as in scikit-learn (see above).
    batch_size : int or 'auto', default='auto'
        Mini-batch size; larger than n is clipped to n (with a warning).
    learning_rate_init : float, default=1e-3
        The learning rate (of the first step, before any ``schedule``).
    max_iter : int, default=200
        Maximum number of epochs.
    shuffle : bool, default=True
        Shuffle the rows every epoch.
    random_state : None, int, RandomState or Generator, default=None
        Seeds the initial weights, the shuffling and the validation split.
    tol, n_iter_no_change : float, int (or inf), defaults 1e-4, 10
        Stop after more than ``n_iter_no_change`` epochs without an improvement of ``tol``.
    verbose : bool or int, default=False
        Print the loss (and validation score) of every epoch.
    warm_start : bool, default=False
        ``fit`` continues from the previous solution (a new optimizer, as in scikit-learn).
    momentum, nesterovs_momentum : float, bool, defaults 0.9, True
        For ``solver='sgd'`` (and ``momentum``/``nesterov``).
    early_stopping, validation_fraction : bool, float, defaults False, 0.1
        Hold out a stratified ``validation_fraction`` and stop on its accuracy; the best
        epoch's parameters are kept.
    beta_1, beta_2, epsilon : float, defaults 0.9, 0.999, 1e-8
        Adam's (and AdamW's) ``betas`` and ``eps``.
    activations : list of str or None, default=None
        mlpx: one activation per hidden layer, overriding ``activation``.
    init : str, default='glorot_uniform'
        mlpx: the weight initialiser, a name of :data:`mlpx.INITIALIZERS`.
    optimizer : dict or None, default=None
        mlpx: further hyper-parameters of the solver's rule (``{"amsgrad": True}``,
        ``{"weight_decay": 1e-2}``, ``{"alpha": 0.9}`` for rmsprop); they override the
        scikit-learn-named ones. ``lr`` is ``learning_rate_init``.
    schedule : None, str, dict or Schedule, default=None
        mlpx: learning-rate schedule over optimizer steps (:data:`mlpx.SCHEDULES`), e.g.
        ``{"name": "cosine", "T_max": 1000}``.
    clip_norm : float or None, default=None
        mlpx: clip the global gradient norm of every step to this value.
    dtype : {'float64', 'float32'}, default='float64'
        mlpx: the network's floating-point type (X is converted to it).
    backend : str, default='numpy'
        mlpx: where the arrays live (``numpy``, ``torch``, ``cupy``, ...; see
        :data:`mlpx.backend.BACKENDS`). Inputs and outputs stay NumPy arrays.
    device : str or None, default=None
        mlpx: the backend's device (``cpu``, ``cuda``, ``cuda:1``, ``mps``); None: its default.
    jit : {'auto', 'true', 'false'} or bool, default='auto'
        mlpx: whether the NumPy step may use its Numba kernels.

    Attributes
    ----------
    classes_ : ndarray (n_classes,)
    coefs_, intercepts_ : lists of ndarray, ``coefs_[i]`` of shape (p_i, p_(i+1)) (scikit-learn's
        orientation: ``net_.weights[i].T``, a view), ``intercepts_[i]`` (p_(i+1),)
    n_iter_, t_ : epochs run, rows seen
    loss_, loss_curve_, best_loss_ : the last epoch's loss, every epoch's, the best (None
        with ``early_stopping``)
    validation_scores_, best_validation_score_ : with ``early_stopping`` (else None)
    n_features_in_, feature_names_in_, n_layers_, n_outputs_, out_activation_
    net_ : mlpx.MLP
        The trained network (lecture orientation: ``weights[i]`` (p_(i+1), p_i)).
    optimizer_ : mlpx.nn.optim.Optimizer
        The optimizer with its state (``partial_fit`` continues it).
    grad_norms_ : list of dict
        Per epoch, the mean over its steps of ``grad_norm/layer_<l>`` and
        ``grad_norm/global`` (mlpx's metric keys), before clipping.
    """

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate_init: float = 0.001,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool | int = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int | float = 10,
        activations: list[str] | None = None,
        init: str = "glorot_uniform",
        optimizer: dict[str, Any] | None = None,
        schedule: Any = None,
        clip_norm: float | None = None,
        dtype: str = "float64",
        backend: str = "numpy",
        device: str | None = None,
        jit: str | bool = "auto",
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.activations = activations
        self.init = init
        self.optimizer = optimizer
        self.schedule = schedule
        self.clip_norm = clip_norm
        self.dtype = dtype
        self.backend = backend
        self.device = device
        self.jit = jit

    # ------------------------------------------------------------------ public API
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPClassifier:
        """Train on X (n, d) and labels y (n,) (any hashable labels, >= 2 classes);
        ``sample_weight`` (n,) non-negative, not all zero. Returns self."""
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(
        self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None
    ) -> MLPClassifier:
        """One epoch over (X, y), continuing the network and the optimizer's state.

        ``classes`` (every label of the whole stream) is required on the first call; later
        calls may omit it. A label of y not in ``classes_`` raises ``ValueError``.
        """
        first = not hasattr(self, "classes_")
        if first or classes is not None:
            if classes is None:
                raise ValueError(
                    "classes must be passed on the first call to partial_fit "
                    "(every label of the data stream, e.g. np.unique(y_all))"
                )
            classes = np.unique(np.asarray(classes))
            if not first and not np.array_equal(classes, self.classes_):
                raise ValueError(
                    f"`classes={classes!r}` is not the same as on last call to "
                    f"partial_fit, was: {self.classes_!r}"
                )
            if first:
                if len(classes) < 2:
                    raise ValueError(
                        f"classes must hold at least 2 classes, got {len(classes)}: {classes!r}"
                    )
                self._partial_classes = classes
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X: Any) -> np.ndarray:
        """The class with the largest logit for each row of X (n, d): (n,) labels."""
        logits = self._logits(X)
        return self.classes_[np.argmax(logits, axis=1)]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax probabilities (n, n_classes), columns in the order of ``classes_``."""
        return np.asarray(softmax(self._logits(X)))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log-probabilities (n, n_classes), by log-sum-exp (finite where ``log(proba)``
        would underflow)."""
        return np.asarray(log_softmax(self._logits(X)))

    # ------------------------------------------------------------------ attributes
    @property
    def coefs_(self) -> list[np.ndarray]:
        """``[W_1^T, ..., W_L^T]``: views of ``net_``'s weights in scikit-learn's (n_in, n_out)
        orientation (NumPy backend; a copy on others)."""
        self._require_fitted("coefs_")
        return [to_numpy(W).T for W in self.net_.weights]

    @coefs_.setter
    def coefs_(self, values: list[Any]) -> None:
        self._require_fitted("coefs_")
        self._assign("coefs_", self.net_.weights, [np.asarray(v).T for v in values])

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """``[b_1, ..., b_L]`` of ``net_`` (views on the NumPy backend)."""
        self._require_fitted("intercepts_")
        return [to_numpy(b) for b in self.net_.biases]

    @intercepts_.setter
    def intercepts_(self, values: list[Any]) -> None:
        self._require_fitted("intercepts_")
        self._assign("intercepts_", self.net_.biases, [np.asarray(v) for v in values])

    def _require_fitted(self, name: str) -> None:
        if "net_" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r} before fit")

    def _assign(self, name: str, dst: list[Any], src: list[np.ndarray]) -> None:
        if len(src) != len(dst) or any(s.shape != tuple(d.shape) for s, d in zip(src, dst)):
            raise ValueError(
                f"{name} must hold {len(dst)} arrays of the network's shapes, got "
                f"{[s.shape for s in src]}"
            )
        for d, s in zip(dst, src):
            d[...] = self.net_.backend.asarray(s, dtype=self.net_.dtype)

    def __sklearn_is_fitted__(self) -> bool:
        return "net_" in self.__dict__

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the step's kept buffers (rebuilt by the next partial_fit)."""
        state = super().__getstate__()
        state.pop("_trainer", None)
        return state

    # ------------------------------------------------------------------ internals
    def _logits(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=self.net_.dtype)
        if X.shape[0] == 0:
            return np.zeros((0, len(self.classes_)), self.net_.dtype)
        return to_numpy(self.net_.forward(X))

    def _validate(self, X: Any, y: Any, sample_weight: Any, reset: bool, dtype: str) -> Any:
        X, y = validate_data(self, X, y, reset=reset, dtype=dtype)
        check_classification_targets(y)
        if sample_weight is not None:
            sample_weight = check_array(
                sample_weight, ensure_2d=False, dtype=dtype, input_name="sample_weight"
            )
            if sample_weight.ndim != 1 or sample_weight.shape[0] != X.shape[0]:
                raise ValueError(
                    f"sample_weight.shape == {sample_weight.shape}, expected ({X.shape[0]},)!"
                )
            if np.any(sample_weight < 0):
                raise ValueError("Negative values in data passed to sample_weight")
            if not np.any(sample_weight > 0):
                raise ValueError("Sample weights must contain at least one non-zero number.")
        return X, y, sample_weight

    def _encode(self, y: np.ndarray, first_pass: bool, incremental: bool) -> np.ndarray:
        """Labels as indices into ``classes_`` (setting ``classes_`` on a first pass)."""
        present = np.unique(y)
        if first_pass:
            classes = self._partial_classes if incremental else present
            if len(classes) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes in the data, "
                    f"but the data contains only one class: {classes.tolist()[0]!r}"
                )
            self.classes_ = classes
        elif self.warm_start and not incremental and not np.array_equal(present, self.classes_):
            raise ValueError(
                "warm_start can only be used where `y` has the same classes as in the "
                f"previous call to fit. Previously got {self.classes_}, `y` has {present}"
            )
        unknown = np.setdiff1d(present, self.classes_)
        if len(unknown):
            raise ValueError(
                f"`y` has classes not in `self.classes_`: {unknown!r}. `self.classes_` has "
                f"{self.classes_!r}; give every label in the first partial_fit's `classes`."
            )
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _fit(self, X: Any, y: Any, sample_weight: Any, incremental: bool) -> MLPClassifier:
        p = check_estimator_params(self)
        if incremental and p["early_stopping"]:
            raise ValueError("partial_fit does not support early_stopping=True")
        fitted = "net_" in self.__dict__
        first_pass = not fitted or (not p["warm_start"] and not incremental)
        X, y, sw = self._validate(X, y, sample_weight, reset=first_pass, dtype=p["dtype"])
        y_idx = self._encode(y, first_pass, incremental)
        if first_pass or not incremental or "_rng" not in self.__dict__:
            self._rng = _make_rng(p["random_state"])
        rng = self._rng
        if first_pass:
            self._initialize(X.shape[1], p, rng)
        if not incremental or "_trainer" not in self.__dict__:
            if not incremental or "optimizer_" not in self.__dict__:
                self.optimizer_ = build_optimizer(p, self.optimizer)
            self._trainer = Trainer(self.net_, self.optimizer_, p["alpha"], p["clip_norm"])
        self._run(X, y_idx, sw, p, incremental)
        if not all(math.isfinite(float(np.abs(to_numpy(a)).max())) for a in self.net_.parameters()):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may contain "
                "large values and need to be preprocessed (or lower learning_rate_init)."
            )
        return self

    def _initialize(self, d: int, p: dict[str, Any], rng: np.random.Generator) -> None:
        sizes = [d, *p["hidden_layer_sizes"], len(self.classes_)]
        self.net_ = MLP(
            sizes,
            p["activation_names"],
            p["init"],
            dtype=p["dtype"],
            rng=rng,
            backend=self.backend,
            device=self.device,
            jit=p["jit"],
        )
        self.__dict__.pop("_trainer", None)
        self.n_iter_ = 0
        self.t_ = 0
        self.n_layers_ = len(sizes)
        self.n_outputs_ = len(self.classes_)
        self.out_activation_ = "softmax"
        self.loss_curve_: list[float] = []
        self.grad_norms_: list[dict[str, float]] = []
        self._no_improvement_count = 0
        if p["early_stopping"]:
            self.validation_scores_: list[float] | None = []
            self.best_validation_score_: float | None = -np.inf
            self.best_loss_: float | None = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf

    def _run(self, X: Any, y: Any, sw: Any, p: dict[str, Any], incremental: bool) -> None:
        """scikit-learn's ``_fit_stochastic``: epochs, the stopping rule, the best weights."""
        net, trainer = self.net_, self._trainer
        early = p["early_stopping"]
        X_val = y_val = sw_val = None
        if early:
            seed = int(self._rng.integers(np.iinfo(np.int32).max))
            parts = train_test_split(
                *(a for a in (X, y, sw) if a is not None),
                random_state=seed,
                test_size=p["validation_fraction"],
                stratify=y,
            )
            X, X_val, y, y_val = parts[:4]
            sw, sw_val = (parts[4], parts[5]) if sw is not None else (None, None)
            if X_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' "
                    "or the size of your dataset."
                )
            self._best_params = [copy.deepcopy(a) for a in net.parameters()]
        n = X.shape[0]
        if p["batch_size"] == "auto":
            batch_size = min(200, n)
        else:
            if p["batch_size"] > n:
                warnings.warn(
                    "Got `batch_size` less than 1 or larger than sample size. It is going "
                    "to be clipped",
                    stacklevel=4,
                )
            batch_size = min(p["batch_size"], n)
        Xc, yc = net.check_data(X, y)
        self.n_iter_ = 0  # per call, as scikit-learn counts it (loss_curve_ keeps growing)
        wc = None if sw is None else net.backend.asarray(sw, dtype=net.dtype)
        try:
            for _ in range(p["max_iter"]):
                loss, norms = trainer.epoch(Xc, yc, wc, batch_size, self._rng, p["shuffle"])
                self.n_iter_ += 1
                self.loss_ = loss
                self.t_ += n
                self.loss_curve_.append(loss)
                self.grad_norms_.append(norms)
                if p["verbose"]:
                    print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
                self._update_no_improvement(early, X_val, y_val, sw_val, p)
                if self._no_improvement_count > p["n_iter_no_change"]:
                    what = "Validation score" if early else "Training loss"
                    if p["verbose"]:
                        print(
                            f"{what} did not improve more than tol={p['tol']:f} for "
                            f"{p['n_iter_no_change']} consecutive epochs. Stopping."
                        )
                    break
                if incremental:
                    break
                if self.n_iter_ == p["max_iter"]:
                    warnings.warn(
                        f"Stochastic Optimizer: Maximum iterations ({p['max_iter']}) reached "
                        "and the optimization hasn't converged yet.",
                        ConvergenceWarning,
                        stacklevel=4,
                    )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=4)
        if early:
            for a, best in zip(net.parameters(), self._best_params):
                a[...] = best
            del self._best_params

    def _update_no_improvement(
        self, early: bool, X_val: Any, y_val: Any, sw_val: Any, p: dict[str, Any]
    ) -> None:
        tol = p["tol"]
        if early:
            pred = np.argmax(to_numpy(self.net_.forward(X_val)), axis=1)
            score = float(accuracy_score(y_val, pred, sample_weight=sw_val))
            self.validation_scores_.append(score)
            if p["verbose"]:
                print(f"Validation score: {score:f}")
            best = self.best_validation_score_
            self._no_improvement_count = self._no_improvement_count + 1 if score < best + tol else 0
            if score > best:
                self.best_validation_score_ = score
                self._best_params = [copy.deepcopy(a) for a in self.net_.parameters()]
        else:
            last = self.loss_curve_[-1]
            self._no_improvement_count = (
                self._no_improvement_count + 1 if last > self.best_loss_ - tol else 0
            )
            self.best_loss_ = min(self.best_loss_, last)
