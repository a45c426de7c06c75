"""mlpx.tracking.ui: the experiment marking, the run URL and the UI command (quick tier).

The browser side (that these URLs open the runs table in MLflow 3.17's UI) is
tests/test_dashboard_browser.py (slow tier).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest

from mlpx.tracking.ui import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    PRIMARY_METRIC_TAG,
    RUNS_VIEW_KEY,
    SHARED_VIEW_TAG_PREFIX,
    UI_ADDRESS,
    WORKFLOW_QUERY,
    experiment_url,
    mark_experiment,
    run_url,
    runs_view_state,
    ui_address,
    ui_command,
)


@pytest.fixture(autouse=True)
def _no_mlflow_ui_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_HOST", "MLFLOW_PORT", "MLFLOW_STATIC_PREFIX"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    "uri",
    [
        "sqlite:////tmp/some dir/mlflow.db",
        "file:///tmp/mlruns",
        "/tmp/mlruns",
        "postgresql://u:p@localhost:5432/mlflow",
    ],
)
def test_local_store_opens_in_mlflow_ui_on_its_default_address(uri: str) -> None:
    url = run_url(uri, "3", "abc123")
    assert url == f"{UI_ADDRESS}/#/experiments/3/runs/abc123?{WORKFLOW_QUERY}"
    assert url.startswith("http://127.0.0.1:5000/#/")
    assert experiment_url(uri, "3") == (
        f"{UI_ADDRESS}/#/experiments/3/runs?workflowType=machine_learning&viewStateShareKey=mlpx"
    )
    cmd = ui_command(uri)
    # What a shell makes of the pasted command: the store URI as one word, unchanged.
    assert shlex.split(cmd) == ["mlflow", "ui", "--backend-store-uri", uri]


@pytest.mark.parametrize(
    ("uri", "base"),
    [
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("https://mlflow.example.org/", "https://mlflow.example.org"),
        ("http://host:8080/prefix/", "http://host:8080/prefix"),
    ],
)
def test_tracking_server_is_its_own_ui(uri: str, base: str) -> None:
    assert run_url(uri, "7", "r1") == f"{base}/#/experiments/7/runs/r1?{WORKFLOW_QUERY}"
    assert experiment_url(uri, "7") == (
        f"{base}/#/experiments/7/runs?{WORKFLOW_QUERY}&viewStateShareKey={RUNS_VIEW_KEY}"
    )
    assert shlex.split(ui_command(uri)) == ["python", "-m", "webbrowser", base]


def test_missing_ids_or_unknown_ui_give_no_url() -> None:
    assert run_url("sqlite:////tmp/a.db", None, "r") is None
    assert run_url("sqlite:////tmp/a.db", "1", None) is None
    assert run_url("sqlite:////tmp/a.db", "", "r") is None
    assert experiment_url("sqlite:////tmp/a.db", None) is None
    # A Databricks workspace: mlpx does not know its address.
    assert run_url("databricks", "1", "r") is None
    assert run_url("databricks://profile", "1", "r") is None


def test_ui_address_follows_mlflow_ui_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ui_address() == UI_ADDRESS
    monkeypatch.setenv("MLFLOW_PORT", "5123")
    monkeypatch.setenv("MLFLOW_HOST", "0.0.0.0")
    assert ui_address() == "http://127.0.0.1:5123"
    monkeypatch.setenv("MLFLOW_HOST", "::1")
    monkeypatch.setenv("MLFLOW_STATIC_PREFIX", "/mlflow/")
    assert ui_address() == "http://[::1]:5123/mlflow"
    assert run_url("sqlite:////x.db", "1", "r") == (
        f"http://[::1]:5123/mlflow/#/experiments/1/runs/r?{WORKFLOW_QUERY}"
    )


class _FakeClient:
    """get_experiment / set_experiment_tag, recording the writes (for error paths)."""

    def __init__(self, tags: dict[str, str] | None = None, fail: bool = False) -> None:
        self.tags = dict(tags or {})
        self.fail = fail
        self.writes: list[tuple[str, str, str]] = []

    def get_experiment(self, experiment_id: str) -> SimpleNamespace:
        if self.fail:
            raise RuntimeError("database is locked")
        return SimpleNamespace(experiment_id=experiment_id, tags=dict(self.tags))

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        self.writes.append((experiment_id, key, value))
        self.tags[key] = value


VIEW_TAG = SHARED_VIEW_TAG_PREFIX + RUNS_VIEW_KEY


def test_runs_view_shows_the_result_metrics_as_columns() -> None:
    state = runs_view_state()
    columns = state["selectedColumns"]
    for metric in ("test/accuracy", "test/loss", "val/accuracy"):
        assert f"metrics.`{metric}`" in columns
    assert "attributes.`Models`" in columns
    # Shown in this order: name, start, then the results before everything else.
    order = state["columnOrder"]
    assert order[:3] == ["attributes.`Run Name`", "runDateAndNestInfo", "metrics.`test/accuracy`"]
    assert set(columns) <= set(order)
    json.loads(json.dumps(state))  # what the tag holds: plain JSON


def test_mark_experiment_keeps_what_the_user_chose_and_never_raises() -> None:
    fresh = _FakeClient()
    assert sorted(mark_experiment(fresh, "4")) == sorted(
        [EXPERIMENT_KIND_TAG, PRIMARY_METRIC_TAG, VIEW_TAG]
    )
    assert fresh.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    assert fresh.tags[PRIMARY_METRIC_TAG] == "test/accuracy"
    assert json.loads(fresh.tags[VIEW_TAG]) == runs_view_state()
    assert mark_experiment(fresh, "4") == []  # already marked: no second write
    assert len(fresh.writes) == 3
    # A kind and a primary metric the user set are kept; mlpx's own view is brought up to date.
    chosen = _FakeClient(
        {EXPERIMENT_KIND_TAG: "genai_development", PRIMARY_METRIC_TAG: "val/loss", VIEW_TAG: "{}"}
    )
    assert mark_experiment(chosen, "4") == [VIEW_TAG]
    assert chosen.tags[EXPERIMENT_KIND_TAG] == "genai_development"
    assert chosen.tags[PRIMARY_METRIC_TAG] == "val/loss"
    assert mark_experiment(_FakeClient(fail=True), "4") == []


def test_tracker_marks_the_experiment_it_creates_and_the_one_it_uses(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from mlpx.tracking import MlflowTracker

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    # One the user made before (not by mlpx), and one that mlpx creates.
    used = client.create_experiment("theirs", artifact_location=str(tmp_path / "art"))
    for name in ("theirs", "created-by-mlpx"):
        tracker = MlflowTracker(uri, name, "r")
        tracker.finish()
        exp = client.get_experiment(tracker.experiment_id)
        assert exp.tags.get(EXPERIMENT_KIND_TAG) == EXPERIMENT_KIND, name
    assert client.get_experiment_by_name("theirs").experiment_id == used
