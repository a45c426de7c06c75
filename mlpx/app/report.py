"""Sweep summaries: one table of every run of a sweep, mean ± std over seeds, figures.

Written on a sweep's parent run when the sweep ends (:func:`write_sweep_summary`, called
by :class:`mlpx.app.sweep.MlflowSweepCallback`) and printed afterwards by the command::

    mlpx-report --parent RUN_ID                     # the children of a sweep's parent run
    mlpx-report --experiment mlpx --csv runs.csv    # every run of an experiment
    mlpx-report --parent RUN_ID --group-by-seed     # mean ± std over trainer.seed only
    python -m mlpx.app.report ...                   # the same

The store is ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else MLflow's default
(``sqlite:///<cwd>/mlflow.db``), as for ``mlpx``.

The table itself (rows, groups, Markdown, CSV, figures) is :mod:`mlpx.app.summary`; this
module reads the runs from a store and writes the summary on a parent run.

Nothing here imports Hydra; MLflow and matplotlib are imported inside the functions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mlpx.app.summary import (
    PARENT_TAG,
    SWEEP_ROLE_TAG,
    SWEPT_KEYS_TAG,
    GroupRow,
    Row,
    SweepSummary,
    dedupe,
    figure_name,
    mean_std,
    objective_figure,
    summarize,
    varying_keys,
)
from mlpx.app.warn import warn

#: With the table's types and functions, re-exported from :mod:`mlpx.app.summary`.
__all__ = [
    "GroupRow",
    "ReportError",
    "Row",
    "SweepSummary",
    "children_of",
    "entry",
    "main",
    "mean_std",
    "objective_figure",
    "parent_summary",
    "report",
    "study_runs",
    "summarize",
    "write_sweep_summary",
]

# --------------------------------------------------------------------------------------------
# MLflow side
# --------------------------------------------------------------------------------------------


def _search_all(client: Any, experiment_ids: list[str], filter_string: str = "") -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            experiment_ids,
            filter_string=filter_string,
            max_results=1000,
            order_by=["attributes.start_time ASC"],
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def study_runs(
    uri: str | None, experiment: str, *, hint: str, metric: str | None = None
) -> tuple[Any, list[Any]]:
    """(an ``MlflowClient``, the FINISHED runs of ``experiment``, one per config hash).

    ``uri`` as :func:`mlpx.tracking.resolve_tracking_uri` reads it. Sweep parent runs (tag
    ``mlpx.sweep`` = ``parent``) and, given ``metric``, runs that did not log it are left
    out; of the runs of one ``mlpx.config_hash`` the newest stays (:func:`dedupe`). Returned
    in start order. Raises :class:`ReportError`, one line ending with ``hint`` (say ``"run
    first: mlpx -m ..."``), when the SQLite file, the experiment or such runs are missing.
    """
    from mlpx.tracking import resolve_tracking_uri, sqlite_path

    uri = resolve_tracking_uri(uri)
    path = sqlite_path(uri)
    if path is not None and not Path(path).is_file():
        raise ReportError(f"no MLflow store at {uri}; {hint}")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise ReportError(f"no experiment {experiment!r} in {uri}; {hint}")
    runs = [
        r
        for r in _search_all(client, [exp.experiment_id], "attributes.status = 'FINISHED'")
        if r.data.tags.get(SWEEP_ROLE_TAG) != "parent"
        and (metric is None or metric in r.data.metrics)
    ]
    runs, _ = dedupe(runs)
    if not runs:
        raise ReportError(f"no FINISHED runs in {experiment!r} at {uri}; {hint}")
    return client, runs


def children_of(client: Any, parent: Any) -> list[Any]:
    """Every run whose ``mlflow.parentRunId`` is ``parent`` (an ``mlflow.entities.Run``)."""
    pid = parent.info.run_id
    return _search_all(client, [parent.info.experiment_id], f"tags.{PARENT_TAG} = '{pid}'")


def _parent_keys(parent: Any) -> list[str] | None:
    text = parent.data.tags.get(SWEPT_KEYS_TAG)
    if not text:
        return None
    try:
        keys = json.loads(text)
    except ValueError:
        return None
    return [str(k) for k in keys] if isinstance(keys, list) else None


def parent_summary(
    client: Any,
    parent_run_id: str,
    *,
    keys: Sequence[str] | None = None,
    extra_run_ids: Iterable[str] = (),
    group: bool | None = None,
    stopped: bool = False,
) -> SweepSummary:
    """The summary of a sweep's parent run: its children plus ``extra_run_ids`` (reused)."""
    from mlflow.exceptions import MlflowException

    parent = client.get_run(parent_run_id)
    runs = children_of(client, parent)
    seen = {r.info.run_id for r in runs}
    extra = [rid for rid in dict.fromkeys(extra_run_ids)]
    for rid in extra:
        if rid not in seen:
            try:
                runs.append(client.get_run(rid))
            except MlflowException:  # deleted since: nothing to show
                continue
            seen.add(rid)
    if keys is None:
        keys = _parent_keys(parent)
    if not keys:  # a sweep of hparams_search with nothing on the command line, or old parent
        keys = varying_keys(runs) if len(runs) > 1 else []
    name = parent.info.run_name or parent_run_id
    return summarize(
        runs,
        keys,
        reused=extra,
        title=f"Sweep summary: {name}",
        group=group,
        stopped=stopped,
    )


def write_sweep_summary(
    uri: str,
    parent_run_id: str,
    *,
    keys: Sequence[str] | None = None,
    extra_run_ids: Iterable[str] = (),
    stopped: bool = False,
    figures: bool = True,
) -> SweepSummary:
    """Log the summary on the parent run and return it (the figures unless ``figures`` is
    False: ``logger.log_figures=false``).

    Artifacts ``summary/sweep_summary.csv``, ``summary/sweep_summary.md``,
    ``summary/sweep_summary_by_seed.csv`` (when ``trainer.seed`` was swept) and
    ``summary/objective_vs_<key>.png`` per swept key; tags ``jobs``, ``finished_jobs``,
    ``failed_jobs``, ``reused_jobs``, ``best_run_id`` and ``best_model_uri`` (the best
    run's logged model, also linked as the parent's output); metric ``best_objective``.
    """
    from mlflow.entities import Metric, RunTag
    from mlflow.tracking import MlflowClient

    from mlpx.tracking import retries_for, with_retry

    client = MlflowClient(tracking_uri=uri)
    retries = retries_for(uri)
    summary = parent_summary(
        client, parent_run_id, keys=keys, extra_run_ids=extra_run_ids, stopped=stopped
    )

    def call(fn: Any, *args: Any, what: str, **kwargs: Any) -> Any:
        return with_retry(fn, *args, retries=retries, what=what, **kwargs)

    call(
        client.log_text, parent_run_id, summary.runs_csv(), "summary/sweep_summary.csv", what="csv"
    )
    call(client.log_text, parent_run_id, summary.markdown(), "summary/sweep_summary.md", what="md")
    if summary.groups:
        call(
            client.log_text,
            parent_run_id,
            summary.groups_csv(),
            "summary/sweep_summary_by_seed.csv",
            what="csv",
        )
    for key in summary.keys if figures else ():
        fig = objective_figure(summary, key)
        call(
            client.log_figure,
            parent_run_id,
            fig,
            figure_name(key),
            save_kwargs={"dpi": 110},
            what="figure",
        )
    tags = {
        "jobs": str(len(summary.rows)),
        "finished_jobs": str(summary.finished),
        "failed_jobs": str(summary.failed),
        "pruned_jobs": str(summary.pruned),
        "reused_jobs": str(summary.reused),
    }
    if stopped:
        tags["mlpx.sweep_stopped"] = "true"
    best = summary.best
    metrics = []
    if best is not None:
        tags["best_run_id"] = best.run_id
        metrics.append(Metric("best_objective", float(best.objective), 0, 0))  # type: ignore[arg-type]
        model_uri = _link_best_model(client, parent_run_id, best.run_id)
        if model_uri:
            tags["best_model_uri"] = model_uri
    call(
        client.log_batch,
        parent_run_id,
        metrics=metrics,
        tags=[RunTag(k, v) for k, v in tags.items()],
        what="summary tags",
    )
    return summary


def _link_best_model(client: Any, parent_run_id: str, best_run_id: str) -> str | None:
    """Show the best run's logged model among the parent's outputs (MLflow's "Logged
    models" of the parent); its ``models:/<model_id>`` URI, or None without one."""
    from mlpx.tracking.model import link_model, logged_model_ids

    try:
        ids = logged_model_ids(client, best_run_id)
        if not ids:
            return None
        # a sweep launched again may find its best run's model linked already (MLflow
        # refuses a second link of the same model)
        if ids[-1] not in logged_model_ids(client, parent_run_id):
            link_model(client, parent_run_id, ids[-1])
    except Exception as exc:  # the summary stands without the link
        warn("link the best run's model", exc)
        return None
    return f"models:/{ids[-1]}"


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


class ReportError(Exception):
    """Printed as one line: ``mlpx-report: error: ...``."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mlpx-report",
        description=(
            "Print the table of a sweep (the children of a parent run) or of every run of an "
            "experiment as Markdown: run, status, swept values, objective, error; with mean ± "
            "std over trainer.seed when the seed varies."
        ),
    )
    p.add_argument(
        "--tracking-uri",
        help="the MLflow store (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--experiment", metavar="NAME", help="every run of this experiment")
    which.add_argument("--parent", metavar="RUN_ID", help="the child runs of this parent run")
    p.add_argument("--csv", metavar="PATH", help="also write the table as CSV to PATH")
    p.add_argument(
        "--group-by-seed",
        action="store_true",
        help="show only mean ± std over trainer.seed, grouped by the other varying keys",
    )
    return p


def _store(uri: str | None) -> tuple[str, Any]:
    from mlpx.tracking import TrackingError, check_tracking_uri, sqlite_path, uri_scheme

    try:
        uri = check_tracking_uri(uri)
    except TrackingError as exc:
        raise ReportError(str(exc)) from None
    if uri_scheme(uri) == "sqlite":
        path = sqlite_path(uri)
        if path is not None and not Path(path).is_file():
            raise ReportError(
                f"no MLflow store at {uri}: run mlpx-report where mlpx ran, or pass "
                "--tracking-uri (or set MLFLOW_TRACKING_URI)"
            )
    from mlflow.tracking import MlflowClient

    return uri, MlflowClient(tracking_uri=uri)


def report(args: argparse.Namespace) -> SweepSummary:
    """The summary the command prints (raises :class:`ReportError`)."""
    uri, client = _store(args.tracking_uri)
    group = True if args.group_by_seed else None
    if args.parent:
        from mlflow.exceptions import MlflowException

        try:
            client.get_run(args.parent)
        except MlflowException:  # no such run (or not a run id)
            raise ReportError(
                f"no run {args.parent} in {uri}: copy the parent run id from the MLflow UI or "
                "from the line `mlpx: sweep parent run ...` of the sweep"
            ) from None
        summary = parent_summary(client, args.parent, group=group)
        if not summary.rows:
            raise ReportError(
                f"run {args.parent} has no child runs: is it a sweep's parent run? "
                "Try --experiment NAME for every run of an experiment"
            )
        return summary
    exp = client.get_experiment_by_name(args.experiment)
    if exp is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ReportError(
            f"no experiment {args.experiment!r} in {uri}; there are: {', '.join(names) or 'none'}"
        )
    runs = [
        r
        for r in _search_all(client, [exp.experiment_id])
        if r.data.tags.get(SWEEP_ROLE_TAG) != "parent"
    ]
    if not runs:
        raise ReportError(f"experiment {args.experiment!r} in {uri} has no runs")
    keys = varying_keys(runs)
    return summarize(runs, keys, title=f"Experiment {args.experiment}", group=group)


def main(argv: Sequence[str] | None = None) -> int:
    """``mlpx-report``: print the table; 0 on success, 2 on a user error."""
    args = _parser().parse_args(argv)
    try:
        summary = report(args)
    except ReportError as exc:
        print("mlpx-report: error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 2
    if args.group_by_seed:
        text = summary.markdown(runs=False, groups=True)
        table = summary.groups_csv()
    else:
        text, table = summary.markdown(), summary.runs_csv()
    print(text, end="" if text.endswith("\n") else "\n")
    if args.csv:
        Path(args.csv).write_text(table)
        print(f"mlpx-report: wrote {args.csv}", file=sys.stderr)
    return 0


def entry() -> None:
    """Console script ``mlpx-report``."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
