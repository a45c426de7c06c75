"""Secrets out of everything mlpx records or prints (issue 19, case 5).

A URI may carry credentials: ``http://user:password@host``, ``postgresql://u:pw@db/x``,
``s3://key:secret@bucket``, or a query such as ``?password=...`` / ``?token=...``.
:func:`mask_secrets` replaces the userinfo (everything between ``://`` and ``@``) and
such query values by ``***``, in a string or recursively in mappings and sequences, so
params, tags, artifacts (``config/config.yaml``, ``overrides.yaml``), error tags and
printed lines keep the rest of the URI (scheme, host, path) readable. Only stdlib.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = [
    "MASK",
    "MaskedStream",
    "has_secret",
    "mask_log_records",
    "mask_secrets",
    "mask_std_streams",
]

MASK = "***"

#: ``scheme://userinfo@`` (also Hydra's escaped ``scheme\://``): the userinfo runs to the
#: authority's last ``@`` (a password may hold an unencoded ``@``), never past ``/?#``.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*\\?://)(?P<userinfo>[^\s/?#]+)@")
#: ``?password=...`` / ``&token=...`` in a URI query (libpq, object stores, webhooks).
_QUERY = re.compile(
    r"(?P<key>[?&;](?:password|passwd|pwd|token|secret|api[_-]?key|access[_-]?key|"
    r"secret[_-]?key|sig|signature)=)(?P<value>[^&#\s'\"]+)",
    re.IGNORECASE,
)

T = TypeVar("T")


def _mask_text(text: str) -> str:
    if "://" not in text and "=" not in text:
        return text  # the common case: nothing that could hold a secret
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _QUERY.sub(lambda m: f"{m['key']}{MASK}", text)


def mask_secrets(value: T) -> T:
    """``value`` with URI credentials replaced by ``***``.

    Strings: ``http://user:pw@host:5000/x`` -> ``http://***@host:5000/x``,
    ``postgresql://db/x?password=pw`` -> ``postgresql://db/x?password=***``. Mappings
    (keys and values), lists and tuples are copied with their strings masked; other values
    are returned as they are. Idempotent.
    """
    if isinstance(value, str):
        return _mask_text(value)  # type: ignore[return-value]
    if isinstance(value, Mapping):
        return {mask_secrets(k): mask_secrets(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, list | tuple):
        return type(value)(mask_secrets(v) for v in value)  # type: ignore[return-value]
    return value


def has_secret(text: str) -> bool:
    """Whether ``text`` holds something :func:`mask_secrets` would mask."""
    return _mask_text(text) != text


def mask_log_records() -> None:
    """Mask every log record's message and arguments from now on (a record factory, so it
    covers every logger and handler: Hydra's "Launching ... logger.tracking_uri=..." lines,
    MLflow's "View run ... at <uri>"). Installing it twice is harmless."""
    import logging

    old = logging.getLogRecordFactory()
    if getattr(old, "mlpx_masks", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = old(*args, **kwargs)
        if isinstance(record.msg, str):
            record.msg = _mask_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_mask_text(a) if isinstance(a, str) else a for a in record.args)
        return record

    factory.mlpx_masks = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


class MaskedStream:
    """A text stream that writes through :func:`mask_secrets` (every other attribute is the
    wrapped stream's: ``isatty``, ``fileno``, ``encoding``, ``buffer`` ...)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(_mask_text(text) if isinstance(text, str) else text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def mask_std_streams() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` in :class:`MaskedStream` (once): libraries
    print URIs too (MLflow's "View run ... at: http://user:pw@host/...")."""
    import sys

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, MaskedStream):
            setattr(sys, name, MaskedStream(stream))
