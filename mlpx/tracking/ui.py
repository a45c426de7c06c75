"""Where a run can be seen: the command that starts MLflow's UI on a store, and a run's URL.

A first, simple version (issue 15): the helper that makes experiments open on the runs table
replaces it. Nothing here imports MLflow.
"""

from __future__ import annotations

import shlex

from mlpx.tracking.store import uri_scheme

__all__ = ["UI_ADDRESS", "run_url", "ui_command"]

#: Where ``mlflow ui`` listens by default.
UI_ADDRESS = "http://127.0.0.1:5000"


def _is_server(tracking_uri: str) -> bool:
    return uri_scheme(tracking_uri) in ("http", "https")


def ui_command(tracking_uri: str) -> str:
    """The shell command that shows the runs of ``tracking_uri`` in MLflow's UI.

    A tracking server already is the UI: its address is returned. Otherwise
    ``mlflow ui --backend-store-uri <uri>`` (quoted for a POSIX shell).
    """
    if _is_server(tracking_uri):
        return f"open {tracking_uri.rstrip('/')}"
    return f"mlflow ui --backend-store-uri {shlex.quote(tracking_uri)}"


def run_url(tracking_uri: str, experiment_id: str | None, run_id: str | None) -> str | None:
    """The UI address of one run (None without an experiment or run id).

    A tracking server serves its own UI at its URI; any other store is shown by
    :func:`ui_command` at :data:`UI_ADDRESS`.
    """
    if not experiment_id or not run_id:
        return None
    base = tracking_uri.rstrip("/") if _is_server(tracking_uri) else UI_ADDRESS
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"
