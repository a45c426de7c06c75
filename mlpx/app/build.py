"""Settings -> the objects of a run: backend, dataset, network, optimizer, tracker.

One assembly, used by the ``mlpx`` command (:mod:`mlpx.app.cli`) and by the studies of
``experiments/``, so that a study rebuilds a run's network exactly as the run built it::

    settings = settings_from_dict(config)          # checked, nothing built (mlpx.app.config)
    built = build(settings)                        # backend, data, rng, model, optimizer
    fit(built.model, built.optimizer, built.data, settings.trainer, tracker, rng=built.rng)

Every function raises ``ValueError`` with one line on a bad value that only shows when
building: a backend library that is not installed or a GPU that is not visible
(:class:`mlpx.backend.BackendError`), ``backend.jit=true`` without a loadable Numba
(:class:`mlpx.fast.kernels.JitError`), a dataset that cannot be downloaded or split.
The tracker's failures are :class:`mlpx.tracking.TrackingError`. Nothing here imports
Hydra; scikit-learn, MLflow and the array libraries are imported when used.
"""

from __future__ import annotations

import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlpx.app.config import BackendSettings, Settings, settings_from_dict
from mlpx.app.limits import bounded

if TYPE_CHECKING:
    from mlpx.backend import Backend
    from mlpx.data import Dataset
    from mlpx.nn.model import MLP
    from mlpx.nn.optim import Optimizer

__all__ = [
    "Built",
    "build",
    "build_backend",
    "build_dataset",
    "build_model",
    "build_optimizer",
    "build_tracker",
    "environment_tags",
    "git_commit",
    "run_settings",
    "run_tags",
]


@dataclass(frozen=True)
class Built:
    """What :func:`build` made of the settings.

    backend : the array library and device (``backend.device_name``: ``cuda:0``, ...).
    jit : whether the NumPy training step runs the compiled kernels (``backend.jit``
        resolved: ``auto`` -> is Numba installed and loadable?).
    rng : the run's one Generator (``trainer.seed``): it initialised ``model`` and goes on
        to draw the batches.
    """

    backend: Backend
    jit: bool
    data: Dataset
    rng: np.random.Generator
    model: MLP
    optimizer: Optimizer


def build_backend(backend: BackendSettings) -> tuple[Backend, bool]:
    """(the backend, whether the compiled kernels run): imports the array library and looks
    for the device; ``backend.jit=true`` loads Numba. One-line ``ValueError`` otherwise."""
    from mlpx.backend import get_backend
    from mlpx.fast import kernels

    resolved = get_backend(backend.name, backend.device)
    if backend.name != "numpy" and backend.jit != "true":
        return resolved, False  # the kernels are NumPy's: no Numba to load
    return resolved, kernels.resolve(backend.jit, key="backend.jit") and backend.name == "numpy"


def build_dataset(settings: Settings) -> Dataset:
    """The ``dataset`` group's data, split and (by default) standardised."""
    from mlpx.data import load_dataset

    ds = settings.dataset
    return load_dataset(
        ds.name,
        val_size=ds.val_size,
        test_size=ds.test_size,
        seed=ds.seed,
        standardize=ds.standardize,
        **ds.params,
    )


def build_model(settings: Settings, data: Dataset, rng: np.random.Generator | None = None) -> MLP:
    """The ``model`` group's network for ``data``'s features and classes, on the configured
    backend; initialised from ``rng`` (default: a new Generator of ``trainer.seed``)."""
    from mlpx.nn.model import MLP

    m, b = settings.model, settings.backend
    return MLP(
        m.sizes(data.n_features, data.n_classes),
        activations=m.activations,
        init=m.init,
        dtype=b.dtype,
        init_std=m.init_std,
        rng=rng if rng is not None else np.random.default_rng(settings.trainer.seed),
        backend=b.name,
        device=b.device,
        jit=b.jit,
    )


def build_optimizer(settings: Settings) -> Optimizer:
    """The ``optimizer`` group's optimizer (schedule included; ``clip_norm`` is applied by
    ``train.fit``)."""
    from mlpx.nn.optim import make_optimizer

    o = settings.optimizer
    return make_optimizer(
        o.name, lr=o.lr, schedule=o.schedule, jit=settings.backend.jit, **o.hparams
    )


def build(settings: Settings) -> Built:
    """Backend, data, the run's Generator, the network (initialised from it) and the
    optimizer, in that order (the backend first: a missing library fails before loading)."""
    backend, jit = build_backend(settings.backend)
    data = build_dataset(settings)
    rng = np.random.default_rng(settings.trainer.seed)
    model = build_model(settings, data, rng)
    return Built(backend, jit, data, rng, model, build_optimizer(settings))


# ------------------------------------------------------------------------------ tracking


def git_commit() -> str | None:
    """The commit of the mlpx checkout this code runs from, if any."""
    try:
        out = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment_tags() -> dict[str, str]:
    """What is needed to repeat a run: versions of Python and the stack, the git commit."""
    from importlib.metadata import PackageNotFoundError, version

    from mlpx import __version__

    tags = {"mlpx.version": __version__, "python": platform.python_version()}
    packages = ("numpy", "scikit-learn", "hydra-core", "omegaconf", "mlflow", "torch", "numba")
    for package in packages:
        try:
            tags[f"version.{package}"] = version(package)
        except PackageNotFoundError:
            pass
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["git_commit"] = commit
    return tags


def run_tags(settings: Settings, built: Built | None = None) -> dict[str, str]:
    """The tags that say what ran where: dataset, backend, device, dtype, optimizer and
    ``jit`` (whether the compiled kernels ran), then :func:`environment_tags`."""
    if built is None:
        backend, jit = build_backend(settings.backend)
    else:
        backend, jit = built.backend, built.jit
    tags = {
        "dataset": settings.dataset.name,
        "backend": settings.backend.name,
        "device": backend.device_name,
        "dtype": settings.backend.dtype,
        "optimizer": settings.optimizer.name,
        "jit": str(jit).lower(),
    }
    return tags | environment_tags()


def build_tracker(
    settings: Settings,
    params: dict[str, Any],
    *,
    tags: dict[str, str] | None = None,
    parent_run_id: str | None = None,
    suffix: str = "",
    resume_run_id: str | None = None,
) -> Any:
    """An MLflow tracker for the run, or a ``NullTracker`` with ``logger=none``.

    params : logged as the run's params (``mlpx.tracking.flatten`` of the config).
    tags : the new run's tags (:func:`run_tags` and the caller's own).
    parent_run_id : a sweep's parent run; suffix : what this job of the sweep varies,
        appended to the run name (``adam-lr0.01-w64-relu [optimizer.lr=0.01]``).
    resume_run_id : a run in the configured store to continue instead (tagged
        ``mlpx.resumed``; its params stay). Raises ``TrackingError`` (one line).
    """
    from mlpx.tracking import MlflowTracker, NullTracker, check_tracking_uri

    lg = settings.logger
    if lg.name == "none":
        return NullTracker()
    uri = check_tracking_uri(lg.tracking_uri)
    if resume_run_id is not None:
        tracker = MlflowTracker(
            uri,
            lg.experiment_name,
            None,
            resume_run_id=resume_run_id,
            direct_sqlite=lg.direct_sqlite,
        )
        tracker.set_tags({"mlpx.resumed": "true"})
        return tracker
    name = lg.run_name or settings.run_name()
    if suffix and not lg.run_name:
        name = f"{name} [{suffix}]"
    name = bounded(name)  # model.depth=20000 would make a 40,000-character name
    tracker = MlflowTracker(
        uri,
        lg.experiment_name,
        name,
        parent_run_id=parent_run_id,
        tags=dict(tags or {}),
        direct_sqlite=lg.direct_sqlite,
    )
    tracker.log_params(params)
    return tracker


# ----------------------------------------------------------------------- recorded runs


def run_settings(client: Any, run_id: str) -> Settings:
    """The checked settings of a recorded run, from its ``config/config.yaml`` artifact
    (``client``: an ``mlflow.tracking.MlflowClient``). With :func:`build_dataset` and
    :func:`build_model` a study rebuilds the run's data and network, then loads the
    weights of a checkpoint (``model.load_state_dict(load_checkpoint(path).model)``)."""
    import tempfile

    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, "config/config.yaml", tmp)
        config = yaml.safe_load(Path(path).read_text())
    return settings_from_dict(config)
