"""Turning keys read from etcd into instances, skipping (and reporting once) what is not a record."""

from __future__ import annotations

import collections
import logging
import threading
from typing import Dict, Iterable, Optional, Tuple

from ...errors import InvalidInstanceError
from ...metrics import Metrics
from ...naming import Instance
from ..layouts import Layout
from ._ops import KeyValue

__all__ = ["RecordDecoder"]

log = logging.getLogger("fyerreg.registry.etcd")

_REMEMBERED = 4096


class RecordDecoder:
    """Decodes records; an invalid one is skipped with one warning per (key, revision) and counted."""

    def __init__(self, layout: Layout, metrics: Metrics) -> None:
        self.layout = layout
        self.metrics = metrics
        self._seen: collections.OrderedDict[Tuple[str, int], None] = collections.OrderedDict()
        self._lock = threading.Lock()

    def decode(self, kv: KeyValue, service: str, version: Optional[str]) -> Optional[Instance]:
        """The instance at ``kv``, or None when it is not a valid record of (service, version)."""
        try:
            instance = self.layout.decode(kv.key, kv.value)
        except InvalidInstanceError as exc:
            self._skip(kv, str(exc), service, version)
            return None
        if instance.service != service or (version is not None and instance.version != version):
            if instance.service == service and not self.layout.versioned:
                return None  # another version's record: they share one prefix in this layout
            self._skip(kv, f"key is not a record of {service}/{version or '*'}", service, version)
            return None
        return instance

    def decode_all(self, kvs: Iterable[KeyValue], service: str, version: Optional[str]) -> Dict[str, Instance]:
        """Key -> instance for every valid record among ``kvs``."""
        out: Dict[str, Instance] = {}
        for kv in kvs:
            instance = self.decode(kv, service, version)
            if instance is not None:
                out[kv.key] = instance
        return out

    def _skip(self, kv: KeyValue, why: str, service: str, version: Optional[str]) -> None:
        mark = (kv.key, kv.mod_revision)
        with self._lock:
            if mark in self._seen:
                return
            self._seen[mark] = None
            if len(self._seen) > _REMEMBERED:
                self._seen.popitem(last=False)
        self.metrics.inc("invalid_records_skipped")
        log.warning("skipping invalid record at %r (revision %d): %s", kv.key, kv.mod_revision, why,
                    extra={"key": kv.key, "service": service, "version": version or "*"})
