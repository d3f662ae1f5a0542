"""In-library counters, gauges and histograms, and the one ``stats()`` layout they are read in.

Every ``stats()`` of fyerreg (registries, :class:`~fyerreg.discovery.Discovery`,
:class:`~fyerreg.api.Client`) returns :class:`Stats`: ``{"counters": .., "gauges": ..,
"histograms": ..}``, each section mapping a name to a number (unlabelled) or to a list of
``{"labels": {...}, "value": ...}`` entries (per service, per instance). The kind of a
figure is decided where it is made; :func:`iter_series` is the one reader.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Iterator, List, Mapping, NamedTuple, Optional, Protocol, Tuple, TypedDict, Union

from . import _fork

__all__ = ["Labelled", "Metrics", "Series", "Stats", "StatsBuilder", "SupportsStats", "iter_series"]

LabelKey = Tuple[Tuple[str, str], ...]


class Labelled(TypedDict):
    """One labelled entry of a :class:`Stats` section."""

    labels: Dict[str, str]
    value: Any


Section = Dict[str, Union[float, Dict[str, float], List[Labelled]]]


class Stats(TypedDict):
    """What every ``stats()`` returns: figures sorted by kind.

    ``counters`` only ever increase, ``gauges`` are levels (booleans as 0/1), and
    ``histograms`` hold ``{"count", "sum", "min", "max", "mean"}`` dicts.
    """

    counters: Section
    gauges: Section
    histograms: Section


class StatsBuilder:
    """Collects figures into a :class:`Stats`, each under the kind its maker gives it."""

    def __init__(self, base: Optional[Stats] = None) -> None:
        self._counters: Section = _copy(base["counters"]) if base is not None else {}
        self._gauges: Section = _copy(base["gauges"]) if base is not None else {}
        self._histograms: Section = _copy(base["histograms"]) if base is not None else {}

    def counter(self, name: str, value: float, **labels: str) -> None:
        """Add counter ``name`` (a figure that only increases), labelled when ``labels`` are given."""
        _add(self._counters, "counter", name, value, labels)

    def gauge(self, name: str, value: float, **labels: str) -> None:
        """Add gauge ``name`` (a level; a bool becomes 0/1), labelled when ``labels`` are given."""
        _add(self._gauges, "gauge", name, int(value) if isinstance(value, bool) else value, labels)

    def build(self) -> Stats:
        """The figures collected so far."""
        return {"counters": self._counters, "gauges": self._gauges, "histograms": self._histograms}


def _copy(section: Section) -> Section:
    return {name: list(entry) if isinstance(entry, list) else entry for name, entry in section.items()}


def _add(section: Section, kind: str, name: str, value: float, labels: Dict[str, str]) -> None:
    if not labels:
        if name in section:
            raise ValueError(f"{kind} {name!r} is already set")
        section[name] = value
        return
    entries = section.setdefault(name, [])
    if not isinstance(entries, list):
        raise ValueError(f"{kind} {name!r} is set both with and without labels")
    entries.append({"labels": dict(labels), "value": value})


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

    def snapshot(self) -> Stats:
        """Everything as a :class:`Stats`: unlabelled series map name -> value, labelled
        ones name -> list of ``{"labels": {...}, "value": ...}``."""
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
    """Anything with a ``stats()`` returning a :class:`Stats` (registries, discoveries, clients)."""

    def stats(self) -> Stats: ...


class Series(NamedTuple):
    """One series of a stats snapshot: ``kind`` is "counter", "gauge" or "histogram";
    a histogram's ``value`` is its ``{"count", "sum", "min", "max", "mean"}`` dict."""

    kind: str
    name: str
    labels: Dict[str, str]
    value: Any


_KINDS = {"counters": "counter", "gauges": "gauge", "histograms": "histogram"}


def iter_series(stats: Mapping[str, Any]) -> Iterator[Series]:
    """Every series of a :class:`Stats`, with the kind of the section it is in.

    Keys other than ``counters``, ``gauges`` and ``histograms`` are not figures and are skipped.
    """
    for key, kind in _KINDS.items():
        section = stats.get(key)
        if not isinstance(section, Mapping):
            continue
        for name, entry in section.items():
            if isinstance(entry, list):
                for item in entry:
                    if isinstance(item, Mapping) and "value" in item:
                        labels = {str(k): str(v) for k, v in dict(item.get("labels") or {}).items()}
                        yield Series(kind, name, labels, item["value"])
            else:
                yield Series(kind, name, {}, entry)
