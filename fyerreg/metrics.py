"""In-library counters, gauges and histograms, read through ``stats()``."""

from __future__ import annotations

import threading
from typing import Any, Dict, Iterator, Mapping, NamedTuple, Optional, Protocol, Tuple

from . import _fork

__all__ = ["Metrics", "Series", "SupportsStats", "iter_series", "COUNTER_NAMES"]

LabelKey = Tuple[Tuple[str, str], ...]


class _Histogram:
    __slots__ = ("count", "total", "min", "max")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.min = float("inf")
        self.max = float("-inf")

    def observe(self, value: float) -> None:
        self.count += 1
        self.total += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def as_dict(self) -> Dict[str, float]:
        if not self.count:
            return {"count": 0, "sum": 0.0, "min": 0.0, "max": 0.0, "mean": 0.0}
        return {"count": self.count, "sum": self.total, "min": self.min, "max": self.max,
                "mean": self.total / self.count}


class Metrics:
    """A thread-safe set of named counters, gauges and histograms with optional labels."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: Dict[str, Dict[LabelKey, float]] = {}
        self._gauges: Dict[str, Dict[LabelKey, float]] = {}
        self._histograms: Dict[str, Dict[LabelKey, _Histogram]] = {}
        _fork.track(self)  # its lock is renewed in a forked child

    @staticmethod
    def _key(labels: Dict[str, str]) -> LabelKey:
        return tuple(sorted(labels.items()))

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        """Add ``amount`` to counter ``name``."""
        key = self._key(labels)
        with self._lock:
            series = self._counters.setdefault(name, {})
            series[key] = series.get(key, 0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        """Set gauge ``name`` to ``value``."""
        with self._lock:
            self._gauges.setdefault(name, {})[self._key(labels)] = value

    def observe(self, name: str, value: float, **labels: str) -> None:
        """Record ``value`` in histogram ``name``."""
        key = self._key(labels)
        with self._lock:
            series = self._histograms.setdefault(name, {})
            hist = series.get(key)
            if hist is None:
                hist = series[key] = _Histogram()
            hist.observe(value)

    def counter(self, name: str, **labels: str) -> float:
        """The current value of a counter (0 when never incremented)."""
        with self._lock:
            return self._counters.get(name, {}).get(self._key(labels), 0)

    def snapshot(self) -> Dict[str, Any]:
        """Everything as plain data: ``{"counters": .., "gauges": .., "histograms": ..}``.

        Unlabelled series map name -> value; labelled ones map name -> list of
        ``{"labels": {...}, "value": ...}``.
        """
        def flat(table: Dict[str, Dict[LabelKey, Any]], conv: Any) -> Dict[str, Any]:
            out: Dict[str, Any] = {}
            for name, series in table.items():
                if list(series) == [()]:
                    out[name] = conv(series[()])
                else:
                    out[name] = [{"labels": dict(k), "value": conv(v)} for k, v in series.items()]
            return out

        with self._lock:
            return {
                "counters": flat(self._counters, lambda v: v),
                "gauges": flat(self._gauges, lambda v: v),
                "histograms": flat(self._histograms, lambda h: h.as_dict()),
            }


class SupportsStats(Protocol):
    """Anything with a ``stats()`` returning plain data (registries, discoveries)."""

    def stats(self) -> Mapping[str, Any]: ...


class Series(NamedTuple):
    """One series of a stats snapshot: ``kind`` is "counter", "gauge" or "histogram";
    a histogram's ``value`` is its ``{"count", "sum", "min", "max", "mean"}`` dict."""

    kind: str
    name: str
    labels: Dict[str, str]
    value: Any


COUNTER_NAMES = frozenset({
    "registrations", "deregistrations", "lease_losses", "reregistrations", "watch_reconnects",
    "compaction_recoveries", "snapshots_delivered", "snapshots_conflated", "invalid_records_skipped",
    "cache_hits", "cache_stale_reads", "picks", "calls", "errors", "ejections", "returns",
    "retries", "timeouts", "failures", "remote_errors",  # api.Client
})
"""Names that are counters wherever they appear in a ``stats()`` result (outside ``counters`` too)."""

_KINDS = {"counters": "counter", "gauges": "gauge", "histograms": "histogram"}


def _singular(name: str) -> str:
    return name[:-1] if name.endswith("s") and len(name) > 1 else name


def iter_series(
    stats: Mapping[str, Any], *, prefix: str = "", labels: Optional[Dict[str, str]] = None
) -> Iterator[Series]:
    """Every numeric series of a ``stats()`` result, whatever its layout.

    - ``counters`` / ``gauges`` / ``histograms`` sections (the :meth:`Metrics.snapshot`
      shape) keep their kind and labels;
    - other numbers are counters when their name is in :data:`COUNTER_NAMES`, else
      gauges; booleans are 0/1 gauges;
    - a nested mapping prefixes its names with its key (``cache: {hits}`` -> ``cache_hits``);
    - a list of mappings (``services: [{service, version, instances: [{id, picks}]}]``)
      turns each item's string fields into labels (``id`` becomes ``instance_id`` in an
      ``instances`` list) and names its numbers by the singular of its key alone
      (``service_revision``, and ``instance_picks`` for the instances of a service).

    Anything else (strings, None) is skipped.
    """
    base = dict(labels or {})
    for key, value in stats.items():
        kind = _KINDS.get(key)
        if kind is not None and isinstance(value, Mapping):
            yield from _typed_section(kind, value, prefix, base)
        elif isinstance(value, bool):
            yield Series("gauge", prefix + key, base, int(value))
        elif isinstance(value, (int, float)):
            yield Series("counter" if key in COUNTER_NAMES else "gauge", prefix + key, base, value)
        elif isinstance(value, Mapping):
            yield from iter_series(value, prefix=f"{prefix}{key}_", labels=base)
        elif isinstance(value, list):
            item_prefix = f"{_singular(key)}_"  # instances inside services: instance_picks
            for item in value:
                if isinstance(item, Mapping):
                    item_labels = dict(base)
                    for field, text in item.items():
                        if isinstance(text, str):
                            item_labels[f"{_singular(key)}_id" if field == "id" else field] = text
                    yield from iter_series(item, prefix=item_prefix, labels=item_labels)


def _typed_section(kind: str, section: Mapping[str, Any], prefix: str, base: Dict[str, str]) -> Iterator[Series]:
    for name, entry in section.items():
        if isinstance(entry, list):
            for item in entry:
                if isinstance(item, Mapping) and "value" in item:
                    item_labels = dict(base)
                    item_labels.update((str(k), str(v)) for k, v in dict(item.get("labels") or {}).items())
                    yield Series(kind, prefix + name, item_labels, item["value"])
        else:
            yield Series(kind, prefix + name, dict(base), entry)
