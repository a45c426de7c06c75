"""Credentials in URIs never reach the store or the terminal (issue 19, case 5)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mlpx.redact import has_secret, mask_secrets
from tests.cli_helpers import client, run_mlpx, runs_of

CASES = [
    ("http://user:password@host:5000/x", "http://***@host:5000/x"),
    ("https://TOKEN@example.org", "https://***@example.org"),
    ("http://user:p@ss@host/a@b", "http://***@host/a@b"),  # an unencoded @ in the password
    ("postgresql://mlpx:s3cret@db:5432/runs", "postgresql://***@db:5432/runs"),
    ("postgresql://db/runs?sslmode=require&password=pw", "postgresql://db/runs?sslmode=require&password=***"),
    ("s3://bucket/x?token=abc&sig=zz", "s3://bucket/x?token=***&sig=***"),
    ("logger.tracking_uri=http\\://u:pw@h", "logger.tracking_uri=http\\://***@h"),  # Hydra's escape
    ("sqlite:////tmp/a/mlflow.db", "sqlite:////tmp/a/mlflow.db"),
    ("file:///data/x@y.csv", "file:///data/x@y.csv"),
    ("me@example.org", "me@example.org"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "masked"), CASES)
def test_mask_secrets_masks_userinfo_and_query_secrets(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked
    assert mask_secrets(masked) == masked  # idempotent
    assert has_secret(text) == (text != masked)


def test_mask_secrets_walks_containers() -> None:
    cfg = {"logger": {"tracking_uri": "http://u:pw@h"}, "widths": [64, "ftp://a:b@c"], "n": 3}
    out = mask_secrets(cfg)
    assert out == {
        "logger": {"tracking_uri": "http://***@h"},
        "widths": [64, "ftp://***@c"],
        "n": 3,
    }
    assert cfg["logger"]["tracking_uri"] == "http://u:pw@h"  # a copy: the input is unchanged
    assert mask_secrets(("a", None, 1.5)) == ("a", None, 1.5)


def test_log_records_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    from mlpx.redact import mask_log_records

    old = logging.getLogRecordFactory()
    try:
        mask_log_records()
        with caplog.at_level(logging.INFO):
            logging.getLogger("hydra.test").info("#0 : logger.tracking_uri=%s", "http://u:pw@h")
        assert "pw" not in caplog.text and "http://***@h" in caplog.text
    finally:
        logging.setLogRecordFactory(old)


@pytest.mark.slow
def test_tracking_uri_password_is_stored_and_printed_nowhere(
    tmp_path: Path, shared_mlflow_server: str
) -> None:
    """A real ``mlflow server``; the URI carries user:password (sent as basic auth, which the
    server ignores). Params, tags, config/config.yaml, config/overrides.yaml, the error tag
    of a failed run and stderr must not hold the password."""
    base = shared_mlflow_server  # the session's server; this test's experiment: secrets
    port = int(base.rsplit(":", 1)[1])
    secret = "hunter2pw"
    uri = f"http://alice:{secret}@127.0.0.1:{port}"
    work = tmp_path / "work"
    work.mkdir()
    at = (f"logger.tracking_uri={uri}", "logger.experiment_name=secrets")
    ok = run_mlpx(work, *at, "dataset=iris", "trainer.epochs=1")
    assert ok.returncode == 0, ok.stderr
    bad = run_mlpx(work, *at, "dataset=iris", "trainer.epochs=1",
                   "optimizer=sgd", "optimizer.lr=1e300", "trainer.epochs=3")  # fmt: skip
    assert bad.returncode == 2, bad.stderr
    for proc in (ok, bad):
        assert secret not in proc.stderr + proc.stdout
    runs = runs_of(base, "secrets")
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]
    c = client(base)
    for run in runs:
        assert run.data.params["logger.tracking_uri"] == f"http://***@127.0.0.1:{port}"
        everything = [*run.data.params.values(), *run.data.tags.values(), run.info.run_name]
        assert not [v for v in everything if secret in v]
        for name in ("config/config.yaml", "config/overrides.yaml"):
            text = Path(c.download_artifacts(run.info.run_id, name, str(tmp_path))).read_text()
            assert "127.0.0.1" in text and secret not in text, name


def test_masked_stream_masks_what_libraries_print() -> None:
    import io

    from mlpx.redact import MaskedStream

    raw = io.StringIO()
    stream = MaskedStream(raw)
    stream.write("View run at: http://u:pw@h:5000/#/runs/1\n")
    stream.writelines(["ok\n", "postgresql://a:b@db/x\n"])
    assert raw.getvalue() == "View run at: http://***@h:5000/#/runs/1\nok\npostgresql://***@db/x\n"
    assert stream.getvalue() == raw.getvalue()  # everything else is the wrapped stream's
