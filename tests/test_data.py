"""Datasets: splits, scaling, validation messages, OpenML (mocked) and mini-batches."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from mlpx.data import (
    DATASET_PARAMS,
    Dataset,
    check_dataset_params,
    check_split_options,
    iterate_minibatches,
    load_dataset,
)

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = {"digits": (1797, 64, 10), "iris": (150, 4, 3), "wine": (178, 13, 3)}
BUNDLED["breast_cancer"] = (569, 30, 2)
GENERATED = {
    "moons": (1000, 2, 2),
    "circles": (1000, 2, 2),
    "blobs": (1000, 2, 3),
    "classification": (1000, 20, 3),
    "gaussian_quantiles": (1000, 2, 3),
}
LOCAL = {**BUNDLED, **GENERATED}


def splits(data: Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {
        "train": (data.X_train, data.y_train),
        "val": (data.X_val, data.y_val),
        "test": (data.X_test, data.y_test),
    }


# --------------------------------------------------------------------------- loading


@pytest.mark.parametrize("name", sorted(LOCAL))
def test_every_local_dataset_loads_split_and_stratified(name: str) -> None:
    n, d, C = LOCAL[name]
    data = load_dataset(name, val_size=0.2, test_size=0.1, seed=3)
    assert data.name == name
    assert (data.n_features, data.n_classes) == (d, C)
    assert len(data.class_names) == C and len(data.feature_names) == d
    assert data.image_shape == ((8, 8) if name == "digits" else None)
    sizes = {k: len(y) for k, (_, y) in splits(data).items()}
    assert sum(sizes.values()) == n
    assert abs(sizes["test"] - 0.1 * n) <= 1
    assert abs(sizes["val"] - 0.2 * n) <= 2
    y_all = np.concatenate([y for _, y in splits(data).values()])
    overall = np.bincount(y_all, minlength=C) / n
    for part, (X, y) in splits(data).items():
        assert X.dtype == np.float64 and y.dtype == np.int64, part
        assert X.shape == (len(y), d) and y.shape == (len(y),), part
        assert X.flags.c_contiguous or len(y) == 0
        assert np.isfinite(X).all()
        assert y.min() == 0 and y.max() == C - 1, part
        counts = np.bincount(y, minlength=C)
        assert (counts > 0).all(), f"{part} misses a class: {counts}"
        # stratified: every class within one sample of its overall share
        assert np.all(np.abs(counts - overall * len(y)) <= 1 + 1e-9), (part, counts)


def test_dataset_repr_and_names() -> None:
    data = load_dataset("iris")
    text = repr(data)
    assert text.startswith("Dataset('iris', features=4, classes=3, train=")
    assert f"val={len(data.y_val)}, test={len(data.y_test)}" in text
    assert data.class_names == ["setosa", "versicolor", "virginica"]
    assert data.feature_names[0] == "sepal length (cm)"
    assert "image_shape=(8, 8)" in repr(load_dataset("digits"))
    assert load_dataset("breast_cancer").class_names == ["malignant", "benign"]


def test_generator_params_reach_the_generator() -> None:
    data = load_dataset("blobs", n_samples=200, n_features=5, centers=4, val_size=0)
    assert data.n_features == 5 and data.n_classes == 4
    assert len(data.y_train) + len(data.y_test) == 200
    wide = load_dataset("classification", n_features=7, n_informative=3, n_classes=4)
    assert (wide.n_features, wide.n_classes) == (7, 4)
    # noise changes the points: a noiseless circle has two radii only
    clean = load_dataset("circles", noise=0.0, standardize=False, n_samples=100)
    radii = np.round(np.linalg.norm(clean.X_train, axis=1), 9)
    assert sorted(set(radii)) == [0.5, 1.0]


MAKERS = {
    "moons": "make_moons",
    "circles": "make_circles",
    "blobs": "make_blobs",
    "classification": "make_classification",
    "gaussian_quantiles": "make_gaussian_quantiles",
}


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generators_get_the_defaults_and_random_state_seed(name: str) -> None:
    import sklearn.datasets

    X, y = getattr(sklearn.datasets, MAKERS[name])(**DATASET_PARAMS[name], random_state=11)
    data = load_dataset(name, seed=11, standardize=False)
    parts = splits(data).values()
    X_got = np.concatenate([Xp for Xp, _ in parts])
    y_got = np.concatenate([yp for _, yp in parts])
    order, order_got = np.lexsort(X.T), np.lexsort(X_got.T)
    np.testing.assert_array_equal(X_got[order_got], X[order])
    np.testing.assert_array_equal(y_got[order_got], y[order])


def test_val_size_zero_gives_empty_validation_arrays() -> None:
    data = load_dataset("wine", val_size=0.0, test_size=0.25)
    assert data.X_val.shape == (0, 13) and data.X_val.dtype == np.float64
    assert data.y_val.shape == (0,) and data.y_val.dtype == np.int64
    assert len(data.y_train) + len(data.y_test) == 178


@pytest.mark.parametrize("name", ["iris", "moons"])
def test_same_seed_same_split_other_seed_other_split(name: str) -> None:
    a, b = load_dataset(name, seed=5), load_dataset(name, seed=5)
    for (Xa, ya), (Xb, yb) in zip(splits(a).values(), splits(b).values(), strict=True):
        np.testing.assert_array_equal(Xa, Xb)
        np.testing.assert_array_equal(ya, yb)
    c = load_dataset(name, seed=6)
    assert a.X_test.shape == c.X_test.shape
    assert not np.array_equal(a.X_test, c.X_test)


def test_standardisation_uses_training_statistics_only() -> None:
    raw = load_dataset("wine", standardize=False, seed=1)
    std = load_dataset("wine", standardize=True, seed=1)
    mean, sd = raw.X_train.mean(axis=0), raw.X_train.std(axis=0)
    np.testing.assert_allclose(std.X_train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(std.X_train.std(axis=0), 1.0, rtol=1e-12)
    np.testing.assert_allclose(std.X_val, (raw.X_val - mean) / sd, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(std.X_test, (raw.X_test - mean) / sd, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(std.mean, mean) and np.testing.assert_allclose(std.scale, sd)
    assert raw.mean is None and raw.scale is None
    # the check above tells the two apart: statistics of all the data give other values
    X_all = np.concatenate([raw.X_train, raw.X_val, raw.X_test])
    leaked = (raw.X_test - X_all.mean(axis=0)) / X_all.std(axis=0)
    assert np.abs(leaked - std.X_test).max() > 1e-3


def test_constant_features_are_centred_not_divided_by_zero() -> None:
    raw = load_dataset("digits", standardize=False)
    data = load_dataset("digits")
    constant = raw.X_train.std(axis=0) == 0
    assert constant.any()  # digits has always-blank corner pixels
    np.testing.assert_array_equal(data.X_train[:, constant], 0.0)
    np.testing.assert_array_equal(data.scale[constant], 1.0)
    np.testing.assert_allclose(
        data.X_test[:, constant], raw.X_test[:, constant] - raw.X_train[:, constant].mean(0)
    )
    varying = ~constant
    np.testing.assert_allclose(data.X_train[:, varying].std(axis=0), 1.0, rtol=1e-10)
    np.testing.assert_allclose(data.X_train[:, varying].mean(axis=0), 0.0, atol=1e-12)


def test_digits_rows_reshape_to_images() -> None:
    data = load_dataset("digits", standardize=False)
    image = data.X_train[0].reshape(data.image_shape)
    assert image.shape == (8, 8) and image.max() <= 16 and image.min() >= 0


# --------------------------------------------------------------------------- validation


def test_check_dataset_params_merges_defaults_and_imports_nothing_heavy() -> None:
    assert check_dataset_params("iris", {}) == {}
    assert check_dataset_params("moons", {"noise": 0.3}) == {"n_samples": 1000, "noise": 0.3}
    assert check_dataset_params("openml", {"openml_id": 554})["version"] == "active"
    assert DATASET_PARAMS["moons"] == {"n_samples": 1000, "noise": 0.2}  # not mutated
    assert check_dataset_params("blobs", {"n_samples": np.int64(50)})["n_samples"] == 50


VALIDATION_ERRORS = [
    (
        ("mnist", {}),
        "dataset.name must be one of blobs, breast_cancer, circles, "
        "classification, digits, gaussian_quantiles, iris, moons, openml, wine, got 'mnist'",
    ),
    (
        ("iris", {"noise": 0.1}),
        "dataset.noise is not a parameter of 'iris'; accepted: none",
    ),
    (
        ("moons", {"factor": 0.5}),
        "dataset.factor is not a parameter of 'moons'; accepted: n_samples, noise",
    ),
    (("moons", {"n_samples": 5}), "dataset.n_samples must be an integer >= 10, got 5"),
    (("moons", {"n_samples": 100.0}), "dataset.n_samples must be an integer >= 10, got 100.0"),
    (("moons", {"n_samples": True}), "dataset.n_samples must be an integer >= 10, got True"),
    (("moons", {"noise": -0.1}), "dataset.noise must be a non-negative finite number, got -0.1"),
    (
        ("moons", {"noise": "high"}),
        "dataset.noise must be a non-negative finite number, got 'high'",
    ),
    (
        ("moons", {"noise": float("nan")}),
        "dataset.noise must be a non-negative finite number, got nan",
    ),
    (("circles", {"factor": 1.0}), "dataset.factor must be a number in (0, 1), got 1.0"),
    (("circles", {"factor": 0}), "dataset.factor must be a number in (0, 1), got 0"),
    (("blobs", {"centers": 1}), "dataset.centers must be an integer >= 2, got 1"),
    (("blobs", {"n_features": 0}), "dataset.n_features must be a positive integer, got 0"),
    (
        ("blobs", {"cluster_std": 0.0}),
        "dataset.cluster_std must be a positive finite number, got 0.0",
    ),
    (
        ("blobs", {"n_samples": 10, "centers": 11}),
        "dataset.centers must be <= dataset.n_samples, got 11 > 10",
    ),
    (("classification", {"n_classes": 1}), "dataset.n_classes must be an integer >= 2, got 1"),
    (
        ("classification", {"n_features": 6}),
        "dataset.n_informative + dataset.n_redundant must be <= dataset.n_features, got 5 + 2 > 6",
    ),
    (
        ("classification", {"n_informative": 1, "n_classes": 3}),
        "dataset.n_classes * "
        "dataset.n_clusters_per_class must be <= 2 ** dataset.n_informative, got 3 * 1 > 2 ** 1",
    ),
    (
        ("classification", {"n_redundant": -1}),
        "dataset.n_redundant must be an integer >= 0, got -1",
    ),
    (
        ("classification", {"class_sep": 0}),
        "dataset.class_sep must be a positive finite number, got 0",
    ),
    (
        ("classification", {"n_clusters_per_class": 0}),
        "dataset.n_clusters_per_class must be a positive integer, got 0",
    ),
    (
        ("gaussian_quantiles", {"n_classes": 11, "n_samples": 10}),
        "dataset.n_classes must be <= dataset.n_samples, got 11 > 10",
    ),
    (
        ("openml", {}),
        "dataset 'openml' needs exactly one of dataset.openml_name and "
        "dataset.openml_id, got neither (e.g. dataset.openml_name=mnist_784)",
    ),
    (
        ("openml", {"openml_name": "mnist_784", "openml_id": 554}),
        "dataset 'openml' needs exactly one of dataset.openml_name and dataset.openml_id, got both",
    ),
    (
        ("openml", {"openml_name": ""}),
        "dataset.openml_name must be a non-empty string or null, got ''",
    ),
    (("openml", {"openml_id": 0}), "dataset.openml_id must be a positive integer or null, got 0"),
    (
        ("openml", {"openml_id": 5, "version": "latest"}),
        "dataset.version must be 'active' or a positive integer, got 'latest'",
    ),
    (
        ("openml", {"openml_id": 5, "data_home": 3}),
        "dataset.data_home must be a folder path or null, got 3",
    ),
    (
        ("openml", {"openml_id": 5, "target_column": ["a", "b"]}),
        "dataset.target_column must be a non-empty string or null, got ['a', 'b']",
    ),
]


@pytest.mark.parametrize(("args", "message"), VALIDATION_ERRORS)
def test_check_dataset_params_errors(args: tuple[str, dict], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        check_dataset_params(*args)
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        load_dataset(args[0], **args[1])


SPLIT_ERRORS = [
    ({"val_size": -0.1}, "dataset.val_size must be a number in [0, 1), got -0.1"),
    ({"val_size": 1.0}, "dataset.val_size must be a number in [0, 1), got 1.0"),
    ({"val_size": "0.1"}, "dataset.val_size must be a number in [0, 1), got '0.1'"),
    ({"test_size": 0}, "dataset.test_size must be a number in (0, 1), got 0"),
    ({"test_size": 1}, "dataset.test_size must be a number in (0, 1), got 1"),
    (
        {"val_size": 0.5, "test_size": 0.5},
        "dataset.val_size + dataset.test_size must be < 1 "
        "to leave a training split, got 0.5 + 0.5 = 1",
    ),
    ({"seed": -1}, "dataset.seed must be an integer in 0..4294967295, got -1"),
    ({"seed": 1.5}, "dataset.seed must be an integer in 0..4294967295, got 1.5"),
    ({"standardize": "yes"}, "dataset.standardize must be a bool (true or false), got 'yes'"),
]


@pytest.mark.parametrize(("kwargs", "message"), SPLIT_ERRORS)
def test_split_option_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        load_dataset("iris", **kwargs)
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        check_split_options(**{"val_size": 0.15, "test_size": 0.15, **kwargs})


def test_impossible_stratified_split_names_fractions_and_class_counts() -> None:
    # 3 classes but a 10-sample set with test_size=0.1 leaves one test sample
    message = (
        r"^dataset 'gaussian_quantiles' cannot be split into stratified train/val/test parts "
        r"with dataset.val_size=0.15 and dataset.test_size=0.1 \(class counts "
        r"\{'0': 3, '1': 3, '2': 4\}\): .*Change the fractions or use more samples.$"
    )
    with pytest.raises(ValueError, match=message):
        load_dataset("gaussian_quantiles", n_samples=10, test_size=0.1)


# --------------------------------------------------------------------------- OpenML, mocked


@pytest.fixture
def sklearn_datasets():
    import sklearn.datasets

    return sklearn.datasets


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (urllib.error.URLError("[Errno -2] Name or service not known"), "Name or service"),
        (
            urllib.error.HTTPError("https://openml.org", 503, "Service Unavailable", {}, None),
            "Service Unavailable",
        ),
        (TimeoutError("timed out"), "timed out"),
    ],
)
def test_openml_offline_error(monkeypatch, sklearn_datasets, tmp_path, error, reason) -> None:
    def offline(**kwargs):
        raise error

    monkeypatch.setattr(sklearn_datasets, "fetch_openml", offline)
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path))
    message = (
        f"dataset 'openml' (name='mnist_784') could not be downloaded from openml.org and "
        f"is not in the cache at {tmp_path}: "
    )
    with pytest.raises(ValueError, match="^" + re.escape(message)) as info:
        load_dataset("openml", openml_name="mnist_784")
    text = str(info.value)
    assert reason in text and "\n" not in text
    assert text.endswith(
        "Connect to the internet once, or set dataset.data_home to a folder holding the "
        "cached copy."
    )
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"(id=554) could not be downloaded from "
            f"openml.org and is not in the cache at "
            f"{tmp_path / 'x'}: "
        ),
    ):
        load_dataset("openml", openml_id=554, data_home=str(tmp_path / "x"))


def test_openml_unknown_dataset_says_what_to_check(monkeypatch, sklearn_datasets) -> None:
    def missing(**kwargs):
        raise ValueError("No active dataset nope found.")

    monkeypatch.setattr(sklearn_datasets, "fetch_openml", missing)
    with pytest.raises(
        ValueError,
        match=r"^dataset 'openml' \(name='nope'\) could not be "
        r"loaded from openml.org: No active dataset nope found\. Check "
        r"dataset.openml_name",
    ):
        load_dataset("openml", openml_name="nope")


def fake_openml(monkeypatch, sklearn_datasets, X, y, calls=None):
    from sklearn.utils import Bunch

    def fetch(**kwargs):
        if calls is not None:
            calls.append(kwargs)
        return Bunch(data=X, target=y, feature_names=[f"f{j}" for j in range(X.shape[1])])

    monkeypatch.setattr(sklearn_datasets, "fetch_openml", fetch)


def test_openml_string_targets_are_label_encoded(monkeypatch, sklearn_datasets) -> None:
    rng = np.random.default_rng(0)
    labels = np.array(["dog", "cat", "emu"])
    y = labels[np.arange(90) % 3]
    X = rng.normal(size=(90, 4)) + (np.arange(90) % 3)[:, None]
    calls: list[dict] = []
    fake_openml(monkeypatch, sklearn_datasets, X, y.astype(object), calls)
    data = load_dataset("openml", openml_name="pets", version=2, data_home="~/cache", seed=4)
    assert calls == [
        {
            "name": "pets",
            "data_id": None,
            "version": 2,
            "data_home": str(Path("~/cache").expanduser()),
            "target_column": "default-target",
            "as_frame": False,
            "parser": "auto",
        }
    ]
    assert data.class_names == ["cat", "dog", "emu"]
    assert data.feature_names == ["f0", "f1", "f2", "f3"]
    assert data.n_classes == 3 and data.y_train.dtype == np.int64
    for X_part, y_part in splits(data).values():
        # class k is the label class_names[k]: find each row back in the raw data
        raw_rows = X_part * data.scale + data.mean
        for row, k in zip(raw_rows, y_part, strict=True):
            i = int(np.argmin(np.abs(X - row).sum(axis=1)))
            assert y[i] == data.class_names[k]
    assert repr(data).startswith("Dataset('openml', features=4, classes=3")


def test_openml_numeric_string_labels_sort_as_numbers(monkeypatch, sklearn_datasets) -> None:
    y = np.array([str(k) for k in np.arange(120) % 12], dtype=object)
    fake_openml(monkeypatch, sklearn_datasets, np.arange(240.0).reshape(120, 2), y)
    data = load_dataset("openml", openml_id=1, target_column="digit", val_size=0.0, test_size=0.2)
    assert data.class_names == [str(k) for k in range(12)]
    X_raw = data.X_train * data.scale + data.mean
    np.testing.assert_array_equal(data.y_train, np.round(X_raw[:, 0] / 2).astype(int) % 12)


def test_openml_non_numeric_features_are_refused(monkeypatch, sklearn_datasets) -> None:
    X = np.array([[1.0, "red"], [2.0, "blue"]] * 20, dtype=object)
    fake_openml(monkeypatch, sklearn_datasets, X, np.array([0, 1] * 20))
    with pytest.raises(
        ValueError,
        match=r"^dataset 'openml' \(id=7\) has non-numeric feature "
        r"columns \(f1\); mlpx needs numeric features",
    ):
        load_dataset("openml", openml_id=7)


def test_openml_regression_target_is_refused(monkeypatch, sklearn_datasets) -> None:
    fake_openml(monkeypatch, sklearn_datasets, np.ones((40, 2)), np.linspace(0, 1, 40))
    with pytest.raises(ValueError, match="has a continuous target"):
        load_dataset("openml", openml_id=7)


def test_openml_missing_labels_are_refused(monkeypatch, sklearn_datasets) -> None:
    y = np.array(["a", "b", None, "a"] * 10, dtype=object)
    fake_openml(monkeypatch, sklearn_datasets, np.ones((40, 2)), y)
    with pytest.raises(ValueError, match=r"^dataset 'openml' \(id=7\) has samples without a label"):
        load_dataset("openml", openml_id=7)


# --------------------------------------------------------------------------- mini-batches


@pytest.mark.parametrize(("n", "batch_size"), [(10, 3), (12, 4), (5, 8), (1, 1), (0, 2)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_minibatches_cover_every_index_once(n: int, batch_size: int, shuffle: bool) -> None:
    batches = list(iterate_minibatches(n, batch_size, np.random.default_rng(0), shuffle))
    sizes = [len(b) for b in batches]
    assert sizes == [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
    joined = np.concatenate(batches) if batches else np.array([], dtype=int)
    np.testing.assert_array_equal(np.sort(joined), np.arange(n))
    assert all(np.issubdtype(b.dtype, np.integer) for b in batches)


def test_minibatch_order_is_seeded_and_drawn_from_the_generator() -> None:
    def epoch(rng):
        return np.concatenate(list(iterate_minibatches(50, 16, rng)))

    a, b = np.random.default_rng(7), np.random.default_rng(7)
    first_a, first_b = epoch(a), epoch(b)
    np.testing.assert_array_equal(first_a, first_b)
    np.testing.assert_array_equal(first_a, np.random.default_rng(7).permutation(50))
    second_a = epoch(a)  # the generator advanced: a new order each epoch
    assert not np.array_equal(first_a, second_a)
    assert not np.array_equal(first_a, epoch(np.random.default_rng(8)))
    assert not np.array_equal(first_a, np.arange(50))


def test_minibatches_without_shuffle_are_consecutive_slices() -> None:
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    batches = list(iterate_minibatches(7, 3, rng, shuffle=False))
    assert [b.tolist() for b in batches] == [[0, 1, 2], [3, 4, 5], [6]]
    assert rng.bit_generator.state == before  # no draw without shuffling
    assert [b.tolist() for b in iterate_minibatches(4, 2, None, shuffle=False)] == [[0, 1], [2, 3]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((10, 0), "trainer.batch_size must be a positive integer, got 0"),
        ((10, -4), "trainer.batch_size must be a positive integer, got -4"),
        ((10, 2.0), "trainer.batch_size must be a positive integer, got 2.0"),
        ((10, True), "trainer.batch_size must be a positive integer, got True"),
        ((-1, 2), "n must be an integer >= 0, got -1"),
    ],
)
def test_minibatch_errors_are_raised_at_call_time(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        iterate_minibatches(*args, np.random.default_rng(0))  # no next() needed


def test_minibatch_shuffle_needs_a_generator() -> None:
    with pytest.raises(
        ValueError,
        match=r"^rng must be a numpy\.random\.Generator when shuffling, got RandomState$",
    ):
        iterate_minibatches(10, 2, np.random.RandomState(0))


# --------------------------------------------------------------------------- import cost


def test_importing_mlpx_data_does_not_import_sklearn() -> None:
    code = "import mlpx.data, sys; assert 'sklearn' not in sys.modules, 'sklearn imported'"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
