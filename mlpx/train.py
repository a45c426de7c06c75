"""The training loop: epochs of seeded mini-batches, evaluation, early stopping, logging.

``fit`` knows nothing of Hydra or MLflow: it talks to a :class:`mlpx.tracking.Tracker`.
Every metric is logged against the optimizer step (the x-axis of the MLflow charts):

* every ``log_every_n_steps`` steps: ``train/loss_window`` (the mean loss of those steps),
  ``grad_norm/layer_<l>`` (Frobenius norm of ``delta_W_l``, l = 1..L) and
  ``grad_norm/global`` (norm of every ``delta_W``, ``delta_b``);
* at the end of each epoch: ``train/loss``, ``train/accuracy`` (means over the epoch's
  mini-batches, before each update), ``epoch``, ``lr`` and, every ``eval_every`` epochs,
  ``val/loss``, ``val/accuracy``;
* at the end: ``test/loss``, ``test/accuracy``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlpx.analysis import health
from mlpx.backend import is_numpy
from mlpx.checkpoint import Checkpointer, TrainState
from mlpx.data import Dataset, iterate_minibatches
from mlpx.diagnose import divergence_advice, initial_scale
from mlpx.nn.model import MLP, Gradients
from mlpx.nn.optim import Optimizer, clip_grad_norm, global_norm
from mlpx.tracking import NullTracker, Tracker

History = dict[str, list[tuple[int, float]]]


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` evaluations."""

    patience: int = 0  # 0: off
    min_delta: float = 0.0
    monitor: str = "val/loss"
    restore_best: bool = True

    @property
    def mode(self) -> str:
        return "min" if self.monitor.endswith("loss") else "max"


@dataclass(frozen=True)
class TrainerSettings:
    """``trainer`` group: the loop, its logging cadence and the sweep objective."""

    epochs: int = 30
    batch_size: int = 32
    seed: int = 0
    shuffle: bool = True
    eval_every: int = 1
    log_every_n_steps: int = 50
    early_stopping: EarlyStopping = field(default_factory=EarlyStopping)
    objective: str = "val/accuracy"
    direction: str = "maximize"
    progress: str = "auto"
    checkpoint_every: int = 5  # epochs; 0: only at the end and on interruption
    checkpoint_min_seconds: float = 10.0  # and at least this many seconds apart; 0: epochs only
    keep_checkpoints: int = 3
    resume: str | None = None  # a checkpoint file or folder, or an MLflow run id


class DivergenceError(RuntimeError):
    """The loss or a gradient became NaN or infinite."""


@dataclass
class FitResult:
    """What a run produced: metric histories, final test metrics and the objective."""

    history: History = field(default_factory=dict)
    epochs_run: int = 0
    steps: int = 0
    best_epoch: int = 0
    stopped_early: bool = False
    #: the epoch at which ``fit``'s ``on_eval`` hook stopped training (0: it did not)
    stopped_by_hook: int = 0
    test: dict[str, float] = field(default_factory=dict)
    objective: float = math.nan
    seconds: float = 0.0

    def last(self, key: str) -> float:
        """The last recorded value of ``key`` (NaN when never recorded)."""
        values = self.history.get(key)
        return values[-1][1] if values else math.nan


def _squared_norm(a: Any) -> float:
    """``||a||^2``: one BLAS dot for a NumPy array (a training step's gradients are
    contiguous), ``global_norm`` squared on other backends."""
    if type(a) is np.ndarray and a.flags.c_contiguous:
        v = a.reshape(-1)
        return float(v @ v)
    return global_norm([a]) ** 2


def _grad_norms(g: Gradients) -> dict[str, float]:
    """``grad_norm/layer_<l>`` = ||delta_W_l||_F and the global norm over every gradient."""
    squares = [_squared_norm(dW) for dW in g.weights]
    out = {f"grad_norm/layer_{i + 1}": math.sqrt(s) for i, s in enumerate(squares)}
    total = sum(squares) + sum(_squared_norm(db) for db in g.biases)
    out["grad_norm/global"] = math.sqrt(total)
    return out


def _diverged(epoch: int, step: int, what: str, value: float, advice: str) -> DivergenceError:
    return DivergenceError(
        f"training diverged at epoch {epoch}, step {step}: {what} is {value}; {advice}"
    )


def _improved(value: float, best: float, mode: str, min_delta: float) -> bool:
    if math.isnan(best):
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _show_progress(setting: str) -> bool:
    if setting == "auto":
        return sys.stderr.isatty()
    return setting == "true"


class GenericStep:
    """A training step through the model's own code (:meth:`MLP.train_batch`) and the
    optimizer's generic rule: what runs on torch, cupy and array_api_strict. On NumPy
    :class:`mlpx.fast.step.FastStep` has the same two methods."""

    def __init__(self, model: MLP, optimizer: Optimizer) -> None:
        self.model, self.optimizer = model, optimizer
        self.g: Gradients | None = None

    def train_batch(self, X: Any, y: Any, rows: Any) -> tuple[Any, Any, Gradients]:
        loss, correct, self.g = self.model.train_batch(X, y, rows)
        return loss, correct, self.g

    def update(self) -> None:
        assert self.g is not None, "train_batch comes before update"
        self.optimizer.step(self.model.parameters(), self.g.parameters())


def make_step(model: MLP, optimizer: Optimizer) -> Any:
    """The fastest step for the model's backend: :class:`mlpx.fast.step.FastStep` on NumPy
    (kept buffers, flat parameter and gradient buffers, optional kernels), else
    :class:`GenericStep`. Both: ``train_batch(X, y, rows) -> (loss, correct, g)``, then
    ``update()``."""
    if is_numpy(model.xp):
        from mlpx.fast.step import FastStep

        return FastStep(model, optimizer)
    return GenericStep(model, optimizer)


class Interrupted(RuntimeError):
    """Training stopped on SIGINT/SIGTERM after finishing its step; a checkpoint was written."""

    def __init__(self, signum: int, epoch: int, step: int, checkpoint: Any) -> None:
        self.signum, self.epoch, self.step, self.checkpoint = signum, epoch, step, checkpoint
        super().__init__(f"interrupted by signal {signum} in epoch {epoch} after step {step}")


class StopRequest:
    """Set by a signal handler; ``fit`` checks it after every step."""

    def __init__(self) -> None:
        self.signum: int | None = None


def fit(
    model: MLP,
    optimizer: Optimizer,
    data: Dataset,
    cfg: TrainerSettings,
    tracker: Tracker | None = None,
    *,
    rng: np.random.Generator | None = None,
    clip_norm: float | None = None,
    log_grad_norms: bool = True,
    checkpointer: Checkpointer | None = None,
    resume: TrainState | None = None,
    stop: StopRequest | None = None,
    health_metrics: bool = False,
    on_eval: Callable[[int, dict[str, float]], bool] | None = None,
) -> FitResult:
    """Train ``model`` on ``data.X_train`` with ``optimizer``; evaluate and log as it goes.

    ``rng`` (default: seeded with ``cfg.seed``) orders the mini-batches; pass the generator
    that initialised the model so one seed drives the whole run. ``checkpointer`` writes a
    checkpoint when its ``due(epoch)`` says, at the end and on interruption;
    ``resume`` (from :meth:`mlpx.checkpoint.Checkpoint.restore`) continues a run exactly
    where it stopped, mid-epoch included. When ``stop.signum`` is set (by a signal handler)
    the current step finishes, a checkpoint is written and :class:`Interrupted` is raised.
    ``health_metrics`` adds :func:`mlpx.analysis.health.health_metrics` (per-layer
    weight norms, update ratios, delta_a norms, activation statistics) at every logging step.
    ``on_eval(epoch, metrics)`` is called after each evaluation (``metrics``: the epoch's
    ``train/*`` and ``val/*`` values); when it returns True training stops there (e.g. a
    sweeper pruned the trial) and ``FitResult.stopped_by_hook`` is that epoch.

    Raises :class:`DivergenceError` when the loss or the gradients stop being finite
    (checked every step on NumPy; on other backends at each logging step and epoch end, so
    that a GPU never waits for the host in between).
    """
    loop = _Loop(model, optimizer, data, cfg, tracker or NullTracker(), resume or TrainState())
    loop.rng = rng if rng is not None else np.random.default_rng(cfg.seed)
    loop.clip_norm, loop.log_grad_norms = clip_norm, log_grad_norms
    loop.health_metrics, loop.checkpointer, loop.stop = health_metrics, checkpointer, stop
    loop.on_eval = on_eval
    return loop.run()


class _Loop:
    """The state of one :func:`fit` call and its three parts: an epoch of steps
    (:meth:`epoch`), the logging of steps and epochs (:meth:`log_step`, :meth:`log`), and
    early stopping with the final evaluation (:meth:`early_stop`, :meth:`finish`)."""

    def __init__(
        self,
        model: MLP,
        optimizer: Optimizer,
        data: Dataset,
        cfg: TrainerSettings,
        tracker: Tracker,
        st: TrainState,
    ) -> None:
        self.model, self.optimizer, self.data, self.cfg, self.tracker = (
            model,
            optimizer,
            data,
            cfg,
            tracker,
        )
        self.st = st
        self.result = FitResult(history=st.history)
        self.rng: np.random.Generator = np.random.default_rng(cfg.seed)
        self.clip_norm: float | None = None
        self.log_grad_norms = True
        self.health_metrics = False
        self.checkpointer: Checkpointer | None = None
        self.stop: StopRequest | None = None
        self.on_eval: Callable[[int, dict[str, float]], bool] | None = None
        # Data are checked and moved to the model's device and dtype once, not per batch.
        self.fast = is_numpy(model.xp)
        self.X_train, self.y_train = model.check_data(data.X_train, data.y_train)
        self.has_val = data.X_val.shape[0] > 0
        self.X_val, self.y_val = (
            model.check_data(data.X_val, data.y_val) if self.has_val else (None, None)
        )
        es = cfg.early_stopping
        monitor_needs_val = es.monitor.startswith("val/") or cfg.objective.startswith("val/")
        if (es.patience or monitor_needs_val) and not self.has_val:
            raise ValueError(
                "dataset.val_size is 0 but trainer.early_stopping.monitor or trainer.objective "
                "uses val/ metrics: set dataset.val_size > 0 or monitor a train/ metric"
            )
        self.stepper = make_step(model, optimizer)
        self.init_scale = initial_scale(model)  # for the divergence message (mlpx.diagnose)

    def advice(self) -> str:
        """The likely cause of a divergence, and the key to change."""
        return divergence_advice(self.optimizer, self.init_scale)

    # ---------------------------------------------------------------- the run
    def run(self) -> FitResult:
        cfg, st, result = self.cfg, self.st, self.result
        start = time.perf_counter()
        result.stopped_early = st.stopped
        if self.checkpointer is not None:  # periodic checkpoints count from here
            self.checkpointer.start(st.epoch)
        # Overflow and NaN are caught by the divergence guard with one clear line; NumPy's
        # own warnings about them would only add noise.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for epoch in range(st.epoch + 1, 0 if st.stopped else cfg.epochs + 1):
                t0 = time.perf_counter()
                try:
                    metrics = self.epoch(epoch)
                except OverflowError:  # a schedule's gamma ** t beyond the float range
                    raise _diverged(
                        epoch, st.step + 1, "the learning rate", math.inf, self.advice()
                    ) from None
                evaluate = epoch % cfg.eval_every == 0 or epoch == cfg.epochs
                if evaluate and self.has_val:
                    val_loss, val_acc = self.model.evaluate(self.X_val, self.y_val, validate=False)
                    metrics.update({"val/loss": val_loss, "val/accuracy": val_acc})
                self.log(metrics, st.step)
                st.epoch = epoch
                self.show(epoch, metrics, time.perf_counter() - t0)
                stopping = self.early_stop(epoch, metrics) if evaluate else False
                hook = evaluate and self.on_eval is not None and self.on_eval(epoch, metrics)
                st.stopped = stopping
                last = stopping or hook or epoch == cfg.epochs
                if self.checkpointer is not None and (self.checkpointer.due(epoch) or last):
                    self.checkpointer.save(self.model, self.optimizer, self.rng, st)
                if stopping:
                    result.stopped_early = True
                    break
                if hook:
                    result.stopped_by_hook = epoch
                    break
        return self.finish(start)

    def epoch(self, epoch: int) -> dict[str, float]:
        """One epoch of mini-batch steps (or the rest of one, on resume); returns the
        epoch's ``train/loss``, ``train/accuracy``, ``epoch`` and ``lr``."""
        cfg, st, fast = self.cfg, self.st, self.fast
        n = self.X_train.shape[0]
        if st.pending:  # resuming inside an epoch: its order and sums were saved
            batches, sums = st.pending, st.sums
        else:
            batches = list(iterate_minibatches(n, cfg.batch_size, self.rng, cfg.shuffle))
            sums = {"loss": 0.0, "correct": 0.0, "window_loss": 0.0, "window_steps": 0.0}
        st.pending, st.sums = [], {}
        # Sums stay on the device (0-d arrays) until they are logged.
        epoch_loss, epoch_correct = sums["loss"], int(sums["correct"])
        window_loss, window_steps = sums["window_loss"], int(sums["window_steps"])
        if not fast:  # the epoch's order goes to the device once, then is sliced there
            order = self.model.backend.asarray(np.concatenate(batches))
            ends = np.cumsum([len(idx) for idx in batches]).tolist()
        for b, idx in enumerate(batches):
            rows = idx if fast else order[ends[b] - len(idx) : ends[b]]
            loss, correct, g = self.stepper.train_batch(self.X_train, self.y_train, rows)
            step = st.step + 1
            if fast and not math.isfinite(loss):
                raise _diverged(epoch, step, "train/loss", float(loss), self.advice())
            epoch_correct = epoch_correct + correct
            epoch_loss = epoch_loss + loss * len(idx)
            window_loss = window_loss + loss
            window_steps += 1
            log_now = step % cfg.log_every_n_steps == 0
            norms = _grad_norms(g) if (log_now and self.log_grad_norms) else None
            # The health metrics read this batch's forward cache and need W before the step.
            before = health.weight_snapshot(self.model) if log_now and self.health_metrics else None
            if self.clip_norm is not None:
                total = clip_grad_norm(g.parameters(), self.clip_norm)
                if not math.isfinite(total):
                    raise _diverged(epoch, step, "the gradient norm", total, self.advice())
            self.stepper.update()
            st.step = step
            if log_now:
                window = float(window_loss) / window_steps
                self.log_step(epoch, step, window, norms, g, before)
                window_loss, window_steps = 0.0, 0
            if self.stop is not None and self.stop.signum is not None:
                st.pending = batches[b + 1 :]
                st.sums = {
                    "loss": float(epoch_loss),
                    "correct": float(epoch_correct),
                    "window_loss": float(window_loss),
                    "window_steps": float(window_steps),
                }
                st.epoch = epoch - 1
                path = (
                    self.checkpointer.save(self.model, self.optimizer, self.rng, st)
                    if self.checkpointer
                    else None
                )
                raise Interrupted(self.stop.signum, epoch, step, path)
        epoch_loss = float(epoch_loss) / n
        if not math.isfinite(epoch_loss):
            raise _diverged(epoch, st.step, "train/loss", epoch_loss, self.advice())
        return {
            "train/loss": epoch_loss,
            "train/accuracy": int(epoch_correct) / n,
            "epoch": float(epoch),
            "lr": float(self.optimizer.lr),
        }

    # ---------------------------------------------------------------- logging
    def log(self, metrics: dict[str, float], step: int) -> None:
        """Record ``metrics`` at ``step`` in the history and send them to the tracker."""
        hist = self.result.history
        for k, v in metrics.items():
            hist.setdefault(k, []).append((step, v))
        self.tracker.log_metrics(metrics, step=step)

    def log_step(
        self,
        epoch: int,
        step: int,
        window: float,
        norms: dict[str, float] | None,
        g: Gradients,
        before: Any,
    ) -> None:
        """Every ``log_every_n_steps``: ``train/loss_window`` (the mean loss of those steps;
        ``train/loss`` is the epoch's), the gradient norms and (optionally) the health
        metrics; a non-finite value stops the run."""
        if not math.isfinite(window):
            raise _diverged(epoch, step, "train/loss", window, self.advice())
        metrics = {"train/loss_window": window}
        if norms is not None:
            if not math.isfinite(norms["grad_norm/global"]):
                raise _diverged(
                    epoch, step, "the gradient norm", norms["grad_norm/global"], self.advice()
                )
            metrics.update(norms)
        if before is not None:
            metrics.update(health.health_metrics(self.model, g, before=before))
        self.log(metrics, step)

    def show(self, epoch: int, metrics: dict[str, float], seconds: float) -> None:
        """The epoch's line on stderr when ``trainer.progress`` asks for it."""
        if not _show_progress(self.cfg.progress):
            return
        shown = "  ".join(
            f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith(("train/", "val/"))
        )
        print(f"epoch {epoch:>3}/{self.cfg.epochs}  {shown}  {seconds:.2f}s", file=sys.stderr)

    # ---------------------------------------------------------------- early stopping
    def early_stop(self, epoch: int, metrics: dict[str, float]) -> bool:
        """Track the best ``monitor`` value (and weights); True when patience ran out."""
        es, st = self.cfg.early_stopping, self.st
        if es.monitor not in metrics:
            return False
        value = metrics[es.monitor]
        if _improved(value, st.best, es.mode, es.min_delta):
            st.best, st.waited, st.best_epoch = value, 0, epoch
            if es.patience and es.restore_best:
                xp = self.model.xp
                st.best_params = [xp.asarray(p, copy=True) for p in self.model.parameters()]
            return False
        st.waited += 1
        return bool(es.patience and st.waited >= es.patience)

    def finish(self, start: float) -> FitResult:
        """Restore the best weights after an early stop, test, and fill the result."""
        st, result, model = self.st, self.result, self.model
        result.epochs_run, result.steps, result.best_epoch = st.epoch, st.step, st.best_epoch
        final: dict[str, float] = {}
        if result.stopped_early and st.best_params is not None:
            for p, saved in zip(model.parameters(), st.best_params):
                p[...] = saved if self.fast else model.backend.asarray(saved)
            if self.has_val:  # the objective below must describe the restored weights
                final["val/loss"], final["val/accuracy"] = model.evaluate(
                    self.X_val, self.y_val, validate=False
                )
            if self.checkpointer is not None:  # the last checkpoint holds the tested weights
                self.checkpointer.save(model, self.optimizer, self.rng, st)
        result.seconds = time.perf_counter() - start
        data = self.data
        if data.X_test.shape[0] > 0:
            test_loss, test_acc = model.evaluate(data.X_test, data.y_test)
            result.test = {"test/loss": test_loss, "test/accuracy": test_acc}
            self.log(result.test, st.step)
        final.update(result.test)
        result.objective = final.get(self.cfg.objective, result.last(self.cfg.objective))
        return result


def summary(result: FitResult) -> dict[str, Any]:
    """A few numbers worth printing at the end of a run."""
    return {
        "epochs": result.epochs_run,
        "steps": result.steps,
        "seconds": round(result.seconds, 2),
        **{k: round(v, 4) for k, v in result.test.items()},
    }
