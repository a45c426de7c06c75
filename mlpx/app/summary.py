"""Sweep summaries from MLflow runs: rows, mean ± std over seeds, Markdown, CSV, figures.

Pure functions of ``mlflow.entities.Run``-like objects (``run.info``, ``run.data``): nothing
here talks to a store (that is :mod:`mlpx.app.report`) or imports Hydra; matplotlib is
imported by :func:`objective_figure` only.

A row per run: its name, status, the swept values (its params; a config group such as
``optimizer`` reads ``optimizer.name``, one without a name key is read from the run name's
``[key=value,...]`` suffix), the objective (metric ``objective``, else the last value of the
metric named by ``trainer.objective``) and the error tag of a failed run. Runs of one config
(tag ``mlpx.config_hash``) count once: the newest FINISHED one, else the newest attempt.
"""

from __future__ import annotations

import csv
import io
import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "CONFIG_HASH_TAG",
    "OBJECTIVE_METRIC",
    "PARENT_TAG",
    "SEED_KEY",
    "SWEEP_ROLE_TAG",
    "SWEPT_KEYS_TAG",
    "GroupRow",
    "Row",
    "SweepSummary",
    "dedupe",
    "figure_name",
    "group_by_seed",
    "markdown_table",
    "mean_std",
    "objective_figure",
    "run_objective",
    "suffix_values",
    "summarize",
    "swept_value",
    "varying_keys",
]

SEED_KEY = "trainer.seed"
PARENT_TAG = "mlflow.parentRunId"
#: Every run: the sha256 of its resolved config (:func:`mlpx.app.sweep.config_hash`).
CONFIG_HASH_TAG = "mlpx.config_hash"
#: A sweep's parent run is tagged ``mlpx.sweep=parent`` (left out of study tables).
SWEEP_ROLE_TAG = "mlpx.sweep"
#: The status a summary shows for a run an Optuna pruner stopped (MLflow: KILLED, tag
#: ``pruned=true`` and ``pruned_epoch``).
PRUNED = "PRUNED"
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
        return sum(r.status not in ("FINISHED", PRUNED) for r in self.rows)

    @property
    def pruned(self) -> int:
        """Runs stopped by an Optuna pruner (tag ``pruned=true``; status ``PRUNED`` here)."""
        return sum(r.status == PRUNED for r in self.rows)

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
        if self.pruned:
            parts.append(f"{self.pruned} pruned")
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
            + (f", {self.pruned} pruned" if self.pruned else "")
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


def suffix_values(run_name: str, keys: Sequence[str]) -> dict[str, str]:
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
    return suffix_values(run.info.run_name or "", keys).get(key, "")


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
            status=PRUNED if r.data.tags.get("pruned") == "true" else r.info.status,
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
