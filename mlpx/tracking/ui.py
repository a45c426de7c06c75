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
    "UI_ADDRESS",
    "WORKFLOW_QUERY",
    "experiment_url",
    "mark_experiment",
    "run_url",
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
    """The UI address of an experiment's runs table, or None.

    ``<ui>/#/experiments/<id>?workflowType=machine_learning``, where ``<ui>`` is the server
    itself for an ``http(s)`` tracking URI and :func:`ui_address` (``mlflow ui`` started by
    :func:`ui_command`) for a local SQLite/file/SQL database store. None without an
    experiment id or for stores whose UI address is unknown (``databricks``).
    """
    base = _base(tracking_uri)
    if base is None or not experiment_id:
        return None
    return f"{base}/#/experiments/{quote(str(experiment_id))}?{WORKFLOW_QUERY}"


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


def mark_experiment(client: Any, experiment_id: str) -> bool:
    """Tag experiment ``experiment_id`` as a model-training experiment for MLflow's UI.

    Sets ``mlflow.experimentKind=custom_model_development`` unless the experiment already has
    that tag (with any value: a kind the user chose is kept). ``client`` is an
    ``mlflow.MlflowClient`` (or anything with ``get_experiment`` and ``set_experiment_tag``).
    Returns True when the tag was written. Never raises: the marking is a nicety, a store
    error is logged at debug level and the run goes on.
    """
    try:
        exp = client.get_experiment(experiment_id)
        if EXPERIMENT_KIND_TAG in (getattr(exp, "tags", None) or {}):
            return False
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return True
    except Exception as e:  # never fail a run for a UI hint
        _logger.debug("could not tag experiment %s as %s: %s", experiment_id, EXPERIMENT_KIND, e)
        return False
