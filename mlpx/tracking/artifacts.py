"""Checks that a run's artifacts can be written, made when the run starts, not at its end.

MLflow writes artifacts of local stores into the experiment's ``artifact_location`` (on
SQLite stores created by mlpx: ``<db folder>/mlruns/<experiment>``). A folder that cannot be
created or written (permissions, a read-only or full file system, a file in its place) used
to surface as a ``PermissionError`` traceback at the first artifact; :func:`check_artifact_root`
finds it before the run is created, in one line.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from mlpx.tracking.base import TrackingError

__all__ = ["check_artifact_root", "local_artifact_path"]


def local_artifact_path(location: str) -> Path | None:
    """The folder of a ``file:`` URI or plain path; None for remote locations (s3:, http:,
    mlflow-artifacts: ...), which the server checks."""
    parts = urlsplit(location)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme == "" or (len(parts.scheme) == 1 and os.name == "nt"):
        return Path(location)
    return None


def check_artifact_root(client: Any, experiment_id: str, uri: str) -> None:
    """Create the experiment's local artifact folder if needed and write a probe file there.

    Raises TrackingError naming the folder when that fails.
    """
    location = client.get_experiment(experiment_id).artifact_location
    folder = local_artifact_path(str(location or ""))
    if folder is None:
        return
    probe = folder / f".mlpx-write-test-{uuid.uuid4().hex[:8]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise TrackingError(
            f"the artifact folder {folder} of the runs in {uri} cannot be written ({reason}): "
            "fix its permissions or free space, or set logger.tracking_uri to a store in a "
            "writable folder"
        ) from None
