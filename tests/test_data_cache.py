"""The split-dataset cache (mlpx/data_cache.py): a hit is the uncached dataset, bit for bit."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from mlpx import data_cache
from mlpx.data import load_dataset

ARRAYS = ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test", "mean", "scale")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("MLPX_DATA_CACHE", str(folder))
    return folder


def _uncached(monkeypatch, name, **kw):
    with monkeypatch.context() as m:
        m.setenv("MLPX_DATA_CACHE", "off")
        return load_dataset(name, **kw)


def _same(a, b) -> None:
    for k in ARRAYS:
        x, y = getattr(a, k), getattr(b, k)
        assert (x is None) == (y is None), k
        if x is not None:
            assert x.dtype == y.dtype and x.shape == y.shape, k
            np.testing.assert_array_equal(x, y, err_msg=k)
    assert a.class_names == b.class_names
    assert a.feature_names == b.feature_names
    assert a.image_shape == b.image_shape


@pytest.mark.parametrize(
    "name, kw",
    [
        ("digits", {"seed": 3}),
        ("iris", {"val_size": 0.0, "test_size": 0.3}),
        ("moons", {"n_samples": 300, "noise": 0.3, "seed": 7}),
        ("breast_cancer", {"standardize": False}),
    ],
)
def test_a_hit_is_the_uncached_dataset(cache, monkeypatch, name, kw):
    first = load_dataset(name, **kw)  # miss: loads with scikit-learn and writes the file
    files = list(cache.glob("*.npz"))
    assert len(files) == 1
    second = load_dataset(name, **kw)  # hit
    _same(first, second)
    _same(second, _uncached(monkeypatch, name, **kw))


def test_the_key_separates_parameters_splits_and_seeds(cache):
    load_dataset("moons", n_samples=200, seed=0)
    load_dataset("moons", n_samples=200, seed=1)
    load_dataset("moons", n_samples=201, seed=0)
    load_dataset("moons", n_samples=200, seed=0, test_size=0.2)
    assert len(list(cache.glob("*.npz"))) == 4
    a = load_dataset("moons", n_samples=200, seed=0)
    b = load_dataset("moons", n_samples=200, seed=1)
    assert not np.array_equal(a.X_train, b.X_train)


def test_the_key_holds_library_versions(monkeypatch):
    split = {"val_size": 0.1, "test_size": 0.1, "seed": 0}
    key = data_cache.cache_key("digits", {}, split)
    assert key == data_cache.cache_key("digits", {}, dict(split))
    monkeypatch.setattr(data_cache.np, "__version__", "0.0.1")
    assert data_cache.cache_key("digits", {}, split) != key


@pytest.mark.parametrize("damage", [b"", b"not a zip file", None])
def test_a_damaged_file_is_ignored_and_rewritten(cache, monkeypatch, damage):
    good = load_dataset("wine", seed=2)
    (path,) = cache.glob("*.npz")
    if damage is None:  # a readable file whose indices point outside X
        with np.load(path) as z:
            arrays = dict(z)
        arrays["test"] = arrays["test"] + 10_000
        np.savez(path, **arrays)
    else:
        path.write_bytes(damage)
    again = load_dataset("wine", seed=2)
    _same(good, again)
    assert data_cache.load(path.stem) is not None  # rewritten whole


def test_a_file_under_another_key_is_not_used(cache):
    load_dataset("iris", seed=0)
    (path,) = cache.glob("*.npz")
    path.rename(cache / "iris-000000000000000000000000.npz")
    assert data_cache.load("iris-000000000000000000000000") is None


def test_off_writes_nothing_and_an_unwritable_folder_is_no_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPX_DATA_CACHE", "off")
    assert data_cache.cache_dir() is None
    load_dataset("iris")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MLPX_DATA_CACHE", str(blocker / "cache"))
    d = load_dataset("iris", seed=1)
    assert d.n_classes == 3 and not (blocker / "cache").exists()


def test_default_folder_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("MLPX_DATA_CACHE", raising=False)
    monkeypatch.delenv("MLPX_CACHE_HOME", raising=False)  # tests/conftest.py sets it
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert data_cache.cache_dir() == tmp_path / "mlpx" / "datasets"


def test_large_sets_are_not_cached(cache, monkeypatch):
    monkeypatch.setattr(data_cache, "MAX_BYTES", 1000)
    load_dataset("iris")
    assert not list(cache.glob("*.npz"))


def test_a_hit_does_not_import_scikit_learn(cache):
    code = (
        "import sys; from mlpx.data import load_dataset; d = load_dataset('digits', seed=5); "
        "print(d.n_classes, 'sklearn' in sys.modules)"
    )
    env = {**os.environ, "MLPX_DATA_CACHE": str(cache)}
    runs = [
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        for _ in range(2)
    ]
    assert [r.stdout.split() for r in runs] == [["10", "True"], ["10", "False"]], runs
