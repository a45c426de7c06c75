"""Continuing a run from a checkpoint without logging a (key, step) pair twice.

A checkpoint and the metric values up to its step are one unit: :class:`mlpx.checkpoint.
Checkpointer` flushes the tracker before it writes the file, so every value up to the
checkpoint's step is in the store whenever the checkpoint exists. Values after that step may
be there too (a time-based send before a SIGKILL); training from the checkpoint computes them
again, identically (the run is seeded and resumes bit for bit), so :func:`skip_logged` drops
the pairs the run already holds from the checkpoint's step on. The run's history then equals
an uninterrupted run's: no gap, no duplicate.
"""

from __future__ import annotations

from typing import Any

from mlpx.tracking.base import sanitize_key

__all__ = ["SkipLogged", "logged_pairs", "skip_logged"]


def logged_pairs(uri: str, run_id: str, since: int) -> set[tuple[str, int]]:
    """The (key, step) pairs with ``step >= since`` in the history of run ``run_id``."""
    from mlflow.tracking import MlflowClient

    from mlpx.tracking.store import open_client

    client: MlflowClient = open_client(uri)
    keys = client.get_run(run_id).data.metrics.keys()
    pairs: set[tuple[str, int]] = set()
    for key in keys:
        pairs.update(
            (key, m.step) for m in client.get_metric_history(run_id, key) if m.step >= since
        )
    return pairs


class SkipLogged:
    """A tracker that passes everything to ``tracker`` except metric values whose
    (key, step) is in ``skip``."""

    def __init__(self, tracker: Any, skip: set[tuple[str, int]]) -> None:
        self.tracker = tracker
        self.skip = skip

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Log the values of ``metrics`` the run does not hold at ``step`` yet."""
        if self.skip:
            metrics = {k: v for k, v in metrics.items() if (sanitize_key(k), step) not in self.skip}
        if metrics:
            self.tracker.log_metrics(metrics, step=step)

    def __getattr__(self, name: str) -> Any:
        if name == "tracker":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.tracker, name)

    def __repr__(self) -> str:
        return f"SkipLogged({self.tracker!r}, skip={len(self.skip)} pairs)"


def skip_logged(tracker: Any, since: int) -> Any:
    """``tracker`` (continuing an existing MLflow run) wrapped in :class:`SkipLogged` with
    the pairs its run holds from step ``since`` on; ``tracker`` itself when there are none."""
    run_id = getattr(tracker, "run_id", None)
    uri = getattr(tracker, "tracking_uri", None)
    if run_id is None or uri is None:
        return tracker
    from mlpx.tracking.store import store_error

    tracker.flush()
    try:
        skip = logged_pairs(uri, run_id, since)
    except Exception as e:
        raise store_error(uri, f"read the metric history of run {run_id}", e) from e
    return SkipLogged(tracker, skip) if skip else tracker
