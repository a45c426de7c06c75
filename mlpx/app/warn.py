"""One-line warnings about a step that failed while the run or sweep goes on.

An exception's text can run over many lines (SQLAlchemy appends the SQL statement, its
parameters and a link); a warning keeps its first line, so that each one stays one line
on stderr. Only stdlib: the artifact helper process imports it too.
"""

from __future__ import annotations

import sys

__all__ = ["first_line", "warn"]


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first non-empty line of ``str(exc)`` (the exception's type name when it has no
    text), cut to ``limit`` characters."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    line = lines[0] if lines else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def warn(what: str, exc: BaseException) -> None:
    """Print ``mlpx: warning: could not <what>: <first line of exc>`` on stderr."""
    print(f"mlpx: warning: could not {what}: {first_line(exc)}", file=sys.stderr)
