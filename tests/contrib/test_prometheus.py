"""fyerreg.contrib.prometheus: stats() of registries and discoveries as Prometheus metrics."""

from __future__ import annotations

from typing import Any, Dict

import pytest

from fyerreg.metrics import Metrics, Stats, StatsBuilder, iter_series

prometheus_client = pytest.importorskip("prometheus_client")

from fyerreg.contrib.prometheus import StatsCollector, register  # noqa: E402


class FakeRegistry:
    def __init__(self) -> None:
        self.metrics = Metrics()

    def stats(self) -> Dict[str, Any]:
        return self.metrics.snapshot()


class FakeDiscovery(FakeRegistry):
    pass


def _render(registry: Any) -> str:
    text: str = prometheus_client.generate_latest(registry).decode()
    return text


def test_renders_counters_gauges_and_histograms_with_a_source_label() -> None:
    reg, disc = FakeRegistry(), FakeDiscovery()
    reg.metrics.inc("registrations", 2)
    reg.metrics.inc("lease_losses")
    reg.metrics.set("subscriptions", 3)
    disc.metrics.inc("picks", 5, instance_id="i-1")
    disc.metrics.inc("errors", 1, instance_id="i-1")
    disc.metrics.observe("pick_latency_seconds", 0.25, instance_id="i-1")
    collectors = prometheus_client.CollectorRegistry()
    register(collectors, reg, disc)

    text = _render(collectors)
    assert 'fyerreg_registrations_total{source="fakeregistry"} 2.0' in text
    assert 'fyerreg_lease_losses_total{source="fakeregistry"} 1.0' in text
    assert 'fyerreg_subscriptions{source="fakeregistry"} 3.0' in text
    assert "# TYPE fyerreg_picks_total counter" in text
    assert 'fyerreg_picks_total{instance_id="i-1",source="fakediscovery"} 5.0' in text
    assert 'fyerreg_pick_latency_seconds_count{instance_id="i-1",source="fakediscovery"} 1.0' in text
    assert 'fyerreg_pick_latency_seconds_sum{instance_id="i-1",source="fakediscovery"} 0.25' in text


def test_values_are_read_at_scrape_time() -> None:
    reg = FakeRegistry()
    collectors = prometheus_client.CollectorRegistry()
    register(collectors, reg)
    assert collectors.get_sample_value("fyerreg_registrations_total", {"source": "fakeregistry"}) is None
    reg.metrics.inc("registrations")
    assert collectors.get_sample_value("fyerreg_registrations_total", {"source": "fakeregistry"}) == 1.0


def test_registering_twice_on_one_registry_reuses_the_collector() -> None:
    first, second = FakeRegistry(), FakeRegistry()
    first.metrics.inc("registrations")
    second.metrics.inc("registrations", 4)
    collectors = prometheus_client.CollectorRegistry()
    a = register(collectors, first)
    b = register(collectors, second)  # a second collector would raise on duplicated time series
    assert a is b
    assert a.sources.keys() == {"fakeregistry", "fakeregistry-2"}
    assert collectors.get_sample_value("fyerreg_registrations_total", {"source": "fakeregistry-2"}) == 4.0
    assert register(collectors, first) is a and len(a.sources) == 2


def test_series_with_different_labels_share_one_family() -> None:
    reg = FakeRegistry()
    reg.metrics.inc("ejections")
    other = FakeRegistry()
    other.metrics.inc("ejections", instance_id="i-9")
    collectors = prometheus_client.CollectorRegistry()
    register(collectors, reg, other)
    text = _render(collectors)
    assert text.count("# TYPE fyerreg_ejections_total counter") == 1
    assert 'fyerreg_ejections_total{instance_id="",source="fakeregistry"} 1.0' in text
    assert 'fyerreg_ejections_total{instance_id="i-9",source="fakeregistry-2"} 1.0' in text


def test_a_failing_source_does_not_break_the_scrape() -> None:
    class Broken:
        def stats(self) -> Dict[str, Any]:
            raise RuntimeError("closed")

    good = FakeRegistry()
    good.metrics.inc("registrations")
    collector = StatsCollector()
    collector.add(Broken(), name="broken")
    collector.add(good, name="good")
    collectors = prometheus_client.CollectorRegistry()
    collectors.register(collector)
    assert collectors.get_sample_value("fyerreg_registrations_total", {"source": "good"}) == 1.0


def test_add_rejects_objects_without_stats_and_duplicate_names() -> None:
    collector = StatsCollector()
    with pytest.raises(TypeError, match="stats"):
        collector.add(object())  # type: ignore[arg-type]
    collector.add(FakeRegistry(), name="r")
    with pytest.raises(ValueError, match="'r'"):
        collector.add(FakeRegistry(), name="r")


def test_removed_sources_are_no_longer_exported() -> None:
    reg = FakeRegistry()
    reg.metrics.inc("registrations")
    collectors = prometheus_client.CollectorRegistry()
    collector = register(collectors, reg)
    collector.remove(reg)
    assert "fyerreg_registrations_total" not in _render(collectors)


def test_iter_series_reads_the_typed_sections_only() -> None:
    metrics = Metrics()
    metrics.inc("picks", instance_id="a")
    metrics.set("healthy", 1)
    stats = dict(metrics.snapshot(), subscriptions=2, backend="etcd")
    series = sorted((s.kind, s.name, tuple(s.labels.items()), s.value) for s in iter_series(stats))
    assert series == [
        ("counter", "picks", (("instance_id", "a"),), 1),
        ("gauge", "healthy", (), 1),
    ]


def test_numbers_outside_the_typed_sections_are_not_exported() -> None:
    class FlatRegistry:  # no kinds: nothing to guess them from
        def stats(self) -> Dict[str, Any]:
            return {"registrations": 3, "lease_losses": 1, "instances": 2, "subscriptions": 0}

    collectors = prometheus_client.CollectorRegistry()
    register(collectors, FlatRegistry())
    assert "fyerreg_" not in _render(collectors)


def test_labelled_per_service_and_per_instance_entries_become_labelled_series() -> None:
    class TypedDiscovery:  # the discovery layout: per-service and per-instance entries
        def stats(self) -> Stats:
            builder = StatsBuilder()
            service = {"service": "orders", "version": "*"}
            builder.gauge("service_revision", 42, **service)
            builder.gauge("service_stale", False, **service)
            for id, version, port, picks, errors, ejected in (("a", "v1", 1, 7, 1, True), ("b", "v2", 2, 2, 0, False)):
                labels = {"service": "orders", "version": version, "instance_id": id, "address": f"h:{port}"}
                builder.counter("instance_picks", picks, **labels)
                builder.counter("instance_errors", errors, **labels)
                builder.gauge("instance_ejected", ejected, **labels)
            builder.counter("ejections", 1)
            return builder.build()

    collectors = prometheus_client.CollectorRegistry()
    register(collectors, TypedDiscovery())
    get = collectors.get_sample_value
    src = {"source": "typeddiscovery"}
    a = dict(src, service="orders", version="v1", instance_id="a", address="h:1")
    assert get("fyerreg_instance_picks_total", a) == 7.0
    assert get("fyerreg_instance_errors_total", a) == 1.0
    assert get("fyerreg_instance_ejected", a) == 1.0
    assert get("fyerreg_instance_picks_total", dict(a, version="v2", instance_id="b", address="h:2")) == 2.0
    assert get("fyerreg_service_revision", dict(src, service="orders", version="*")) == 42.0
    assert get("fyerreg_service_stale", dict(src, service="orders", version="*")) == 0.0
    assert get("fyerreg_ejections_total", src) == 1.0


def test_a_figure_set_both_with_and_without_labels_is_refused_where_it_is_made() -> None:
    builder = StatsBuilder()
    builder.counter("calls", 1)
    with pytest.raises(ValueError, match="calls"):
        builder.counter("calls", 2, instance_id="a")
    with pytest.raises(ValueError, match="calls"):
        builder.counter("calls", 2)


def test_real_registry_and_discovery_render_the_expected_metric_names() -> None:
    from fyerreg import Discovery, Instance, MemoryRegistry

    with MemoryRegistry() as registry:
        registry.register(Instance.new("orders", "v1", "127.0.0.1:8001", id="a"))
        with Discovery(registry) as discovery:
            with discovery.pick("orders"):
                pass
            collectors = prometheus_client.CollectorRegistry()
            register(collectors, registry, discovery)
            text = _render(collectors)
    for name in ("fyerreg_registrations_total", "fyerreg_lease_losses_total", "fyerreg_reregistrations_total",
                 "fyerreg_snapshots_delivered_total", "fyerreg_snapshots_conflated_total", "fyerreg_subscriptions",
                 "fyerreg_instance_picks_total", "fyerreg_instance_errors_total", "fyerreg_instance_ejections_total"):
        assert f"\n{name}{{" in text, name
    assert ('fyerreg_instance_picks_total{address="127.0.0.1:8001",instance_id="a",service="orders",'
            'source="discovery",version="v1"} 1.0') in text


def test_an_api_clients_call_outcomes_are_counters_and_its_idle_connections_a_gauge() -> None:
    from fyerreg import Discovery, Instance, MemoryRegistry
    from fyerreg.api import CallConnectionError, Client, ClientOptions

    with MemoryRegistry() as registry, Discovery(registry) as discovery:
        registry.register(Instance.new("greeter", "v1", "127.0.0.1:1", id="refusing"))
        with Client(ClientOptions(discovery=discovery, service_name="greeter", retries=0)) as client:
            with pytest.raises(CallConnectionError):
                client.call("Greeter", "SayHello", {"name": "x"})
            collectors = prometheus_client.CollectorRegistry()
            register(collectors, client)
            text = _render(collectors)
    for name in ("calls", "retries", "timeouts", "failures", "remote_errors"):
        assert f"# TYPE fyerreg_{name}_total counter\n" in text, name
        assert f"# TYPE fyerreg_{name} gauge\n" not in text, name
    assert 'fyerreg_failures_total{source="client"} 1.0' in text
    assert 'fyerreg_timeouts_total{source="client"} 0.0' in text
    assert "# TYPE fyerreg_idle_connections gauge\n" in text
