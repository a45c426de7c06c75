"""Where a run can be seen in MLflow's UI: the experiment marking, the run's URL, the command.

How MLflow 3.17's UI chooses its view (read from its frontend bundle,
``mlflow/server/js/build/static/js/main.c2f5f8d4.js`` and ``experimentPage.*.chunk.js``, and
checked in headless Chromium, tests/test_dashboard_browser.py):

- The UI keeps a *workflow type*, ``genai`` or ``machine_learning``: the URL's query
  parameter ``workflowType`` when it holds one of the two, else the browser's
  ``localStorage["mlflow.workflowType_v1"]`` (written only by the sidebar's "GenAI" /
  "Model training" switch), else ``genai`` (main bundle, module 7975).
- Opening ``#/experiments/<id>`` redirects to the Traces/Overview tab when the experiment kind
  is ``genai_development`` and to the runs table otherwise (experimentPage chunk, module
  24546). That kind comes from the workflow type, not from the experiment: the hook that reads
  the ``mlflow.experimentKind`` tag (module 31080, ``Fi``) returns the kind of the workflow
  type whenever a feature flag (module 89511, ``Z0``) is on, and in 3.17 it is hard-wired on.
  Nothing on the server side (``mlflow/server``, ``mlflow/utils/mlflow_tags.py``) takes part.

So an experiment tag alone cannot make 3.17 open the runs table (measured: with
``mlflow.experimentKind=custom_model_development`` set, ``#/experiments/1`` still lands on
``overview/usage?workflowType=genai``); the URL can: ``?workflowType=machine_learning``
opens the runs table, and on a run's page the breadcrumb reads "Runs" instead of
"Evaluations". mlpx therefore does both: :func:`mark_experiment` tags the experiment (what a
UI that reads the tag uses: with that flag off the kind comes from the tag, and an untagged
experiment is inferred from its runs or the user is asked to "Choose experiment type",
experiment-runs chunk ``3878.*``), and :func:`run_url` / :func:`experiment_url` carry the
query parameter. A user who clicks "Model training" once has it stored in the browser too.

The runs table's columns are browser state as well (Source, Models, Dataset by default: no
metric). The one server-side way in is MLflow's "shared view": the UI reads the table state
from the experiment tag ``mlflow.sharedViewState.<key>`` when the URL carries
``viewStateShareKey=<key>`` (experiment-runs chunk ``3878.*``, hook ``Ia``; plain JSON is
accepted after the compressed form fails to decode). :func:`mark_experiment` stores mlpx's
view (:func:`runs_view_state`: the result metrics as columns) and :func:`experiment_url`
points at it; the UI then says "You're viewing a shared view" above the table.

Nothing here imports MLflow.
"""

from __future__ import annotations

import logging
import os
import shlex
from typing import Any
from urllib.parse import quote

from mlpx.tracking.store import uri_scheme

__all__ = [
    "EXPERIMENT_KIND",
    "EXPERIMENT_KIND_TAG",
    "PRIMARY_METRIC",
    "PRIMARY_METRIC_TAG",
    "RUNS_VIEW_KEY",
    "RUNS_VIEW_METRICS",
    "SHARED_VIEW_TAG_PREFIX",
    "UI_ADDRESS",
    "WORKFLOW_QUERY",
    "experiment_url",
    "mark_experiment",
    "run_url",
    "runs_view_state",
    "ui_address",
    "ui_command",
]

_logger = logging.getLogger("mlpx.tracking")

#: The experiment tag MLflow's UI reads for the experiment's kind, and the value for
#: "Machine learning" (the other is ``genai_development``).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
#: The URL query that makes MLflow 3.17's UI show the "Model training" view (runs table).
WORKFLOW_QUERY = "workflowType=machine_learning"
#: The runs-table view mlpx stores in each experiment (MLflow's "shared view": the experiment
#: tag ``mlflow.sharedViewState.<key>`` holds the table's state as JSON, and the URL query
#: ``viewStateShareKey=<key>`` applies it), so the table opens with the result columns.
RUNS_VIEW_KEY = "mlpx"
SHARED_VIEW_TAG_PREFIX = "mlflow.sharedViewState."
#: The metric columns of that view, and the metric the UI's comparison charts open on
#: (experiment tag ``mlflow.experiment.primaryMetric.name``).
RUNS_VIEW_METRICS = ("test/accuracy", "test/loss", "val/accuracy", "val/loss")
PRIMARY_METRIC_TAG = "mlflow.experiment.primaryMetric.name"
PRIMARY_METRIC = "test/accuracy"
#: Where ``mlflow ui`` listens by default (``--host 127.0.0.1 --port 5000``).
UI_ADDRESS = "http://127.0.0.1:5000"

#: Stores ``mlflow ui --backend-store-uri`` can show: SQLAlchemy databases and file stores.
_LOCAL_SCHEMES = ("", "file", "sqlite", "postgresql", "mysql", "mssql")


def _is_server(tracking_uri: str) -> bool:
    return uri_scheme(tracking_uri) in ("http", "https")


def ui_address() -> str:
    """Where ``mlflow ui`` started without ``--host``/``--port`` listens: ``UI_ADDRESS``, or
    what ``MLFLOW_HOST`` / ``MLFLOW_PORT`` / ``MLFLOW_STATIC_PREFIX`` (its environment
    variables for those options) say. A wildcard host (``0.0.0.0``, ``::``) is reached as
    ``127.0.0.1``."""
    host = os.environ.get("MLFLOW_HOST", "").strip() or "127.0.0.1"
    if host in ("0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address in a URL
    port = os.environ.get("MLFLOW_PORT", "").strip() or "5000"
    prefix = os.environ.get("MLFLOW_STATIC_PREFIX", "").strip().strip("/")
    return f"http://{host}:{port}" + (f"/{prefix}" if prefix else "")


def _base(tracking_uri: str) -> str | None:
    if _is_server(tracking_uri):
        return tracking_uri.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    if uri_scheme(tracking_uri) in _LOCAL_SCHEMES and tracking_uri.strip() != "databricks":
        return ui_address()
    return None  # databricks, uc, ...: a workspace whose address mlpx does not know


def experiment_url(tracking_uri: str, experiment_id: str | None) -> str | None:
    """The UI address of an experiment's runs table, in mlpx's view, or None.

    ``<ui>/#/experiments/<id>/runs?workflowType=machine_learning&viewStateShareKey=mlpx``,
    where ``<ui>`` is the server itself for an ``http(s)`` tracking URI and
    :func:`ui_address` (``mlflow ui`` started by :func:`ui_command`) for a local
    SQLite/file/SQL database store. The view (:func:`runs_view_state`) is the one
    :func:`mark_experiment` stored; without it the UI shows its default columns. None
    without an experiment id or for stores whose UI address is unknown (``databricks``).
    """
    base = _base(tracking_uri)
    if base is None or not experiment_id:
        return None
    return (
        f"{base}/#/experiments/{quote(str(experiment_id))}/runs?{WORKFLOW_QUERY}"
        f"&viewStateShareKey={RUNS_VIEW_KEY}"
    )


def run_url(tracking_uri: str, experiment_id: str | None, run_id: str | None) -> str | None:
    """The UI address that opens one run's page in the "Model training" view, or None.

    ``<ui>/#/experiments/<experiment_id>/runs/<run_id>?workflowType=machine_learning``; see
    :func:`experiment_url` for ``<ui>``. None without both ids or for a store whose UI
    address is unknown.
    """
    base = _base(tracking_uri)
    if base is None or not experiment_id or not run_id:
        return None
    return (
        f"{base}/#/experiments/{quote(str(experiment_id))}/runs/{quote(str(run_id))}"
        f"?{WORKFLOW_QUERY}"
    )


def ui_command(tracking_uri: str) -> str:
    """The shell command (POSIX quoting) that shows ``tracking_uri``'s runs in MLflow's UI.

    ``mlflow ui --backend-store-uri <uri>`` for a local store (SQLite, file, a SQL database);
    for an ``http(s)`` tracking server, which serves its own UI, the command that opens it in
    a browser: ``python -m webbrowser <uri>``.
    """
    if _is_server(tracking_uri):
        return f"python -m webbrowser {shlex.quote(_base(tracking_uri) or tracking_uri)}"
    return f"mlflow ui --backend-store-uri {shlex.quote(tracking_uri)}"


def runs_view_state() -> dict[str, Any]:
    """The runs-table state mlpx stores as the experiment's shared view.

    Column keys are the UI's (``<type>.`<name>```, bundle module 95051): the metrics of
    :data:`RUNS_VIEW_METRICS` right after the run's name and start time, then the logged
    models, the dataset and the duration (the UI's own default also shows the source file,
    ``__main__.py`` for every mlpx run, and no metric); the run-name column is widened so a
    name such as ``adam-lr0.001-w128x64-relu`` reads whole.
    """
    metrics = [f"metrics.`{m}`" for m in RUNS_VIEW_METRICS]
    return {
        "selectedColumns": ["attributes.`Models`", "attributes.`Dataset`", *metrics],
        "columnOrder": [
            "attributes.`Run Name`",
            "runDateAndNestInfo",
            *metrics,
            "attributes.`Models`",
            "attributes.`Dataset`",
            "duration",
        ],
        "columnWidths": {"attributes.`Run Name`": 260},
    }


def mark_experiment(client: Any, experiment_id: str) -> list[str]:
    """Tag experiment ``experiment_id`` so MLflow's UI shows it as model training.

    Sets, each only when missing (a value the user chose is kept):
    ``mlflow.experimentKind=custom_model_development``, the comparison charts' metric
    ``mlflow.experiment.primaryMetric.name=test/accuracy``; and mlpx's runs-table view
    ``mlflow.sharedViewState.mlpx`` (JSON of :func:`runs_view_state`, rewritten when it
    differs: mlpx owns that key). ``client`` is an ``mlflow.MlflowClient`` (or anything with
    ``get_experiment`` and ``set_experiment_tag``). Returns the tags written: one read and
    no write once an experiment is marked. Never raises: the marking is a nicety, a store
    error is logged at debug level and the run goes on.
    """
    import json

    wanted = {
        EXPERIMENT_KIND_TAG: (EXPERIMENT_KIND, False),
        PRIMARY_METRIC_TAG: (PRIMARY_METRIC, False),
        SHARED_VIEW_TAG_PREFIX + RUNS_VIEW_KEY: (json.dumps(runs_view_state()), True),
    }
    written: list[str] = []
    try:
        tags = getattr(client.get_experiment(experiment_id), "tags", None) or {}
        for key, (value, owned) in wanted.items():
            if key not in tags or (owned and tags[key] != value):
                client.set_experiment_tag(experiment_id, key, value)
                written.append(key)
    except Exception as e:  # never fail a run for a UI hint
        _logger.debug("could not tag experiment %s for MLflow's UI: %s", experiment_id, e)
    return written
