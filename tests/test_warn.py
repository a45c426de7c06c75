"""One-line warnings (mlpx.app.warn) and the sweep summary's link to the best model."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from mlpx.app import report
from mlpx.app.warn import first_line, warn

SQL_ERROR = (
    "(sqlite3.IntegrityError) UNIQUE constraint failed: inputs.source_type\n"
    "[SQL: INSERT INTO inputs (input_uuid, source_type) VALUES (?, ?)]\n"
    "[parameters: ('b3a1', 'RUN_OUTPUT')]\n"
    "(Background on this error at: https://sqlalche.me/e/21/gkpj)"
)


def test_first_line_keeps_the_first_non_empty_line() -> None:
    assert first_line(RuntimeError(SQL_ERROR)) == SQL_ERROR.splitlines()[0]
    assert first_line(RuntimeError("\n  \n  disk full  \nmore")) == "disk full"


def test_first_line_of_an_exception_without_text_is_its_type() -> None:
    assert first_line(TimeoutError()) == "TimeoutError"


def test_first_line_cuts_a_long_line() -> None:
    got = first_line(ValueError("x" * 500), limit=50)
    assert len(got) == 50 and got.endswith("...")


def test_warn_prints_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    warn("end run abc", RuntimeError(SQL_ERROR))
    err = capsys.readouterr().err
    assert err == f"mlpx: warning: could not end run abc: {SQL_ERROR.splitlines()[0]}\n"


class Client:
    """An MLflow client with two runs' model outputs; log_outputs fails like MLflow does
    when ``refuse`` is set."""

    def __init__(self, outputs: dict[str, list[str]], refuse: bool = False) -> None:
        self.outputs, self.refuse, self.linked = outputs, refuse, []

    def get_run(self, run_id: str) -> Any:
        models = [SimpleNamespace(model_id=m) for m in self.outputs.get(run_id, [])]
        return SimpleNamespace(outputs=SimpleNamespace(model_outputs=models))

    def log_outputs(self, run_id: str, models: list[Any]) -> None:
        if self.refuse:
            raise RuntimeError(SQL_ERROR)
        self.linked.append((run_id, [m.model_id for m in models]))


def test_the_best_model_is_linked_to_the_parent_once() -> None:
    client = Client({"best": ["m-1"]})
    assert report._link_best_model(client, "parent", "best") == "models:/m-1"
    assert client.linked == [("parent", ["m-1"])]
    client.outputs["parent"] = ["m-1"]  # the sweep launched again
    assert report._link_best_model(client, "parent", "best") == "models:/m-1"
    assert len(client.linked) == 1


def test_a_failed_link_warns_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert report._link_best_model(Client({"best": ["m-1"]}, refuse=True), "p", "best") is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not link the best run's model" in err
