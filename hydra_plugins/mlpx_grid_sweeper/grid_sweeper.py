"""Hydra's basic grid sweeper, validating each distinct job shape once instead of every job.

Hydra's ``BasicSweeper`` composes the config of every job of a batch before launching it
("Validate that jobs can be safely composed"), and the launcher composes each again to run
it: every job of a grid is composed twice (~0.1-0.2 s each here, most of it re-reading
the YAML files). ``GridSweeper`` is the same sweeper (same ``hydra.sweeper.params`` and
``max_batch_size``, same order of jobs, same launcher calls) whose up-front validation
composes one job per distinct *shape*: the jobs' config-group choices (``optimizer=adam``,
``hydra/launcher=joblib``, ``+experiment=x``) in full, and for value overrides
(``optimizer.lr=0.01``: a key with a dot) the key and the kind of value (scalar, list,
dict, null) but not the value. mlpx's config is plain YAML (no typed schema in Hydra), so
whether a job composes depends on its shape only, and a 12-job grid over three values is
validated by one composition instead of twelve; a grid over ``optimizer=sgd,adam`` by two.
A composition error is still found before any job runs.

Its config is conf/hydra/sweeper/grid.yaml, found with mlpx's own configs; Hydra instantiates
the class once its plugin scan has found this module (in an editable install with the help
of :func:`mlpx.app.plugins.expose_plugins`).
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

__all__ = ["GridSweeper", "job_shape", "representatives"]


def _kind(value: str) -> str:
    v = value.strip()
    if v[:1] in "[{":
        return v[:1]
    return "null" if v.lower() in ("null", "~") else "scalar"


def job_shape(overrides: Sequence[str]) -> tuple[str, ...]:
    """What decides whether a job composes: group choices in full, value overrides by kind.

    ``["optimizer=adam", "optimizer.lr=0.01", "model.widths=[64]"]`` ->
    ``("optimizer=adam", "optimizer.lr=<scalar>", "model.widths=<[>")``.
    """
    shape = []
    for item in overrides:
        key, sep, value = item.partition("=")
        bare = key.lstrip("+~").split("@", 1)[0]
        if sep and "." in bare and "/" not in bare:
            shape.append(f"{key}=<{_kind(value)}>")
        else:
            shape.append(item)
    return tuple(shape)


def representatives(batch: Sequence[Sequence[str]]) -> list[Sequence[str]]:
    """The first job of each distinct :func:`job_shape` in ``batch``, in batch order."""
    seen: dict[tuple[str, ...], Sequence[str]] = {}
    for job in batch:
        seen.setdefault(job_shape(job), job)
    return list(seen.values())


class GridSweeper(BasicSweeper):
    """``BasicSweeper`` whose batch validation composes one job per :func:`job_shape`."""

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        super().validate_batch_is_legal(representatives(batch))
