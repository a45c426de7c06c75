"""Sweep summaries: one table of every run of a sweep, mean ± std over seeds, figures.

Written on a sweep's parent run when the sweep ends (:func:`write_sweep_summary`, called
by :class:`mlpx.app.sweep.MlflowSweepCallback`) and printed afterwards by the command::

    mlpx-report --parent RUN_ID                     # the children of a sweep's parent run
    mlpx-report --experiment mlpx --csv runs.csv    # every run of an experiment
    mlpx-report --parent RUN_ID --group-by-seed     # mean ± std over trainer.seed only
    python -m mlpx.app.report ...                       # the same

The store is ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else MLflow's default
(``sqlite:///<cwd>/mlflow.db``), as for ``mlpx``.

A row per run: its name, status, the swept values (its params; a config group such as
``optimizer`` reads ``optimizer.name``, one without a name key is read from the run name's
``[key=value,...]`` suffix), the objective (metric ``objective``, else the last value of the
metric named by ``trainer.objective``) and the error tag of a failed run. Runs of one config
(tag ``mlpx.config_hash``) count once: the newest FINISHED one, else the newest attempt.

Nothing here imports Hydra; MLflow and matplotlib are imported inside the functions.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "GroupRow",
    "Row",
    "SweepSummary",
    "main",
    "mean_std",
    "objective_figure",
    "study_runs",
    "summarize",
    "write_sweep_summary",
]

SEED_KEY = "trainer.seed"
PARENT_TAG = "mlflow.parentRunId"
CONFIG_HASH_TAG = "mlpx.config_hash"  # = mlpx.app.sweep.CONFIG_HASH_TAG (no hydra import here)
SWEPT_KEYS_TAG = "mlpx.swept_keys"
OBJECTIVE_METRIC = "objective"
#: Params that differ between runs without being what a study varies.
_NOT_SWEPT = ("logger.", "hydra.")
_ERROR_WIDTH = 120  # characters of an error in the Markdown table (the CSV has all of it)


# --------------------------------------------------------------------------------------------
# Rows and groups
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One run of the table."""

    run_id: str
    run_name: str
    status: str
    values: dict[str, str]
    objective: float | None
    error: str = ""
    reused: bool = False
    start_time: int = 0

    @property
    def ok(self) -> bool:
        """FINISHED with a finite objective: counts in means and for the best run."""
        return (
            self.status == "FINISHED"
            and self.objective is not None
            and math.isfinite(self.objective)
        )


@dataclass(frozen=True)
class GroupRow:
    """Runs that differ only in their seed: mean ± std of their objective."""

    values: dict[str, str]
    seeds: tuple[str, ...]
    n: int  # runs counted (FINISHED, finite objective)
    failed: int  # the other runs of the group
    mean: float | None
    std: float | None  # sample std (n - 1); None below 2 runs

    @property
    def mean_std(self) -> str:
        if self.mean is None:
            return "–"
        return f"{self.mean:.4f}" + (f" ± {self.std:.4f}" if self.std is not None else "")


@dataclass
class SweepSummary:
    """What a sweep (or an experiment) produced, ready to print or log."""

    rows: list[Row]
    keys: list[str]
    objective_name: str = "objective"
    direction: str = "maximize"
    title: str = "Sweep summary"
    groups: list[GroupRow] = field(default_factory=list)
    group_keys: list[str] = field(default_factory=list)
    superseded: int = 0  # earlier attempts of a config left out of the table
    stopped: bool = False

    @property
    def failed(self) -> int:
        return sum(r.status != "FINISHED" for r in self.rows)

    @property
    def finished(self) -> int:
        return sum(r.status == "FINISHED" for r in self.rows)

    @property
    def reused(self) -> int:
        return sum(r.reused for r in self.rows)

    @property
    def best(self) -> Row | None:
        ok = [r for r in self.rows if r.ok]
        if not ok:
            return None
        pick = min if self.direction == "minimize" else max
        return pick(ok, key=lambda r: r.objective)  # type: ignore[arg-type, return-value]

    def line(self) -> str:
        """One line: counts and the best run."""
        parts = [f"{_runs(len(self.rows))}: {self.finished} finished, {self.failed} failed"]
        if self.reused:
            parts.append(f"{self.reused} reused")
        best = self.best
        if best is not None:
            parts.append(
                f"best {self.objective_name} {best.objective:.4f} ({best.run_name}, {best.run_id})"
            )
        return "; ".join(parts)

    # -- Markdown ------------------------------------------------------------------------

    def runs_markdown(self) -> str:
        headers = ["run", "status", *self.keys, self.objective_name, "error"]
        align = ["l", "l", *("l" for _ in self.keys), "r", "l"]
        lines = []
        for r in self.rows:
            name = _strip_suffix(r.run_name) + (" (reused)" if r.reused else "")
            error = " ".join(r.error.split())
            if len(error) > _ERROR_WIDTH:
                error = error[: _ERROR_WIDTH - 1] + "…"
            values = [r.values.get(k, "") for k in self.keys]
            lines.append([name, r.status, *values, _fmt(r.objective), error])
        return markdown_table(headers, lines, align)

    def groups_markdown(self) -> str:
        headers = [*self.group_keys, "seeds", "runs", "failed", f"{self.objective_name} mean ± std"]
        align = [*("l" for _ in self.group_keys), "l", "r", "r", "r"]
        lines = [
            [
                *(g.values.get(k, "") for k in self.group_keys),
                ",".join(g.seeds),
                str(g.n),
                str(g.failed),
                g.mean_std,
            ]
            for g in self.groups
        ]
        return markdown_table(headers, lines, align)

    def markdown(self, *, runs: bool = True, groups: bool | None = None) -> str:
        """The whole summary: a header line, the runs, and mean ± std over seeds (when the
        seed was swept, or ``groups=True``)."""
        show_groups = bool(self.groups) if groups is None else groups
        out = [f"## {self.title}", "", self.header(), ""]
        if runs:
            out += [self.runs_markdown(), ""]
        if show_groups:
            others = ", ".join(self.group_keys) or "nothing else"
            out += [f"### Mean ± std over `{SEED_KEY}`, grouped by {others}", ""]
            out += [self.groups_markdown(), ""]
        return "\n".join(out)

    def header(self) -> str:
        text = (
            f"{_runs(len(self.rows))}: {self.finished} finished, {self.failed} failed"
            + (f", {self.reused} reused from earlier launches" if self.reused else "")
            + f". Objective `{self.objective_name}` ({self.direction})"
        )
        best = self.best
        if best is not None:
            text += f"; best {best.objective:.4f}: {best.run_name} (`{best.run_id}`)"
        text += "."
        if self.superseded:
            text += f" {self.superseded} earlier attempts of the same configs are not shown."
        if self.stopped:
            text += " The sweep stopped before all its jobs ran."
        return text

    # -- CSV -----------------------------------------------------------------------------

    def runs_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["run_id", "run_name", "status", "reused", *self.keys, "objective", "error"])
        for r in self.rows:
            w.writerow(
                [r.run_id, r.run_name, r.status, str(r.reused).lower()]
                + [r.values.get(k, "") for k in self.keys]
                + ["" if r.objective is None else repr(r.objective), r.error]
            )
        return buf.getvalue()

    def groups_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([*self.group_keys, "seeds", "runs", "failed", "mean", "std"])
        for g in self.groups:
            w.writerow(
                [g.values.get(k, "") for k in self.group_keys]
                + [" ".join(g.seeds), g.n, g.failed]
                + ["" if g.mean is None else repr(g.mean), "" if g.std is None else repr(g.std)]
            )
        return buf.getvalue()


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _strip_suffix(run_name: str) -> str:
    """``"adam-lr0.1-w64 [optimizer.lr=0.1]"`` -> ``"adam-lr0.1-w64"`` (the values have columns)."""
    return re.sub(r"\s*\[.*\]\s*$", "", run_name) or run_name


def mean_std(values: Sequence[float], fmt: str = ".4f", *, mark_single: bool = False) -> str:
    """``"0.9500 ± 0.0100"``: mean ± sample std of ``values``, each in format ``fmt``; one
    value alone (``" (n=1)"`` appended with ``mark_single``); ``"–"`` for none."""
    if not values:
        return "–"
    if len(values) == 1:
        return format(values[0], fmt) + (" (n=1)" if mark_single else "")
    return f"{format(statistics.mean(values), fmt)} ± {format(statistics.stdev(values), fmt)}"


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _cell(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def markdown_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], align: Sequence[str] | None = None
) -> str:
    """A GitHub-flavoured Markdown table; ``align`` is ``"l"``/``"r"`` per column."""
    align = list(align or ["l"] * len(headers))
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# From MLflow runs to a summary
# --------------------------------------------------------------------------------------------


def _suffix_values(run_name: str, keys: Sequence[str]) -> dict[str, str]:
    """``"adam-w64 [model=deep,trainer.seed=1]"`` -> ``{"model": "deep", "trainer.seed": "1"}``."""
    m = re.search(r"\[(.*)\]\s*$", run_name or "")
    if not m or not keys:
        return {}
    alternatives = "|".join(re.escape(k) for k in sorted(keys, key=len, reverse=True))
    parts = re.split(rf",(?=[+~]?(?:{alternatives})=)", m.group(1))
    out = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if sep:
            out[key.lstrip("+~")] = value
    return out


def swept_value(run: Any, key: str, keys: Sequence[str]) -> str:
    """The value a run had for a swept ``key`` (a param, a group's ``.name``, or the run
    name's suffix)."""
    params = run.data.params
    for k in (key, f"{key}.name"):
        if k in params:
            return params[k]
    return _suffix_values(run.info.run_name or "", keys).get(key, "")


def run_objective(run: Any) -> float | None:
    """Metric ``objective``, else the last value of the metric named by the
    ``trainer.objective`` param; None when neither was logged. (The table shows it for
    FINISHED runs only: a failed job reported the worst value to the sweeper.)"""
    metrics, params = run.data.metrics, run.data.params
    if OBJECTIVE_METRIC in metrics:
        return float(metrics[OBJECTIVE_METRIC])
    key = params.get("trainer.objective")
    if key and key in metrics:
        return float(metrics[key])
    return None


def varying_keys(runs: Sequence[Any]) -> list[str]:
    """Params that take more than one value among ``runs``, sorted.

    A param that only some runs have (``optimizer.betas`` of Adam runs) counts only when its
    values differ: what sets it apart (``optimizer.name``) is a column already.
    """
    names = sorted({k for r in runs for k in r.data.params})
    out = []
    for k in names:
        if k.startswith(_NOT_SWEPT):
            continue
        if len({r.data.params[k] for r in runs if k in r.data.params}) > 1:
            out.append(k)
    return out


def dedupe(runs: Sequence[Any]) -> tuple[list[Any], int]:
    """One run per config hash: the newest FINISHED, else the newest; runs without the tag
    all stay. Returns (runs in start order, how many were dropped)."""
    by_hash: dict[str, list[Any]] = {}
    kept = []
    for r in runs:
        h = r.data.tags.get(CONFIG_HASH_TAG)
        if h:
            by_hash.setdefault(h, []).append(r)
        else:
            kept.append(r)
    for group in by_hash.values():
        group.sort(key=lambda r: (r.info.status == "FINISHED", r.info.start_time or 0))
        kept.append(group[-1])
    kept.sort(key=lambda r: r.info.start_time or 0)
    return kept, len(runs) - len(kept)


def _common_param(runs: Sequence[Any], key: str, default: str) -> str:
    values = {r.data.params.get(key) for r in runs} - {None}
    return values.pop() if len(values) == 1 else default


def group_by_seed(rows: Sequence[Row], keys: Sequence[str]) -> tuple[list[str], list[GroupRow]]:
    """Mean ± std of the objective over ``trainer.seed`` for each value of the other keys."""
    others = [k for k in keys if k != SEED_KEY]
    groups: dict[tuple[str, ...], list[Row]] = {}
    for r in rows:
        groups.setdefault(tuple(r.values.get(k, "") for k in others), []).append(r)
    out = []
    for ident, members in groups.items():
        values = [r.objective for r in members if r.ok]
        mean = statistics.fmean(values) if values else None  # type: ignore[arg-type]
        std = statistics.stdev(values) if len(values) >= 2 else None  # type: ignore[arg-type]
        seeds = tuple(dict.fromkeys(r.values.get(SEED_KEY, "") for r in members))
        out.append(
            GroupRow(
                values=dict(zip(others, ident)),
                seeds=tuple(s for s in seeds if s != ""),
                n=len(values),
                failed=len(members) - len(values),
                mean=mean,
                std=std,
            )
        )
    return others, out


def summarize(
    runs: Sequence[Any],
    keys: Sequence[str] | None = None,
    *,
    reused: Iterable[str] = (),
    title: str = "Sweep summary",
    group: bool | None = None,
    stopped: bool = False,
) -> SweepSummary:
    """Build the summary of MLflow ``runs`` (``mlflow.entities.Run``).

    ``keys``: the swept keys (None: the params that differ between the runs); ``reused``:
    run ids that this launch reused instead of training; ``group``: compute mean ± std over
    seeds (None: when ``trainer.seed`` is among the keys).
    """
    runs, superseded = dedupe(list(runs))
    keys = list(keys) if keys is not None else varying_keys(runs)
    reused = set(reused)
    rows = [
        Row(
            run_id=r.info.run_id,
            run_name=r.info.run_name or r.info.run_id,
            status=r.info.status,
            values={k: swept_value(r, k, keys) for k in keys},
            objective=run_objective(r) if r.info.status == "FINISHED" else None,
            error=r.data.tags.get("error", "") if r.info.status != "FINISHED" else "",
            reused=r.info.run_id in reused,
            start_time=r.info.start_time or 0,
        )
        for r in runs
    ]
    summary = SweepSummary(
        rows=rows,
        keys=keys,
        objective_name=_common_param(runs, "trainer.objective", "objective"),
        direction=_common_param(runs, "trainer.direction", "maximize"),
        title=title,
        superseded=superseded,
        stopped=stopped,
    )
    if group if group is not None else SEED_KEY in keys:
        summary.group_keys, summary.groups = group_by_seed(rows, keys)
    return summary


def _as_numbers(values: Sequence[str]) -> list[float] | None:
    try:
        return [float(v) for v in values]
    except ValueError:
        return None


def objective_figure(summary: SweepSummary, key: str) -> Figure:
    """The objective of every FINISHED run against its value of ``key``, with the mean per
    value. Numbers get a numeric axis (log when positive and spanning >= 20x), other values
    one slot each. A ``matplotlib.figure.Figure`` (no pyplot; renders with Agg)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.subplots()
    ok = [r for r in summary.rows if r.ok]
    raw = [r.values.get(key, "") for r in ok]
    ys = [float(r.objective) for r in ok]  # type: ignore[arg-type]
    numbers = _as_numbers(raw) if raw else None
    if numbers is not None:
        xs = numbers
        positive = all(x > 0 for x in xs)
        if positive and max(xs) / min(xs) >= 20:
            ax.set_xscale("log")
    else:
        slots = list(dict.fromkeys(raw))
        xs = [float(slots.index(v)) for v in raw]
        ax.set_xticks(range(len(slots)), slots, rotation=30 if len(slots) > 4 else 0)
    ax.scatter(xs, ys, alpha=0.7, label="runs")
    means: dict[float, list[float]] = {}
    for x, y in zip(xs, ys):
        means.setdefault(x, []).append(y)
    if means and any(len(v) > 1 for v in means.values()):
        mx = sorted(means)
        ax.plot(mx, [statistics.fmean(means[x]) for x in mx], "k_", markersize=18, label="mean")
    failed = len(summary.rows) - len(ok)
    ax.set_xlabel(key)
    ax.set_ylabel(summary.objective_name)
    title = f"{summary.objective_name} vs {key}"
    if failed:
        title += f" ({failed} failed runs not shown)"
    ax.set_title(title, fontsize="medium")
    ax.grid(True, alpha=0.3)
    if ok:
        ax.legend(fontsize="small")
    return fig


def figure_name(key: str) -> str:
    """``summary/objective_vs_<key>.png`` with a file-safe key."""
    return f"summary/objective_vs_{re.sub(r'[^A-Za-z0-9_.-]+', '_', key)}.png"


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
    ``mlpx.app.sweep`` = ``parent``) and, given ``metric``, runs that did not log it are left
    out; of the runs of one ``mlpx.config_hash`` the newest stays (:func:`dedupe`). Returned
    in start order. Raises :class:`ReportError`, one line ending with ``hint`` (say ``"run
    first: mlpx -m ..."``), when the SQLite file, the experiment or such runs are missing.
    """
    from mlpx.tracking import _sqlite_path, resolve_tracking_uri

    uri = resolve_tracking_uri(uri)
    path = _sqlite_path(uri) if uri.lower().startswith("sqlite:") else None
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
        if r.data.tags.get("mlpx.app.sweep") != "parent"
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
    parent = client.get_run(parent_run_id)
    runs = children_of(client, parent)
    seen = {r.info.run_id for r in runs}
    extra = [rid for rid in dict.fromkeys(extra_run_ids)]
    for rid in extra:
        if rid not in seen:
            try:
                runs.append(client.get_run(rid))
            except Exception:  # deleted since: nothing to show
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
) -> SweepSummary:
    """Log the summary on the parent run and return it.

    Artifacts ``summary/sweep_summary.csv``, ``summary/sweep_summary.md``,
    ``summary/sweep_summary_by_seed.csv`` (when ``trainer.seed`` was swept) and
    ``summary/objective_vs_<key>.png`` per swept key; tags ``jobs``, ``finished_jobs``,
    ``failed_jobs``, ``reused_jobs`` and ``best_run_id``; metric ``best_objective``.
    """
    from mlflow.entities import Metric, RunTag
    from mlflow.tracking import MlflowClient

    from mlpx.tracking import _retries_for, _with_retry

    client = MlflowClient(tracking_uri=uri)
    retries = _retries_for(uri)
    summary = parent_summary(
        client, parent_run_id, keys=keys, extra_run_ids=extra_run_ids, stopped=stopped
    )

    def call(fn: Any, *args: Any, what: str, **kwargs: Any) -> Any:
        return _with_retry(fn, *args, retries=retries, what=what, **kwargs)

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
    for key in summary.keys:
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
        "reused_jobs": str(summary.reused),
    }
    if stopped:
        tags["mlpx.sweep_stopped"] = "true"
    best = summary.best
    metrics = []
    if best is not None:
        tags["best_run_id"] = best.run_id
        metrics.append(Metric("best_objective", float(best.objective), 0, 0))  # type: ignore[arg-type]
    call(
        client.log_batch,
        parent_run_id,
        metrics=metrics,
        tags=[RunTag(k, v) for k, v in tags.items()],
        what="summary tags",
    )
    return summary


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
    from mlpx.tracking import TrackingError, _scheme, _sqlite_path, check_tracking_uri

    try:
        uri = check_tracking_uri(uri)
    except TrackingError as exc:
        raise ReportError(str(exc)) from None
    if _scheme(uri) == "sqlite":
        path = _sqlite_path(uri)
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
        try:
            client.get_run(args.parent)
        except Exception:
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
        if r.data.tags.get("mlpx.app.sweep") != "parent"
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
