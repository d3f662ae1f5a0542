"""Log output for applications and the ``fyerreg`` command: JSON lines or plain text.

The library itself only ever logs through ``logging.getLogger("fyerreg.<module>")``
with structured ``extra={...}`` fields; :func:`configure` attaches one handler to the
``"fyerreg"`` logger (never the root logger) that renders those fields.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Dict, Optional, TextIO, Union

__all__ = ["configure", "reset", "STRUCTURED_FIELDS"]

LOGGER_NAME = "fyerreg"

STRUCTURED_FIELDS = ("service", "version", "instance_id", "lease_id", "endpoint", "attempt")
"""The ``extra`` keys the library uses; the text format shows them first, in this order."""

_REDACTED_KEYS = frozenset({"password"})
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_MARK = "_fyerreg_configured"


def _extras(record: logging.LogRecord) -> Dict[str, Any]:
    """The fields passed through ``extra=`` (anything not a standard LogRecord attribute)."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


def _redact(fields: Dict[str, Any]) -> None:
    for key in fields:
        if key.lower() in _REDACTED_KEYS:
            fields[key] = "***"


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...`` with the structured fields appended."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = _extras(record)
        if not fields:
            return text
        _redact(fields)
        known = [k for k in STRUCTURED_FIELDS if k in fields]
        ordered = known + sorted(k for k in fields if k not in STRUCTURED_FIELDS)
        tail = " ".join(f"{k}={fields[k]}" for k in ordered)
        first, sep, rest = text.partition("\n")  # keep a traceback below the fields
        return f"{first} {tail}{sep}{rest}"


def _json_formatter() -> logging.Formatter:
    try:  # python-json-logger >= 3
        from pythonjsonlogger.json import JsonFormatter
    except ImportError:  # pragma: no cover - python-json-logger 2.x
        from pythonjsonlogger.jsonlogger import JsonFormatter  # type: ignore[attr-defined,no-redef]

    class _Formatter(JsonFormatter):  # type: ignore[misc,valid-type]
        def process_log_record(self, log_record: Dict[str, Any]) -> Dict[str, Any]:
            _redact(log_record)
            return log_record

    formatter: logging.Formatter = _Formatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp=True,
    )
    return formatter


def configure(
    json: bool = True,
    level: Union[int, str] = logging.INFO,
    stream: Optional[TextIO] = None,
    *,
    propagate: bool = False,
) -> logging.Handler:
    """Send fyerreg's log records to ``stream`` (default ``sys.stderr``), one per line.

    With ``json`` each line is a JSON object with ``timestamp``, ``level``, ``logger``,
    ``message`` and every structured field (``service``, ``version``, ``instance_id``,
    ``lease_id``, ``endpoint``, ``attempt``, ...); otherwise a text line with the fields
    appended as ``key=value``. Only the ``"fyerreg"`` logger is touched; calling again
    replaces the handler an earlier call installed. ``propagate`` False (the default)
    keeps the records from also reaching the root logger's handlers.
    Returns the installed handler.
    """
    if isinstance(level, str):
        resolved = logging.getLevelName(level.upper())
        if not isinstance(resolved, int):
            raise ValueError(f"level {level!r} is not a logging level name")
        level = resolved
    logger = logging.getLogger(LOGGER_NAME)
    _remove_handlers(logger)
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(_json_formatter() if json else TextFormatter())
    setattr(handler, _MARK, True)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = propagate
    return handler


def reset() -> None:
    """Undo :func:`configure`: remove its handler, restore propagation and the default level."""
    logger = logging.getLogger(LOGGER_NAME)
    _remove_handlers(logger)
    logger.setLevel(logging.NOTSET)
    logger.propagate = True


def _remove_handlers(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        if getattr(handler, _MARK, False):
            logger.removeHandler(handler)
            handler.close()
