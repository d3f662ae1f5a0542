"""Log output for applications and the ``fyerreg`` command: JSON lines or plain text.

The library itself only ever logs through ``logging.getLogger("fyerreg.<module>")``
with structured ``extra={...}`` fields; :func:`configure` attaches one handler to the
``"fyerreg"`` logger (never the root logger) that renders those fields.
"""

from __future__ import annotations

import logging
import sys
import unicodedata
from typing import Any, Dict, Optional, TextIO, Union

from ._grpc_quiet import quiet_grpc
from .tracing import current_ids

__all__ = ["configure", "reset", "escape_control", "STRUCTURED_FIELDS"]

LOGGER_NAME = "fyerreg"

STRUCTURED_FIELDS = ("service", "version", "instance_id", "lease_id", "address", "endpoint", "attempt")
"""The ``extra`` keys the library uses; the text format shows them first, in this order.

``address`` is an instance's ``host:port``, ``endpoint`` an etcd member's.
"""

_REDACTED_KEYS = frozenset({"password"})
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_MARK = "_fyerreg_configured"
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Format characters that reorder the text around them on screen (the "Trojan Source" ones).
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_NEEDS_QUOTES = frozenset(' "=')


def escape_control(text: str) -> str:
    """``text`` with control characters, line/paragraph separators and bidi controls written as escapes.

    ``\\n``, ``\\r``, ``\\t``, else ``\\xNN`` / ``\\uNNNN`` as in a Python literal: a value
    read from etcd can then neither start a line of its own nor send terminal escape codes.
    """
    if text.isprintable():
        return text
    return "".join(_escape_char(ch) for ch in text)


def _escape_char(ch: str) -> str:
    if ch in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[ch]
    if unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _BIDI_CONTROLS:
        code = ord(ch)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return ch


def _field_value(value: Any) -> str:
    """A ``key=value`` value, quoted (``\\`` and ``"`` escaped) when it is empty or holds a space,
    a quote, ``=`` or a control character: then no value can fake another field or line."""
    text = str(value)
    if text and text.isprintable() and not any(ch in _NEEDS_QUOTES for ch in text):
        return text
    return '"' + escape_control(text.replace("\\", "\\\\")).replace('"', '\\"') + '"'


def _extras(record: logging.LogRecord) -> Dict[str, Any]:
    """The fields passed through ``extra=`` (anything not a standard LogRecord attribute)."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


def _redact(fields: Dict[str, Any]) -> None:
    for key in fields:
        if key.lower() in _REDACTED_KEYS:
            fields[key] = "***"


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...`` with the structured fields appended.

    Every record is one line: control characters in the message and the fields are
    escaped (:func:`escape_control`), values with spaces are quoted. A traceback follows
    on lines of its own, each indented, so none of them can pass for a record.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        text = escape_control(self.formatMessage(record))
        fields = _extras(record)
        if fields:
            _redact(fields)
            known = [k for k in STRUCTURED_FIELDS if k in fields]
            ordered = known + sorted(k for k in fields if k not in STRUCTURED_FIELDS)
            text += " " + " ".join(f"{escape_control(k)}={_field_value(fields[k])}" for k in ordered)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        below = [part for part in (record.exc_text, record.stack_info and self.formatStack(record.stack_info))
                 if part]
        for part in below:
            text += "".join("\n  " + escape_control(line) for line in part.split("\n"))
        return text


def _json_formatter() -> logging.Formatter:
    try:  # python-json-logger >= 3
        from pythonjsonlogger.json import JsonFormatter
    except ImportError:  # pragma: no cover - python-json-logger 2.x
        from pythonjsonlogger.jsonlogger import JsonFormatter  # type: ignore[attr-defined,no-redef]

    class _Formatter(JsonFormatter):  # type: ignore[misc,valid-type]
        def process_log_record(self, log_record: Dict[str, Any]) -> Dict[str, Any]:
            _redact(log_record)
            ids = current_ids()
            if ids is not None:
                log_record["trace_id"], log_record["span_id"] = ids
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
    ``lease_id``, ``endpoint``, ``attempt``, ...), plus ``trace_id`` and ``span_id``
    while an OpenTelemetry span is active (:mod:`fyerreg.tracing`); otherwise a text
    line with the fields appended as ``key=value``. Only the ``"fyerreg"`` logger is touched; calling again
    replaces the handler an earlier call installed. ``propagate`` False (the default)
    keeps the records from also reaching the root logger's handlers.
    gRPC's own log lines, written by its C core to stderr, are kept at ERROR and above
    unless ``GRPC_VERBOSITY`` is set (this works when grpc has not been imported yet;
    see :mod:`fyerreg._grpc_quiet`).
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
    quiet_grpc()
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
