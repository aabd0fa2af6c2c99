"""Log context (run id, system, object, phase) and the ``--log-format json`` formatter.

The context lives in ``contextvars``, so a thread or task of its own keeps its own;
a filter copies it into every record, and both formats show it. JSON lines come
from python-json-logger: it plugs into the standard ``logging`` calls the whole code
base already makes (structlog would mean a second logging API or a bridge for them).
The formatter redacts every secret the CLI's ``SecretRedactor`` knows from the whole
line, message and traceback alike.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

CONTEXT_FIELDS = ("run_id", "system", "object", "phase")
_CTX: dict[str, ContextVar[Any]] = {k: ContextVar(f"revsync_log_{k}", default=None) for k in CONTEXT_FIELDS}
log = logging.getLogger("revsync.run")


def bind(**values: Any) -> None:
    """Set context fields for the log lines that follow in this context (None clears)."""
    for k, v in values.items():
        _CTX[k].set(v)


def phase(name: str, *, system: str | None = None, object: str | None = None) -> None:
    """Enter a phase of the current run: bind it and log one line saying so."""
    bind(phase=name, system=system, object=object)
    log.info("%s %s%s", name, object or "", f" ({system})" if system else "")


def context() -> dict[str, Any]:
    return {k: v.get() for k, v in _CTX.items()}


class ContextFilter(logging.Filter):
    """Copies the run context into every record (as attributes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for k, v in context().items():
            if not hasattr(record, k):
                setattr(record, k, v)
        return True


def _secrets() -> list[str]:
    from sync.config import SecretRedactor

    out: list[str] = []
    for f in logging.getLogger().filters:
        if isinstance(f, SecretRedactor):
            out.extend(f.secrets)
    return sorted(set(out), key=len, reverse=True)


class RedactingJsonFormatter(JsonFormatter):
    """One JSON object per line; secret values replaced by ``***`` anywhere in it."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        for s in _secrets():
            line = line.replace(s, "***")
        return line


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup(level: int, fmt: str = "text", stream: TextIO | None = None) -> logging.Handler:
    """Configure the root logger: ``text`` (one readable line) or ``json`` (one object a line)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    if fmt == "json":
        handler.setFormatter(RedactingJsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(run_id)s %(system)s %(object)s %(phase)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        ))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
