"""mlpx.sklearn.MLPClassifier: its parameters, fitted attributes, labels, sample weights and
errors; the L2 scaling and sample weights against scikit-learn's MLPClassifier (one step
from the same weights), the coefs_ against an independent NumPy forward pass."""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris, make_blobs
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.neural_network import MLPClassifier as SkMLP

from mlpx.sklearn import MLPClassifier


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.simplefilter("ignore", ConvergenceWarning)


def blobs(n: int = 60, classes: int = 3, d: int = 4, seed: int = 0):
    return make_blobs(n_samples=n, centers=classes, n_features=d, random_state=seed)


def test_init_stores_parameters_only_and_checks_nothing() -> None:
    est = MLPClassifier(hidden_layer_sizes=-3, alpha="x", solver="lbfgs", activations=5)
    assert est.get_params()["alpha"] == "x"
    assert not [k for k in vars(est) if k.endswith("_")]
    names = set(SkMLP().get_params())
    shared = names - {"learning_rate", "power_t", "max_fun", "solver"}
    assert shared <= set(est.get_params()), shared - set(est.get_params())
    own = {"activations", "init", "optimizer", "schedule", "clip_norm", "dtype", "backend"}
    assert own | {"device", "jit"} <= set(est.get_params())


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"alpha": -1.0}, r"The 'alpha' parameter of MLPClassifier must be .* Got -1.0 instead"),
        ({"solver": "lbfgs"}, r"The 'solver' parameter .* one of adagrad, adam.*'lbfgs'"),
        ({"hidden_layer_sizes": (4, 0)}, r"'hidden_layer_sizes' parameter .* positive"),
        ({"batch_size": 0}, r"'batch_size' parameter"),
        ({"max_iter": 0}, r"'max_iter' parameter .* positive integer"),
        ({"learning_rate_init": 0.0}, r"'learning_rate_init' parameter"),
        ({"momentum": 1.5}, r"'momentum' parameter"),
        ({"validation_fraction": 1.0}, r"'validation_fraction' parameter"),
        ({"activation": "swish"}, r"'activation' parameter .* identity, logistic"),
        ({"activations": ["tanh"]}, r"'activations' parameter .* list of 2"),
        ({"init": "zeros"}, r"'init' parameter"),
        ({"dtype": "float16"}, r"'dtype' parameter"),
        ({"optimizer": {"betas": (0.9, 2.0)}}, r"optimizer\.betas\[1\] must be"),
        ({"optimizer": {"lr": 0.1}}, r"without 'lr'"),
        ({"solver": "sgd", "optimizer": {"dampening": -1}}, r"optimizer\.dampening"),
        ({"schedule": "wiggle"}, r"schedule must be one of"),
        ({"clip_norm": -1.0}, r"'clip_norm' parameter"),
        ({"random_state": "seed"}, r"'random_state' parameter"),
        ({"n_iter_no_change": 0}, r"'n_iter_no_change' parameter"),
        ({"device": 3}, r"'device' parameter"),
    ],
)
def test_bad_parameters_raise_valueerror_at_fit(params: dict, match: str) -> None:
    X, y = blobs()
    est = MLPClassifier(**{"hidden_layer_sizes": (4, 3), "max_iter": 2, **params})  # no error
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)


def test_not_fitted_errors() -> None:
    est = MLPClassifier()
    X, _ = blobs()
    for method in (est.predict, est.predict_proba, est.predict_log_proba):
        with pytest.raises(NotFittedError):
            method(X)
    assert not hasattr(est, "coefs_") and not hasattr(est, "intercepts_")


@pytest.mark.parametrize(
    "labels",
    [np.array(["cat", "dog", "emu"]), np.array([-3, 7, 100]), np.array([1.0, 3.0, 8.0])],
    ids=["strings", "non-contiguous-ints", "floats"],
)
def test_labels_of_any_kind_come_back(labels: np.ndarray) -> None:
    X, y = blobs(n=90)
    y_lab = labels[y]
    est = MLPClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.01, random_state=0)
    est.fit(X, y_lab)
    np.testing.assert_array_equal(est.classes_, np.sort(labels))
    pred = est.predict(X)
    assert pred.dtype == y_lab.dtype and set(pred) <= set(labels)
    assert est.score(X, y_lab) > 0.9
    proba = est.predict_proba(X)
    np.testing.assert_array_equal(est.classes_[proba.argmax(1)], pred)


def test_fitted_attributes_match_scikit_learns_names_and_shapes() -> None:
    X, y = blobs(n=60, d=5)
    est = MLPClassifier(hidden_layer_sizes=(7, 6), max_iter=30, random_state=0).fit(X, y)
    assert [c.shape for c in est.coefs_] == [(5, 7), (7, 6), (6, 3)]
    assert [b.shape for b in est.intercepts_] == [(7,), (6,), (3,)]
    assert est.n_layers_ == 4 and est.n_outputs_ == 3 and est.out_activation_ == "softmax"
    assert est.n_features_in_ == 5 and est.n_iter_ == 30 == len(est.loss_curve_)
    assert est.loss_ == est.loss_curve_[-1] and est.best_loss_ == min(est.loss_curve_)
    assert est.validation_scores_ is None and est.best_validation_score_ is None
    assert est.t_ == 30 * 60
    assert len(est.grad_norms_) == 30
    assert set(est.grad_norms_[0]) == {
        "grad_norm/layer_1",
        "grad_norm/layer_2",
        "grad_norm/layer_3",
        "grad_norm/global",
    }
    for W, C in zip(est.net_.weights, est.coefs_):
        assert np.shares_memory(W, C) and np.array_equal(W.T, C)
    assert est.optimizer_.t == est.n_iter_ * 1  # batch 'auto' = min(200, 60): one step an epoch


def test_predict_proba_equals_a_numpy_forward_pass_through_coefs_() -> None:
    X, y = blobs(n=80, classes=4, d=3)
    est = MLPClassifier(hidden_layer_sizes=(6, 5), activation="tanh", max_iter=40, random_state=1)
    est.fit(X, y)
    f = X
    for i, (W, b) in enumerate(zip(est.coefs_, est.intercepts_)):
        f = f @ W + b
        if i < len(est.coefs_) - 1:
            f = np.tanh(f)
    mu = np.exp(f - f.max(1, keepdims=True))
    mu /= mu.sum(1, keepdims=True)
    np.testing.assert_allclose(est.predict_proba(X), mu, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(est.predict_log_proba(X), np.log(mu), rtol=1e-9, atol=1e-12)


def test_feature_names_from_a_dataframe() -> None:
    pd = pytest.importorskip("pandas")
    X, y = blobs(n=40, d=3)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(df, y)
    assert est.feature_names_in_.tolist() == ["a", "b", "c"]
    with pytest.raises(ValueError, match="feature names"):
        est.predict(df.rename(columns={"a": "z"}))


def test_coefs_can_be_assigned() -> None:
    X, y = blobs()
    est = MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(X, y)
    new = [np.ones_like(c) for c in est.coefs_]
    est.coefs_ = new
    assert all(np.array_equal(W, np.ones_like(W)) for W in est.net_.weights)
    with pytest.raises(ValueError, match="coefs_ must hold 2 arrays"):
        est.coefs_ = new[:1]


def _one_sgd_step_against_sklearn(sample_weight: np.ndarray | None) -> None:
    """mlpx and scikit-learn take one full-batch SGD step from the same weights."""
    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    common = dict(
        hidden_layer_sizes=(5,),
        solver="sgd",
        momentum=0.0,
        learning_rate_init=0.1,
        alpha=0.7,
        batch_size=len(y),
        shuffle=False,
        max_iter=1,
    )
    ours = MLPClassifier(random_state=0, **common).fit(X, y, sample_weight=sample_weight)
    W0 = MLPClassifier(random_state=0, **{**common, "learning_rate_init": 1e-300})
    W0.fit(X, y, sample_weight=sample_weight)  # a step of ~0: the initial weights
    sk = SkMLP(random_state=0, **common).fit(X, y)
    sk.coefs_ = [c.copy() for c in W0.coefs_]
    sk.intercepts_ = [b.copy() for b in W0.intercepts_]
    sk.partial_fit(X, y, sample_weight=sample_weight)
    for a, b in zip(ours.coefs_ + ours.intercepts_, sk.coefs_ + sk.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    # the penalised loss at the initial weights (scikit-learn clips log(p) at eps)
    np.testing.assert_allclose(ours.loss_curve_[0], sk.loss_curve_[-1], rtol=1e-9)


def test_alpha_is_scaled_as_in_scikit_learn() -> None:
    _one_sgd_step_against_sklearn(None)


def test_sample_weight_step_equals_scikit_learns() -> None:
    w = np.random.default_rng(0).uniform(0.0, 3.0, size=150)
    _one_sgd_step_against_sklearn(w)


def test_sample_weight_zero_equals_removing_rows_and_ints_equal_repeats() -> None:
    X, y = blobs(n=40, d=3)
    w = np.random.default_rng(1).integers(0, 3, size=40)
    kw = dict(hidden_layer_sizes=(6,), max_iter=20, random_state=0)  # full batches
    weighted = MLPClassifier(**kw).fit(X, y, sample_weight=w)
    repeated = MLPClassifier(**kw).fit(np.repeat(X, w, 0), np.repeat(y, w))
    # Adam divides by sqrt(v): last-bit differences of tiny gradients grow to ~1e-7
    np.testing.assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X), rtol=1e-6)
    uniform = MLPClassifier(**kw).fit(X, y, sample_weight=np.full(40, 2.5))
    plain = MLPClassifier(**kw).fit(X, y)
    np.testing.assert_allclose(uniform.predict_proba(X), plain.predict_proba(X), rtol=1e-6)


def test_bad_sample_weights() -> None:
    X, y = blobs(n=30)
    est = MLPClassifier(max_iter=2)
    with pytest.raises(ValueError, match="at least one non-zero"):
        est.fit(X, y, sample_weight=np.zeros(30))
    with pytest.raises(ValueError, match="Negative values"):
        est.fit(X, y, sample_weight=-np.ones(30))
    with pytest.raises(ValueError, match=r"sample_weight.shape"):
        est.fit(X, y, sample_weight=np.ones(29))


def test_partial_fit_classes_and_unknown_labels() -> None:
    X, y = blobs(n=90)
    labels = np.array(["a", "b", "c", "d"])  # "d" never seen in the first batches
    est = MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        est.partial_fit(X, labels[y])
    est.partial_fit(X[:30], labels[y[:30]], classes=labels)
    np.testing.assert_array_equal(est.classes_, labels)
    losses = [est.loss_]
    for _ in range(20):
        est.partial_fit(X, labels[y])
        losses.append(est.loss_)
    assert losses[-1] < losses[0] and est.n_iter_ == 1 and len(est.loss_curve_) == 21
    assert est.optimizer_.t == 21
    with pytest.raises(ValueError, match=r"classes not in `self.classes_`.*'e'"):
        est.partial_fit(X[:3], np.array(["a", "e", "b"]))
    with pytest.raises(ValueError, match="is not the same as on last call"):
        est.partial_fit(X[:3], labels[y[:3]], classes=labels[:3])
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4"):
        est.partial_fit(X[:, :3], labels[y])
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


def test_partial_fit_continues_after_pickling() -> None:
    X, y = blobs(n=60)
    a = MLPClassifier(hidden_layer_sizes=(6,), random_state=0, shuffle=False)
    a.partial_fit(X, y, classes=[0, 1, 2])
    b = pickle.loads(pickle.dumps(a))
    c = copy.deepcopy(a)
    for est in (a, b, c):
        est.partial_fit(X, y)
    np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])
    np.testing.assert_array_equal(a.coefs_[0], c.coefs_[0])


def test_one_class_is_refused_clearly() -> None:
    X, _ = blobs(n=10)
    with pytest.raises(ValueError, match=r"at least 2 classes .* only one class: 'x'"):
        MLPClassifier().fit(X, np.array(["x"] * 10))


def test_stopping_rules_follow_scikit_learn() -> None:
    X, y = blobs(n=120)
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=500, tol=0.5, n_iter_no_change=3)
    est.fit(X, y)
    assert est.n_iter_ == 5  # 1 + (n_iter_no_change + 1) epochs without a 0.5 improvement
    es = MLPClassifier(
        hidden_layer_sizes=(8,), max_iter=300, early_stopping=True, random_state=0
    ).fit(X, y)
    assert es.best_loss_ is None and len(es.validation_scores_) == es.n_iter_ < 300
    assert es.best_validation_score_ == max(es.validation_scores_)
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(2\)"):
        warnings.simplefilter("always", ConvergenceWarning)
        MLPClassifier(max_iter=2).fit(X, y)


def test_warm_start_continues_and_checks_classes() -> None:
    X, y = blobs(n=60)
    est = MLPClassifier(hidden_layer_sizes=(6,), max_iter=5, warm_start=True, random_state=0)
    est.fit(X, y)
    W = est.coefs_[0].copy()
    net = est.net_
    est.fit(X, y)
    assert est.net_ is net and not np.array_equal(W, est.coefs_[0])
    assert len(est.loss_curve_) == 10 and est.n_iter_ == 5
    with pytest.raises(ValueError, match="warm_start can only be used"):
        est.fit(X[y < 2], y[y < 2])


def test_mlpx_parameters_reach_the_network_and_optimizer() -> None:
    X, y = blobs(n=60)
    est = MLPClassifier(
        hidden_layer_sizes=(6, 5),
        activations=["tanh", "gelu"],
        init="he_normal",
        solver="adamw",
        optimizer={"amsgrad": True, "weight_decay": 0.05},
        schedule={"name": "step", "step_size": 3, "gamma": 0.5},
        clip_norm=0.1,
        dtype="float32",
        max_iter=8,
        random_state=0,
    ).fit(X, y)
    assert est.net_.activations == ["tanh", "gelu", "linear"]
    assert est.net_.dtype == "float32" and est.coefs_[0].dtype == np.float32
    assert est.net_.init == "he_normal"
    assert est.optimizer_.name == "adamw"
    assert est.optimizer_.hparams["amsgrad"] and est.optimizer_.hparams["weight_decay"] == 0.05
    assert est.optimizer_.lr == pytest.approx(1e-3 * 0.5 ** (8 // 3))
    assert est.predict_proba(X).dtype == np.float32
    sk_names = MLPClassifier(activation="logistic", hidden_layer_sizes=3, max_iter=2).fit(X, y)
    assert sk_names.net_.activations == ["sigmoid", "linear"]


def test_random_state_int_draws_the_mlp_seeds_weights() -> None:
    from mlpx import MLP

    X, y = blobs(n=30)
    est = MLPClassifier(hidden_layer_sizes=(4,), learning_rate_init=1e-300, max_iter=1)
    est.set_params(random_state=7).fit(X, y)
    assert est.n_iter_ == 1
    net = MLP([4, 4, 3], "relu", "glorot_uniform", seed=7)
    np.testing.assert_allclose(est.coefs_[0], net.weights[0].T)


@pytest.mark.torch
def test_torch_backend_trains_like_numpy() -> None:
    pytest.importorskip("torch")
    X, y = blobs(n=60)
    kw = dict(hidden_layer_sizes=(6,), max_iter=15, random_state=0, batch_size=16)
    on_numpy = MLPClassifier(**kw).fit(X, y)
    on_torch = MLPClassifier(backend="torch", **kw).fit(X, y)
    np.testing.assert_allclose(on_torch.coefs_[0], on_numpy.coefs_[0], rtol=1e-7, atol=1e-9)
    w = np.linspace(0.5, 2.0, 60)
    a = MLPClassifier(**kw).fit(X, y, sample_weight=w)
    b = MLPClassifier(backend="torch", **kw).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(b.predict_proba(X), a.predict_proba(X), rtol=1e-7, atol=1e-9)
    assert isinstance(on_torch.predict(X), np.ndarray)


@pytest.mark.gpu
@pytest.mark.torch
def test_torch_cuda_backend_trains_like_numpy() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device is visible")
    X, y = blobs(n=60)
    kw = dict(hidden_layer_sizes=(6,), max_iter=15, random_state=0, batch_size=16)
    on_numpy = MLPClassifier(**kw).fit(X, y)
    on_cuda = MLPClassifier(backend="torch", device="cuda", **kw).fit(X, y)
    np.testing.assert_allclose(on_cuda.predict_proba(X), on_numpy.predict_proba(X), rtol=1e-6)
    w = np.linspace(0.5, 2.0, 60)
    a = MLPClassifier(**kw).fit(X, y, sample_weight=w)
    b = MLPClassifier(backend="torch", device="cuda", **kw).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(b.predict_proba(X), a.predict_proba(X), rtol=1e-6)
