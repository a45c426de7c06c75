"""Datasets for the MLP: scikit-learn's bundled sets, its generators and OpenML.

Every dataset comes back as a :class:`Dataset` with stratified, seeded train/val/test
splits, features standardised with statistics fitted on the training split only, and
labels re-encoded to ``0..C-1``::

    data = load_dataset("digits", val_size=0.15, test_size=0.15, seed=0)
    data.X_train            # (n_train, 64) float64, mean 0 / std 1 per non-constant pixel
    data.y_train            # (n_train,) int64 in 0..9
    for idx in iterate_minibatches(len(data.y_train), 128, np.random.default_rng(0)):
        X, y = data.X_train[idx], data.y_train[idx]

Names map to loaders through registries: ``DATASETS`` declares each dataset's parameters
once (a :class:`mlpx.checks.Param` each: check, default, doc; the config reads the same
declarations), and a loader per name does the rest. A config says ``dataset.name: moons``
and ``dataset.noise: 0.3``, never a Python import path.

scikit-learn is imported inside the loaders only: ``import mlpx.data`` stays cheap, and
:func:`check_dataset_params` validates a configuration without importing it.
"""

from __future__ import annotations

import http.client
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from mlpx import data_cache
from mlpx.checks import (
    Choice,
    Const,
    Flag,
    FolderPath,
    Integer,
    Number,
    OneOf,
    Optional,
    Param,
    Text,
    check_params,
    defaults_of,
)

__all__ = [
    "DATASETS",
    "DATASET_NAME",
    "DATASET_PARAMS",
    "SPLIT_PARAMS",
    "Dataset",
    "check_dataset_params",
    "check_split_options",
    "iterate_minibatches",
    "load_dataset",
]


@dataclass(eq=False)
class Dataset:
    """One classification dataset, split and scaled.

    X_train : (n_train, d) float64     y_train : (n_train,) int64 labels in 0..C-1
    X_val : (n_val, d) float64         y_val : (n_val,) int64; (0, d) / (0,) when val_size=0
    X_test : (n_test, d) float64       y_test : (n_test,) int64
    class_names : C names; ``class_names[k]`` is the original label of class ``k``
    feature_names : d names
    image_shape : (8, 8) for digits (``X[i].reshape(image_shape)`` is the image), else None
    mean, scale : (d,) the training statistics applied to every split (``X = (raw -
        mean) / scale``; scale is 1 for constant features), or None when not standardised
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    feature_names: list[str]
    image_shape: tuple[int, int] | None = None
    mean: np.ndarray | None = field(default=None, repr=False)
    scale: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_features(self) -> int:
        """d, the number of input features."""
        return int(self.X_train.shape[1])

    @property
    def n_classes(self) -> int:
        """C, the number of classes."""
        return len(self.class_names)

    def __repr__(self) -> str:
        image = f", image_shape={self.image_shape}" if self.image_shape is not None else ""
        return (
            f"Dataset({self.name!r}, features={self.n_features}, classes={self.n_classes}, "
            f"train={len(self.y_train)}, val={len(self.y_val)}, test={len(self.y_test)}"
            f"{image}, standardized={self.mean is not None})"
        )


# --------------------------------------------------------------------------- parameters

# A parameter means the same thing in every dataset that has it: declared once here, with
# the default of each dataset given where it differs (dataclasses.replace).
N_SAMPLES = Param(Integer(low=10), 1000, "samples drawn")
NOISE = Param(Number(low=0), 0.2, "standard deviation of the Gaussian noise added")
N_FEATURES = Param(Integer(low=1), 2, "input features d")
N_CLASSES = Param(Integer(low=2), 3, "classes C")
_OPTIONAL_TEXT = Optional(Text())

#: Dataset name -> its own parameters: check, default and doc of each (``{}``: none).
DATASETS: dict[str, dict[str, Param]] = {
    "digits": {},
    "iris": {},
    "wine": {},
    "breast_cancer": {},
    "moons": {"n_samples": N_SAMPLES, "noise": NOISE},
    "circles": {
        "n_samples": N_SAMPLES,
        "noise": replace(NOISE, default=0.1),
        "factor": Param(
            Number(0, 1, low_open=True, high_open=True), 0.5, "inner radius / outer radius"
        ),
    },
    "blobs": {
        "n_samples": N_SAMPLES,
        "n_features": N_FEATURES,
        "centers": Param(Integer(low=2), 3, "blobs, one class each"),
        "cluster_std": Param(Number(low=0, low_open=True), 1.0, "standard deviation of a blob"),
    },
    "classification": {
        "n_samples": N_SAMPLES,
        "n_features": replace(N_FEATURES, default=20),
        "n_informative": Param(Integer(low=1), 5, "features that carry the classes"),
        "n_redundant": Param(Integer(low=0), 2, "linear combinations of the informative ones"),
        "n_classes": N_CLASSES,
        "n_clusters_per_class": Param(Integer(low=1), 1, "Gaussian clusters of each class"),
        "class_sep": Param(Number(low=0, low_open=True), 1.0, "distance between the classes"),
    },
    "gaussian_quantiles": {
        "n_samples": N_SAMPLES,
        "n_features": N_FEATURES,
        "n_classes": N_CLASSES,
    },
    "openml": {
        "openml_name": Param(_OPTIONAL_TEXT, None, "the dataset's name on openml.org"),
        "openml_id": Param(Optional(Integer(low=1)), None, "or its id"),
        "version": Param(
            OneOf((Const("active"), Integer(low=1))), "active", "a version number or 'active'"
        ),
        "data_home": Param(Optional(FolderPath()), None, "the download cache (null: sklearn's)"),
        "target_column": Param(_OPTIONAL_TEXT, None, "the label column (null: the default)"),
    },
}

#: ``dataset.name``: which loader.
DATASET_NAME = Param(Choice(tuple(sorted(DATASETS))), doc="the dataset", required=True)

#: Dataset name -> its own parameters' defaults.
DATASET_PARAMS: dict[str, dict[str, Any]] = {k: defaults_of(v) for k, v in DATASETS.items()}

#: The options of :func:`load_dataset` that every dataset shares.
SPLIT_PARAMS: dict[str, Param] = {
    "val_size": Param(Number(0, 1, high_open=True), 0.15, "fraction for validation (0: none)"),
    "test_size": Param(
        Number(0, 1, low_open=True, high_open=True), 0.15, "fraction held out for the test"
    ),
    "seed": Param(Integer(0, 2**32 - 1), 0, "seeds the split and the generators"),
    "standardize": Param(Flag(), True, "scale features with training-split statistics"),
}


def _check_classification(p: dict[str, Any]) -> None:
    if p["n_informative"] + p["n_redundant"] > p["n_features"]:
        raise ValueError(
            "dataset.n_informative + dataset.n_redundant must be <= dataset.n_features, "
            f"got {p['n_informative']} + {p['n_redundant']} > {p['n_features']}"
        )
    if p["n_classes"] * p["n_clusters_per_class"] > 2 ** p["n_informative"]:
        raise ValueError(
            "dataset.n_classes * dataset.n_clusters_per_class must be "
            f"<= 2 ** dataset.n_informative, got {p['n_classes']} * "
            f"{p['n_clusters_per_class']} > 2 ** {p['n_informative']}"
        )


def _check_quantiles(p: dict[str, Any]) -> None:
    if p["n_classes"] > p["n_samples"]:
        raise ValueError(
            "dataset.n_classes must be <= dataset.n_samples, "
            f"got {p['n_classes']} > {p['n_samples']}"
        )


def _check_blobs(p: dict[str, Any]) -> None:
    if p["centers"] > p["n_samples"]:
        raise ValueError(
            f"dataset.centers must be <= dataset.n_samples, got {p['centers']} > {p['n_samples']}"
        )


def _check_openml(p: dict[str, Any]) -> None:
    if (p["openml_name"] is None) == (p["openml_id"] is None):
        got = "neither" if p["openml_name"] is None else "both"
        raise ValueError(
            "dataset 'openml' needs exactly one of dataset.openml_name and "
            f"dataset.openml_id, got {got} (e.g. dataset.openml_name=mnist_784)"
        )


# Dataset name -> checks that involve several of its parameters.
_CROSS_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "classification": _check_classification,
    "gaussian_quantiles": _check_quantiles,
    "blobs": _check_blobs,
    "openml": _check_openml,
}


def check_dataset_params(
    name: str, params: Mapping[str, Any], *, extra: Sequence[str] = ()
) -> dict[str, Any]:
    """Validate the parameters of dataset ``name``; return them merged with its defaults.

    Raises ``ValueError`` with a one-line message naming the key as written in a config
    (``dataset.noise must be a non-negative finite number, got -1``). ``extra``: further
    keys the caller handles (listed as accepted when a key is unknown). Imports nothing heavy.
    """
    name = DATASET_NAME.check("dataset.name", name)
    given = {k: v for k, v in params.items() if k not in extra}
    what = f"parameter of {name!r}"
    checked = check_params(what, DATASETS[name], given, prefix="dataset.", extra=extra)
    if name in _CROSS_CHECKS:
        _CROSS_CHECKS[name](checked)
    return checked


def check_split_options(
    val_size: Any, test_size: Any, seed: Any = 0, standardize: Any = True
) -> dict[str, Any]:
    """Validate the options of :func:`load_dataset` that every dataset shares
    (``SPLIT_PARAMS``); return them normalised. Messages name ``dataset.<key>``. Imports
    nothing heavy."""
    given = {"val_size": val_size, "test_size": test_size, "seed": seed}
    checked = check_params(
        "split option",
        SPLIT_PARAMS,
        {**given, "standardize": standardize},
        prefix="dataset.",
    )
    if checked["val_size"] + checked["test_size"] >= 1:
        raise ValueError(
            "dataset.val_size + dataset.test_size must be < 1 to leave a training split, "
            f"got {val_size!r} + {test_size!r} = {checked['val_size'] + checked['test_size']:g}"
        )
    return checked


# --------------------------------------------------------------------------- loaders


@dataclass
class _Raw:
    """A dataset before splitting: X (n, d), raw labels y (n,), names."""

    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    class_names: list[str] | None = None  # name of each label in sorted(unique(y))
    image_shape: tuple[int, int] | None = None


def _bundled(loader_name: str, image_shape: tuple[int, int] | None = None):
    def load(params: dict[str, Any], seed: int) -> _Raw:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader_name)()
        labels = np.unique(bunch.target)
        return _Raw(
            X=bunch.data,
            y=bunch.target,
            feature_names=[str(f) for f in bunch.feature_names],
            class_names=[str(bunch.target_names[k]) for k in labels],
            image_shape=image_shape,
        )

    return load


def _generator(maker_name: str):
    def load(params: dict[str, Any], seed: int) -> _Raw:
        import sklearn.datasets

        X, y = getattr(sklearn.datasets, maker_name)(**params, random_state=seed)
        return _Raw(X=X, y=y, feature_names=[f"x{j}" for j in range(X.shape[1])])

    return load


def _cache_dir(data_home: str | None) -> str:
    """Where scikit-learn looks for cached downloads (without creating the folder)."""
    if data_home is not None:
        return data_home
    return os.path.expanduser(os.environ.get("SCIKIT_LEARN_DATA", "~/scikit_learn_data"))


def _load_openml(params: dict[str, Any], seed: int) -> _Raw:
    import sklearn.datasets

    name, data_id = params["openml_name"], params["openml_id"]
    what = f"dataset 'openml' ({f'name={name!r}' if name is not None else f'id={data_id}'})"
    target = params["target_column"]
    try:
        bunch = sklearn.datasets.fetch_openml(
            name=name,
            data_id=data_id,
            version=params["version"],
            data_home=params["data_home"],
            target_column="default-target" if target is None else target,
            as_frame=False,
            parser="auto",
        )
    except (OSError, http.client.HTTPException) as exc:  # URLError and HTTPError are OSErrors
        reason = str(getattr(exc, "reason", None) or exc).rstrip(".")
        raise ValueError(
            f"{what} could not be downloaded from openml.org and is not in the cache at "
            f"{_cache_dir(params['data_home'])}: {reason}. Connect to the internet once, "
            "or set dataset.data_home to a folder holding the cached copy."
        ) from exc
    except ValueError as exc:  # unknown name or version, STRING columns, bad target column
        raise ValueError(
            f"{what} could not be loaded from openml.org: {str(exc).rstrip('.')}. Check "
            "dataset.openml_name, dataset.openml_id, dataset.version and dataset.target_column."
        ) from exc
    return _raw_from_openml(what, bunch)


def _raw_from_openml(what: str, bunch: Any) -> _Raw:
    """Numeric features and a single label column from a ``fetch_openml`` Bunch."""
    X, y = bunch.data, bunch.target
    if hasattr(X, "toarray"):  # sparse ARFF
        X = X.toarray()
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{what} has features of shape {X.shape}; mlpx needs a table (n, d)")
    names = [str(f) for f in getattr(bunch, "feature_names", None) or []] or [
        f"x{j}" for j in range(X.shape[1])
    ]
    if X.dtype.kind not in "biuf":
        bad = []
        for j in range(X.shape[1]):
            try:
                X[:, j].astype(np.float64)
            except (TypeError, ValueError):
                bad.append(names[j])
        if bad:
            raise ValueError(
                f"{what} has non-numeric feature columns ({', '.join(bad[:5])}"
                f"{', ...' if len(bad) > 5 else ''}); mlpx needs numeric features: "
                "encode them first or pick another dataset"
            )
        X = X.astype(np.float64)
    if np.isnan(X).any():
        raise ValueError(
            f"{what} has missing values in {int(np.isnan(X).any(axis=0).sum())} feature "
            "columns; mlpx needs complete data: pick another dataset"
        )
    if y is None or np.ndim(y) != 1:
        raise ValueError(
            f"{what} needs exactly one target column, got "
            f"{'none' if y is None else f'shape {np.shape(y)}'}: set dataset.target_column"
        )
    y = np.asarray(y)
    if y.dtype == object and any(v is None or (isinstance(v, float) and v != v) for v in y):
        raise ValueError(
            f"{what} has samples without a label; mlpx needs complete data: "
            "set dataset.target_column or pick another dataset"
        )
    if y.dtype.kind == "f":
        if np.isnan(y).any() or not np.all(y == np.round(y)):
            raise ValueError(
                f"{what} has a continuous target (a regression task); mlpx classifies: "
                "set dataset.target_column to a categorical column or pick another dataset"
            )
        y = y.astype(np.int64)
    if y.dtype.kind not in "biu":
        y = y.astype(str)
        try:  # labels "0".."10" sort as numbers, not as strings
            order = {v: float(v) for v in np.unique(y)}
        except ValueError:
            order = None
        if order is not None:
            ranks = {v: r for r, v in enumerate(sorted(order, key=order.get))}
            class_names = sorted(order, key=order.get)
            return _Raw(X, np.array([ranks[v] for v in y]), names, class_names)
    return _Raw(X, y, names)


# Dataset name -> loader(params, seed) -> _Raw.
_LOADERS: dict[str, Callable[[dict[str, Any], int], _Raw]] = {
    "digits": _bundled("load_digits", image_shape=(8, 8)),
    "iris": _bundled("load_iris"),
    "wine": _bundled("load_wine"),
    "breast_cancer": _bundled("load_breast_cancer"),
    "moons": _generator("make_moons"),
    "circles": _generator("make_circles"),
    "blobs": _generator("make_blobs"),
    "classification": _generator("make_classification"),
    "gaussian_quantiles": _generator("make_gaussian_quantiles"),
    "openml": _load_openml,
}


# --------------------------------------------------------------------------- split, scale


def _split_indices(
    name: str, y: np.ndarray, class_names: list[str], val_size: float, test_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified, seeded train/val/test index arrays (val empty when val_size is 0).

    y : (n,) labels 0..C-1; the arrays index it, in the shuffled order of the split.
    """
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    try:
        rest, test = train_test_split(idx, test_size=test_size, stratify=y, random_state=seed)
        if val_size > 0:
            train, val = train_test_split(
                rest,
                test_size=val_size / (1.0 - test_size),
                stratify=y[rest],
                random_state=seed,
            )
        else:
            train, val = rest, idx[:0]
    except ValueError as exc:
        counts = dict(zip(class_names, np.bincount(y).tolist(), strict=True))
        raise ValueError(
            f"dataset {name!r} cannot be split into stratified train/val/test parts with "
            f"dataset.val_size={val_size} and dataset.test_size={test_size} "
            f"(class counts {counts}): {exc}. Change the fractions or use more samples."
        ) from exc
    return train, val, test


def _fit_scaler(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of X (n, d) per feature; std 1 where a feature is (numerically) constant."""
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    tiny = 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0)
    return mean, np.where(std > tiny, std, 1.0)


def load_dataset(
    name: str,
    *,
    val_size: float = 0.15,
    test_size: float = 0.15,
    seed: int = 0,
    standardize: bool = True,
    **params: Any,
) -> Dataset:
    """Load dataset ``name``, split it and (by default) standardise it.

    The split is stratified by class and seeded: test takes ``ceil(test_size * n)``
    samples, val about ``val_size * n`` of the rest, train the remainder. Generators get
    ``random_state=seed`` too. With ``standardize``, each feature's mean and std are
    fitted on the training split and applied to every split (constant features are only
    centred). ``params`` are the dataset's own (see ``DATASETS[name]``).
    """
    checked = check_dataset_params(name, params)
    split = check_split_options(val_size, test_size, seed, standardize)
    val_size, test_size, seed = split["val_size"], split["test_size"], split["seed"]

    key = data_cache.cache_key(
        name, checked, {"val_size": val_size, "test_size": test_size, "seed": seed}
    )
    cached = data_cache.load(key)
    if cached is None:
        cached = _load_and_split(name, checked, float(val_size), float(test_size), int(seed))
        data_cache.save(key, cached)
    X, y, class_names = cached.X, cached.y, cached.class_names
    train, val, test = cached.train, cached.val, cached.test
    mean = scale = None
    if standardize:
        mean, scale = _fit_scaler(X[train])
        X = (X - mean) / scale
    return Dataset(
        name=name,
        X_train=X[train],
        y_train=y[train],
        X_val=X[val],
        y_val=y[val],
        X_test=X[test],
        y_test=y[test],
        class_names=class_names,
        feature_names=cached.feature_names,
        image_shape=cached.image_shape,
        mean=mean,
        scale=scale,
    )


def _load_and_split(
    name: str, checked: dict[str, Any], val_size: float, test_size: float, seed: int
) -> data_cache.CachedSplit:
    """Load with scikit-learn, encode the labels as 0..C-1 and split (what the cache keeps)."""
    raw = _LOADERS[name](checked, seed)
    X = np.ascontiguousarray(raw.X, dtype=np.float64)
    labels, y = np.unique(raw.y, return_inverse=True)
    y = y.astype(np.int64).reshape(-1)
    class_names = raw.class_names or [str(v) for v in labels]
    if len(labels) < 2:
        raise ValueError(f"dataset {name!r} has a single class {class_names}; it needs two or more")
    train, val, test = _split_indices(name, y, class_names, val_size, test_size, seed)
    return data_cache.CachedSplit(
        X, y, train, val, test, class_names, raw.feature_names, raw.image_shape
    )


# --------------------------------------------------------------------------- batches


def iterate_minibatches(
    n: int, batch_size: int, rng: np.random.Generator | None, shuffle: bool = True
) -> Iterator[np.ndarray]:
    """Index arrays covering ``range(n)`` once, in batches of ``batch_size``.

    With ``shuffle`` the order is ``rng.permutation(n)`` (one draw per epoch from the
    run's Generator); without, consecutive slices ``[0, b), [b, 2b), ...``. The last
    batch keeps the remainder (``n % batch_size`` samples) rather than dropping it.
    Arguments are checked at call time, not at the first ``next``.
    """
    batch_size = Integer(low=1).check("trainer.batch_size", batch_size)
    n = Integer(low=0).check("n", n)
    if shuffle and not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"rng must be a numpy.random.Generator when shuffling, got {type(rng).__name__}"
        )
    order = rng.permutation(n) if shuffle else np.arange(n)
    return (order[start : start + batch_size] for start in range(0, n, batch_size))
