"""Expose the ``stats()`` of registries, discoveries and API clients to ``prometheus_client`` (extra ``prometheus``).

Usage::

    from prometheus_client import CollectorRegistry
    from fyerreg.contrib.prometheus import register

    metrics = CollectorRegistry()
    collector = register(metrics, registry, discovery)

Each series keeps the kind of the :class:`~fyerreg.metrics.Stats` section it is in:
counters become ``fyerreg_<name>_total``, gauges ``fyerreg_<name>``, histograms
summaries ``fyerreg_<name>_count`` / ``_sum``; every series keeps its labels and
carries a ``source`` label naming the object it came from. Values are read at scrape time.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .. import _fork
from ..metrics import Series, SupportsStats, iter_series

__all__ = ["StatsCollector", "register"]

logger = logging.getLogger("fyerreg.contrib.prometheus")

_INVALID = re.compile(r"[^a-zA-Z0-9_]")
_SOURCE_LABEL = "source"

_registered: weakref.WeakKeyDictionary[Any, Dict[str, StatsCollector]] = weakref.WeakKeyDictionary()
_registered_lock = threading.Lock()


def _metric_name(*parts: str) -> str:
    name = _INVALID.sub("_", "_".join(p for p in parts if p))
    return "_" + name if name[:1].isdigit() else name


class _Family:
    __slots__ = ("kind", "samples", "label_names")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.samples: List[Tuple[Dict[str, str], Any]] = []
        self.label_names: Dict[str, None] = {_SOURCE_LABEL: None}  # ordered set

    def add(self, labels: Dict[str, str], value: Any) -> None:
        self.samples.append((labels, value))
        for name in labels:
            self.label_names.setdefault(name)


class StatsCollector:
    """A ``prometheus_client`` collector reading ``stats()`` of the sources added to it."""

    def __init__(self, namespace: str = "fyerreg") -> None:
        self.namespace = namespace
        _fork.track(self)  # renews its locks in a forked child
        self._lock = threading.Lock()
        self._sources: Dict[str, SupportsStats] = {}

    def add(self, source: SupportsStats, name: Optional[str] = None) -> str:
        """Read ``source.stats()`` on every scrape, labelled ``source=name``; returns the name used.

        The default name is the source's class name in lower case, suffixed with
        ``-2``, ``-3``, ... when taken. Adding a source already present keeps its name.
        """
        if not callable(getattr(source, "stats", None)):
            raise TypeError(f"{type(source).__name__} has no stats() method")
        with self._lock:
            for existing, src in self._sources.items():
                if src is source:
                    return existing
            if name is None:
                base = type(source).__name__.lower()
                name, n = base, 1
                while name in self._sources:
                    n += 1
                    name = f"{base}-{n}"
            elif name in self._sources:
                raise ValueError(f"a source named {name!r} is already exported")
            self._sources[name] = source
            return name

    def remove(self, source: SupportsStats) -> None:
        """Stop exporting ``source`` (no error when absent)."""
        with self._lock:
            for name, src in list(self._sources.items()):
                if src is source:
                    del self._sources[name]

    @property
    def sources(self) -> Dict[str, SupportsStats]:
        """The exported sources by name (a copy)."""
        with self._lock:
            return dict(self._sources)

    def describe(self) -> List[Any]:
        """Nothing up front: metric names depend on the sources' stats at scrape time."""
        return []

    def collect(self) -> Iterator[Any]:
        """Build the metric families from every source's current stats."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

        families: Dict[str, _Family] = {}
        for source_name, source in self.sources.items():
            try:
                stats = source.stats()
            except Exception:  # a broken source must not break the whole scrape
                logger.warning("stats() of %s failed; skipped in this scrape", source_name, exc_info=True)
                continue
            for series in iter_series(stats):
                self._add_series(families, source_name, series)

        for name, family in families.items():
            label_names = list(family.label_names)
            help_text = f"fyerreg {family.kind} {name[len(self.namespace) + 1:]}, from stats()"
            metric: Any
            if family.kind == "counter":
                metric = CounterMetricFamily(name, help_text, labels=label_names)
            elif family.kind == "gauge":
                metric = GaugeMetricFamily(name, help_text, labels=label_names)
            else:
                metric = SummaryMetricFamily(name, help_text, labels=label_names)
            for labels, value in family.samples:
                values = [labels.get(label, "") for label in label_names]
                if family.kind == "histogram":
                    metric.add_metric(values, count_value=value["count"], sum_value=value["sum"])
                else:
                    metric.add_metric(values, value)
            yield metric

    def _add_series(self, families: Dict[str, _Family], source_name: str, series: Series) -> None:
        name = _metric_name(self.namespace, series.name)
        if series.kind == "counter" and name.endswith("_total"):
            name = name[: -len("_total")]
        value = series.value
        if series.kind == "histogram":
            if not isinstance(value, dict) or not {"count", "sum"} <= value.keys():
                return
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        family = families.get(name)
        if family is None:
            family = families[name] = _Family(series.kind)
        elif family.kind != series.kind:
            logger.debug("metric %s is a %s elsewhere; %s series of %s skipped",
                         name, family.kind, series.kind, source_name)
            return
        labels = {_metric_name(k if k != _SOURCE_LABEL else "stats_" + k): v for k, v in series.labels.items()}
        labels[_SOURCE_LABEL] = source_name
        family.add(labels, value)


def register(registry: Any, *sources: SupportsStats, namespace: str = "fyerreg") -> StatsCollector:
    """Export ``sources`` on the ``prometheus_client`` ``CollectorRegistry`` given.

    One collector per (registry, namespace): calling again with the same registry adds
    the sources to the collector registered the first time instead of registering a
    second one (which would duplicate every time series). Returns that collector.
    """
    if registry is None:
        raise TypeError("registry must be a prometheus_client CollectorRegistry")
    with _registered_lock:
        per_registry = _registered.setdefault(registry, {})
        collector = per_registry.get(namespace)
        if collector is None:
            collector = StatsCollector(namespace)
            registry.register(collector)
            per_registry[namespace] = collector
    for source in sources:
        collector.add(source)
    return collector
