"""``mlpx.app.report.study_runs`` and ``mean_std``: what the ``experiments/*/make_table.py``
scripts read from MLflow (a temporary SQLite store) and how they print mean ± std."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlpx.app.report import ReportError, mean_std, study_runs

HINT = "run first: mlpx -m experiment=study_x"


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _run(
    client: Any,
    exp_id: str,
    start: int,
    *,
    tags: dict[str, str],
    status: str = "FINISHED",
    acc: float | None = 0.5,
) -> str:
    run = client.create_run(exp_id, start_time=start, tags=tags)
    rid = run.info.run_id
    if acc is not None:
        client.log_metric(rid, "test/accuracy", acc)
    client.set_terminated(rid, status=status)
    return rid


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """Experiment ``study_x``: a sweep parent, two FINISHED attempts of config a, a FAILED
    newer one, config b without test/accuracy, and a run without a config hash."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = _client(uri)
    exp_id = client.create_experiment("study_x")
    ids = {
        "parent": _run(client, exp_id, 1000, tags={"mlpx.sweep": "parent"}),
        "a_old": _run(client, exp_id, 2000, tags={"mlpx.config_hash": "a"}),
        "a_new": _run(client, exp_id, 3000, tags={"mlpx.config_hash": "a"}),
        "a_failed": _run(client, exp_id, 4000, tags={"mlpx.config_hash": "a"}, status="FAILED"),
        "b": _run(client, exp_id, 2500, tags={"mlpx.config_hash": "b"}, acc=None),
        "untagged": _run(client, exp_id, 1500, tags={}),
    }
    return uri, ids


def test_missing_store_names_it_and_ends_with_the_hint(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'none.db'}"
    with pytest.raises(ReportError, match=r"^no MLflow store at sqlite:///.*none\.db; run first"):
        study_runs(uri, "study_x", hint=HINT)
    with pytest.raises(ReportError) as err:
        study_runs(uri, "study_x", hint=HINT)
    assert str(err.value).endswith(HINT) and "\n" not in str(err.value)
    assert not (tmp_path / "none.db").exists()


def test_missing_experiment(store: tuple[str, dict[str, str]]) -> None:
    uri, _ = store
    with pytest.raises(ReportError, match="no experiment 'nope' in sqlite:///") as err:
        study_runs(uri, "nope", hint=HINT)
    assert str(err.value).endswith(HINT)


def test_no_finished_runs(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = _client(uri)
    exp_id = client.create_experiment("study_x")
    _run(client, exp_id, 1000, tags={"mlpx.config_hash": "a"}, status="FAILED")
    _run(client, exp_id, 2000, tags={"mlpx.sweep": "parent"})
    with pytest.raises(ReportError, match="no FINISHED runs in 'study_x'") as err:
        study_runs(uri, "study_x", hint=HINT)
    assert str(err.value).endswith(HINT)


def test_parent_left_out_newest_finished_per_config_hash(
    store: tuple[str, dict[str, str]],
) -> None:
    uri, ids = store
    client, runs = study_runs(uri, "study_x", hint=HINT)
    assert client.tracking_uri == uri
    # Start order; the FAILED attempt of a does not replace the newest FINISHED one.
    assert [r.info.run_id for r in runs] == [ids["untagged"], ids["b"], ids["a_new"]]


def test_metric_filter_applies_before_dedupe(store: tuple[str, dict[str, str]]) -> None:
    uri, ids = store
    _, runs = study_runs(uri, "study_x", hint=HINT, metric="test/accuracy")
    assert [r.info.run_id for r in runs] == [ids["untagged"], ids["a_new"]]


def test_mean_std() -> None:
    assert mean_std([0.9, 0.8]) == "0.8500 ± 0.0707"
    assert mean_std([1.0, 2.0], ".1f") == "1.5 ± 0.7"
    assert mean_std([1234.5, 1234.5], ".1e") == "1.2e+03 ± 0.0e+00"
    assert mean_std([0.9], ".3f") == "0.900"
    assert mean_std([0.9], ".3f", mark_single=True) == "0.900 (n=1)"
    assert mean_std([]) == "–"
