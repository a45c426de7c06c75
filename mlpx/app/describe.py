"""What a run says about itself: the line at its end and its MLflow description.

Pure text from the settings, the built objects and the result; nothing here logs, prints
or imports MLflow or Hydra (:mod:`mlpx.app.record` does the logging)::

    mlpx: done: test accuracy 0.9722, test loss 0.0958; 30 epochs (best epoch 27), 1.4 s
    mlpx: MLflow run adam-lr0.001-w128x64-relu in experiment 'mlpx' of sqlite:///.../mlflow.db
    mlpx: see it: mlflow ui --backend-store-uri sqlite:///.../mlflow.db, then open
      http://127.0.0.1:5000/#/experiments/1/runs/<run_id>

:func:`run_description` is the Markdown MLflow shows on the run's page (the tag
``mlflow.note.content``): the result, the model, the dataset, the optimizer and the command
that reproduces the run.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

__all__ = ["reproduce_command", "result_line", "run_description", "where_lines"]


def _epochs(result: Any, planned: int | None = None) -> str:
    text = f"{result.epochs_run} epoch{'s' if result.epochs_run != 1 else ''}"
    if result.stopped_early:
        text += f" (stopped early, best epoch {result.best_epoch})"
    elif result.best_epoch:
        text += f" (best epoch {result.best_epoch})"
    if planned is not None and result.epochs_run < planned and not result.stopped_early:
        text += f" of {planned}"
    return text


def result_line(result: Any, objective: str | None = None) -> str:
    """One line: test accuracy and loss, epochs run, early stop and best epoch, wall time.

    ``result``: a :class:`mlpx.train.FitResult`; ``objective`` (``trainer.objective``) is
    added when it is not a test metric. Without a test split the line says so.
    """
    test = result.test
    if "test/accuracy" in test:
        head = f"test accuracy {test['test/accuracy']:.4f}, test loss {test['test/loss']:.4f}"
    else:
        head = "no test split"
    parts = [head, _epochs(result), f"{result.seconds:.1f} s"]
    line = "; ".join(parts[:2]) + f", {parts[2]}"
    if objective and not objective.startswith("test/"):
        line += f"; objective {objective}={result.objective:.4f}"
    return line


def where_lines(
    run_name: str,
    experiment: str,
    tracking_uri: str,
    ui_command: str,
    url: str | None,
    *,
    default_experiment: str | None = None,
    overlay: str | None = None,
) -> list[str]:
    """The lines that say where the run was recorded and how to look at it.

    ``default_experiment``: when the run went to another experiment, the line says so, and
    names the ``experiment=<overlay>`` that chose it when one was given.
    """
    note = ""
    if default_experiment is not None and experiment != default_experiment:
        why = f"experiment={overlay} sets" if overlay else "set by"
        note = f" ({why} logger.experiment_name; the default is '{default_experiment}')"
    lines = [f"MLflow run {run_name} in experiment '{experiment}'{note} of {tracking_uri}"]
    if url:
        lines.append(f"see it: {ui_command}, then open {url}")
    else:
        lines.append(f"see it: {ui_command}")
    return lines


def reproduce_command(overrides: Sequence[str], program: str = "mlpx") -> str:
    """The command line that runs this configuration again: ``mlpx`` and Hydra's overrides
    of this run (of this job, in a sweep), each quoted for a POSIX shell."""
    return " ".join([program, *(shlex.quote(str(o)) for o in overrides)])


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def run_description(
    settings: Any,
    data: Any,
    model: Any,
    result: Any | None,
    command: str,
    run_id: str | None = None,
) -> str:
    """The run's description in Markdown (MLflow's ``mlflow.note.content``).

    settings : :class:`mlpx.app.config.Settings`; data : :class:`mlpx.data.Dataset`;
    model : the :class:`mlpx.nn.model.MLP`; result : the ``FitResult`` (None: not trained,
    e.g. ``mode=gradcheck``); command : :func:`reproduce_command`; run_id : the MLflow run,
    named in the line that loads its model.
    """
    lines = [f"## {settings.run_name()}", ""]
    if result is not None:
        lines += [f"**Result:** {result_line(result, settings.trainer.objective)}.", ""]
    sizes = " → ".join(str(s) for s in model.sizes)
    acts = ", ".join(model.activations)
    m = settings.model
    init = f"{m.init}({m.init_std:g})" if m.init == "normal" else m.init
    lines += [
        "| | |",
        "|---|---|",
        f"| model | MLP {sizes}; activations {acts}; {model.num_parameters:,} parameters; "
        f"init {init} |",
    ]
    split = f"{len(data.y_train)} train / {len(data.y_val)} validation / {len(data.y_test)} test"
    std = (
        "standardised with the training split's mean and scale"
        if data.mean is not None
        else ("not standardised")
    )
    lines.append(
        f"| dataset | {data.name}: {data.n_features} features, {data.n_classes} classes; "
        f"{split}; {std} |"
    )
    o = settings.optimizer
    hp = ", ".join(f"{k}={_fmt(v)}" for k, v in o.hparams.items() if v is not None)
    opt = f"{o.name}, lr {o.lr:g}" + (f", {hp}" if hp else "")
    if o.schedule and o.schedule.get("name", "constant") != "constant":
        sched = ", ".join(f"{k}={_fmt(v)}" for k, v in o.schedule.items() if v is not None)
        opt += f"; schedule {sched}"
    if o.clip_norm is not None:
        opt += f"; clip_norm {o.clip_norm:g}"
    t = settings.trainer
    lines.append(f"| optimizer | {opt} |")
    es = t.early_stopping
    stop = f"; early stopping on {es.monitor}, patience {es.patience}" if es.patience else ""
    lines.append(
        f"| training | {t.epochs} epochs, batch {t.batch_size}, seed {t.seed}{stop}; "
        f"objective {t.objective} ({t.direction}) |"
    )
    b = settings.backend
    lines.append(f"| backend | {b.name} {b.dtype} |")
    lines += [
        "",
        "Reproduce:",
        "",
        "```bash",
        command,
        "```",
        "",
    ]
    last = "The whole config: artifact `config/config.yaml`."
    if settings.logger.log_model:
        last = (
            f"The model: `mlflow.pyfunc.load_model('runs:/{run_id or '<run_id>'}/model')"
            ".predict(raw_X)` (raw features; columns `label`, `class_name`, `proba_<k>`). "
        ) + last
    return "\n".join([*lines, last]) + "\n"
