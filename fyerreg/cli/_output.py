"""Rendering for the ``fyerreg`` command: aligned tables, JSON lines, timestamps."""

from __future__ import annotations

import datetime
import json
import sys
import time
from typing import Any, Dict, Mapping, Optional, Sequence

from ..logging import escape_control
from ..naming import Instance, Status

__all__ = ["table", "emit", "emit_line", "emit_json", "metadata_text", "endpoints_text", "status_text", "timestamp",
           "instance_dict"]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell; the last column is not padded.

    Control characters in a cell (read from etcd) are escaped: one row stays one line.
    """
    cells = [[escape_control(str(c)) for c in headers]] + [[escape_control(str(c)) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def emit(text: str) -> None:
    """Write ``text`` and a newline to stdout at once (output is often a pipe).

    ``text`` is written as is: escape what came from etcd (:func:`emit_line`).
    """
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def emit_line(text: str) -> None:
    """:func:`emit` with control characters escaped, for a line holding values read from etcd."""
    emit(escape_control(text))


def emit_json(data: Any, *, indent: Optional[int] = None) -> None:
    """Write ``data`` as JSON to stdout (one line unless ``indent``)."""
    emit(json.dumps(data, indent=indent, ensure_ascii=False))


def metadata_text(metadata: Mapping[str, str]) -> str:
    """``k=v,k2=v2`` sorted by key, or ``-`` when empty."""
    return ",".join(f"{k}={v}" for k, v in sorted(metadata.items())) or "-"


def endpoints_text(instance: Instance) -> str:
    """``grpc=h:p,https=h:p(tls)`` sorted by name, or ``-`` when the instance names none."""
    return ",".join(f"{name}={e.address}{'(tls)' if e.tls else ''}"
                    for name, e in sorted(instance.endpoints.items())) or "-"


def status_text(status: Status) -> str:
    """``enabled``, ``disabled`` or ``unknown_<n>``."""
    return status.name.lower()


def timestamp(when: Optional[float] = None) -> str:
    """UTC ISO 8601 with milliseconds, e.g. ``2024-05-01T12:00:00.123Z``."""
    moment = datetime.datetime.fromtimestamp(time.time() if when is None else when, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def instance_dict(instance: Instance) -> Dict[str, Any]:
    """The instance as JSON-ready data, with ``status`` as a name."""
    data = instance.to_dict()
    data["status"] = status_text(instance.status)
    return data
