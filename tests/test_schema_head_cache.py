"""Issue 14: MLflow's schema head (~0.35 s to read from its migration scripts) is kept in
mlflow_schema_head.json in mlpx's cache folder, keyed by MLflow's version and scripts; a
damaged, stale or unwritable file falls back to computing it, silently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlpx.tracking import sqlite_store
from mlpx.tracking.sqlite_store import (
    SCHEMA_HEAD_FILE,
    compute_schema_head,
    schema_head,
    schema_head_key,
)
from mlpx.user_cache import cache_home


@pytest.fixture(scope="module")
def computed() -> str:
    head = compute_schema_head()
    assert head  # MLflow's private function moved: tests/test_reliability_store.py says more
    return head


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An empty cache folder, and schema_head's in-process memo cleared around the test."""
    monkeypatch.setenv("MLPX_CACHE_HOME", str(tmp_path / "cache"))
    schema_head.cache_clear()
    yield tmp_path / "cache"
    schema_head.cache_clear()


def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the calls to compute_schema_head (still computing the real head)."""
    seen: list[int] = []

    def counted() -> str | None:
        seen.append(1)
        return compute_schema_head()

    monkeypatch.setattr(sqlite_store, "compute_schema_head", counted)
    return seen


def test_the_cached_head_is_the_computed_one(home: Path, computed: str, monkeypatch) -> None:
    assert cache_home() == home
    seen = calls(monkeypatch)
    assert schema_head() == computed and len(seen) == 1
    saved = json.loads((home / SCHEMA_HEAD_FILE).read_text())
    assert saved == {"key": schema_head_key(), "head": computed}
    assert saved["key"]["mlflow"] and Path(saved["key"]["folder"]).is_dir()
    schema_head.cache_clear()  # a new process: read from the file, not computed
    assert schema_head() == computed and len(seen) == 1
    assert not [p.name for p in home.iterdir() if p.name != SCHEMA_HEAD_FILE]  # no temp file


def test_the_file_is_what_is_used_when_its_key_matches(home: Path, computed: str) -> None:
    home.mkdir()
    (home / SCHEMA_HEAD_FILE).write_text(json.dumps({"key": schema_head_key(), "head": "x1"}))
    assert schema_head() == "x1"  # (a head of our own making: proves the file was read)


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "",
        "\xff\xfe",
        '["a list"]',
        '{"head": "x1"}',  # no key
        "KEY_WITH_HEAD_NULL",
    ],
)
def test_a_damaged_file_is_ignored_and_rewritten(
    home: Path, computed: str, content: str, monkeypatch, capsys
) -> None:
    home.mkdir()
    if content == "KEY_WITH_HEAD_NULL":
        content = json.dumps({"key": schema_head_key(), "head": None})
    (home / SCHEMA_HEAD_FILE).write_text(content, encoding="latin-1")
    seen = calls(monkeypatch)
    assert schema_head() == computed and len(seen) == 1
    assert json.loads((home / SCHEMA_HEAD_FILE).read_text())["head"] == computed
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("field", ["mlflow", "folder", "mtime_ns", "scripts"])
def test_another_key_recomputes(home: Path, computed: str, field: str, monkeypatch) -> None:
    """Another MLflow (version, place, migration scripts) never gets this one's head."""
    key = schema_head_key()
    home.mkdir()
    stale = {**key, field: "1" if field != "mtime_ns" else key[field] - 1}
    (home / SCHEMA_HEAD_FILE).write_text(json.dumps({"key": stale, "head": "old"}))
    seen = calls(monkeypatch)
    assert schema_head() == computed and len(seen) == 1
    assert json.loads((home / SCHEMA_HEAD_FILE).read_text()) == {"key": key, "head": computed}


def test_an_unwritable_cache_folder_is_no_error(
    tmp_path: Path, computed: str, monkeypatch, capsys
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MLPX_CACHE_HOME", str(blocker / "cache"))
    schema_head.cache_clear()
    try:
        assert schema_head() == computed
    finally:
        schema_head.cache_clear()
    assert blocker.read_text() == "not a folder" and capsys.readouterr() == ("", "")
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]


def test_the_folder_follows_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLPX_CACHE_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_home() == tmp_path / "mlpx"
    monkeypatch.setenv("MLPX_CACHE_HOME", str(tmp_path / "elsewhere"))
    assert cache_home() == tmp_path / "elsewhere"
