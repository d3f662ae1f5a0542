"""Structured ``extra`` fields for log records about one instance."""

from __future__ import annotations

from typing import Dict

from .naming import Instance


def instance_extra(inst: Instance) -> Dict[str, str]:
    """The ``extra={...}`` of a log record about ``inst``.

    ``address`` is always an instance's ``host:port``; ``endpoint`` is kept for an etcd member's.
    """
    return {"service": inst.service, "version": inst.version, "instance_id": inst.id, "address": inst.address}
