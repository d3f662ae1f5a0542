"""The ``snapshot_file``: the last good instance set per service, kept on disk for cold starts."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from typing import Any, Dict, List, Optional, Tuple

from ..errors import InvalidInstanceError
from ..naming import Instance
from ..registry.subscription import Snapshot

log = logging.getLogger("fyerreg.discovery")

_FORMAT = 1
ViewKey = Tuple[str, Optional[str]]


class SnapshotFile:
    """A JSON file holding one snapshot per (service, version), rewritten atomically."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: Optional[Dict[ViewKey, Dict[str, Any]]] = None

    def _load_all(self) -> Dict[ViewKey, Dict[str, Any]]:
        if self._entries is not None:
            return self._entries
        entries: Dict[ViewKey, Dict[str, Any]] = {}
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
            if not isinstance(data, dict) or data.get("format") != _FORMAT:
                raise ValueError(f"not a fyerreg snapshot file (format {_FORMAT})")
            for entry in data.get("services", []):
                entries[(entry["service"], entry["version"])] = entry
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable snapshot file %s: %s", self.path, exc)
            entries = {}
        self._entries = entries
        return entries

    def load(self, service: str, version: Optional[str]) -> Optional[Snapshot]:
        """The saved set of (service, version), marked stale; None when there is none."""
        with self._lock:
            entry = self._load_all().get((service, version))
        if entry is None:
            return None
        try:
            instances = [Instance.from_dict(rec) for rec in entry["instances"]]
            return Snapshot(instances, revision=int(entry["revision"]), taken_at=float(entry["taken_at"]),
                            stale=True)
        except (InvalidInstanceError, KeyError, TypeError, ValueError) as exc:
            log.warning("ignoring unreadable entry for %s/%s in snapshot file %s: %s",
                        service, version, self.path, exc, extra={"service": service, "version": version})
            return None

    def save(self, service: str, version: Optional[str], snapshot: Snapshot) -> None:
        """Record ``snapshot`` as the last good set of (service, version); errors are logged."""
        with self._lock:
            entries = self._load_all()
            entries[(service, version)] = {
                "service": service,
                "version": version,
                "revision": snapshot.revision,
                "taken_at": snapshot.taken_at,
                "instances": [inst.to_dict() for inst in snapshot],
            }
            services: List[Dict[str, Any]] = list(entries.values())
            try:
                self._write({"format": _FORMAT, "services": services})
            except OSError as exc:
                log.warning("cannot write snapshot file %s: %s", self.path, exc,
                            extra={"service": service, "version": version})

    def _write(self, data: Dict[str, Any]) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(prefix=".fyerreg-", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, ensure_ascii=False, separators=(",", ":"))
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
