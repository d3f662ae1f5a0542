"""Metrics: counters, gauges and histograms with labels, read as plain data."""

from __future__ import annotations

import threading

from fyerreg.metrics import Metrics


def test_counters_add_up_per_label_set():
    m = Metrics()
    m.inc("calls")
    m.inc("calls", 2)
    m.inc("errors", endpoint="a")
    m.inc("errors", endpoint="b")
    m.inc("errors", endpoint="a")
    assert m.counter("calls") == 3
    assert m.counter("errors", endpoint="a") == 2
    assert m.counter("never") == 0
    snap = m.snapshot()
    assert snap["counters"]["calls"] == 3
    assert sorted((s["labels"]["endpoint"], s["value"]) for s in snap["counters"]["errors"]) == [("a", 2), ("b", 1)]


def test_label_order_does_not_matter():
    m = Metrics()
    m.inc("x", a="1", b="2")
    m.inc("x", b="2", a="1")
    assert m.counter("x", b="2", a="1") == 2


def test_gauges_keep_the_last_value():
    m = Metrics()
    m.set("instances", 3)
    m.set("instances", 1)
    m.set("lag", 0.5, service="orders")
    snap = m.snapshot()
    assert snap["gauges"]["instances"] == 1
    assert snap["gauges"]["lag"] == [{"labels": {"service": "orders"}, "value": 0.5}]


def test_histograms_summarise_observations():
    m = Metrics()
    for value in (3.0, 1.0, 2.0):
        m.observe("latency", value)
    assert m.snapshot()["histograms"]["latency"] == {"count": 3, "sum": 6.0, "min": 1.0, "max": 3.0, "mean": 2.0}


def test_empty_metrics_and_snapshot_is_a_copy():
    m = Metrics()
    assert m.snapshot() == {"counters": {}, "gauges": {}, "histograms": {}}
    m.inc("a")
    snap = m.snapshot()
    snap["counters"]["a"] = 100
    assert m.counter("a") == 1


def test_concurrent_increments_are_not_lost():
    m = Metrics()

    def bump() -> None:
        for _ in range(2000):
            m.inc("n")
            m.observe("h", 1.0)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert m.counter("n") == 16000
    assert m.snapshot()["histograms"]["h"]["count"] == 16000
