"""Exposition of every kind of stats() source: rising figures are counters, levels are gauges."""

from __future__ import annotations

import uuid
from typing import Any, Dict, List, Set, Tuple

import pytest

from fyerreg import Discovery, Instance, MemoryRegistry
from fyerreg.api import CallConnectionError, Client, ClientOptions
from fyerreg.registry.etcd import EtcdRegistry

prometheus_client = pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from fyerreg.contrib.prometheus import register  # noqa: E402

REGISTRY_COUNTERS = {
    "registrations", "deregistrations", "takeovers", "lease_losses", "reregistrations", "watch_reconnects",
    "compaction_recoveries", "snapshots_delivered", "snapshots_conflated", "invalid_records_skipped",
    "cache_hits", "cache_stale_reads",
}
CLIENT_COUNTERS = {"calls", "retries", "timeouts", "failures", "remote_errors"}
DISCOVERY_COUNTERS = {"discovery_snapshots", "instance_picks", "instance_calls", "instance_errors",
                      "instance_ejections"}
GAUGES = {
    "instances_registered", "subscriptions", "cached_services",  # registries
    "idle_connections",  # api.Client
    "service_revision", "service_stale", "service_subscribed", "service_candidates", "service_protecting_empty",
    "instance_enabled", "instance_weight", "instance_ejected",  # Discovery
}

Scrape = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]


def _scrape(collectors: Any) -> Tuple[Dict[str, str], Scrape]:
    """Each family's type by its name (without ``fyerreg_``), and every sample's value."""
    kinds: Dict[str, str] = {}
    samples: Scrape = {}
    for family in text_string_to_metric_families(prometheus_client.generate_latest(collectors).decode()):
        kinds[family.name[len("fyerreg_"):]] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return kinds, samples


@pytest.mark.etcd
def test_clients_discoveries_and_both_backends_expose_rising_figures_as_counters_and_levels_as_gauges(
    etcd_endpoints: List[str],
) -> None:
    a = Instance.new("orders", "v1", "127.0.0.1:1", id="a")  # nothing listens: calls fail to connect
    b = Instance.new("orders", "v1", "127.0.0.1:2", id="b")
    scrapes: List[Scrape] = []
    kinds: Dict[str, str] = {}
    memory = MemoryRegistry()
    etcd = EtcdRegistry(endpoints=etcd_endpoints, namespace=f"kinds-{uuid.uuid4().hex}")
    discovery = Discovery(memory)
    client = Client(ClientOptions(discovery=discovery, service_name="orders", retries=1))
    with memory, etcd, discovery, client:
        collectors = prometheus_client.CollectorRegistry()
        register(collectors, memory, etcd, discovery, client)

        def scrape() -> None:
            seen, samples = _scrape(collectors)
            kinds.update(seen)
            scrapes.append(samples)

        scrape()
        for registry in (memory, etcd):
            registry.register(a)
            registry.register(b)
        etcd_sub = etcd.subscribe("orders")
        scrape()
        for _ in range(3):
            with pytest.raises(CallConnectionError):
                client.call("Orders", "Get", {})
        scrape()
        for registry in (memory, etcd):
            registry.deregister(b)
        etcd_sub.close()
        discovery.select("orders")
        scrape()

    counters = {name for name, kind in kinds.items() if kind == "counter"}
    gauges = {name for name, kind in kinds.items() if kind == "gauge"}
    assert counters == REGISTRY_COUNTERS | CLIENT_COUNTERS | DISCOVERY_COUNTERS
    assert gauges == GAUGES
    assert set(kinds.values()) == {"counter", "gauge"}

    # What the types claim holds over the run: no counter ever went down, and levels did.
    fell: Set[str] = set()
    for before, after in zip(scrapes, scrapes[1:]):
        for (name, labels), value in before.items():
            if (name, labels) in after and after[(name, labels)] < value:
                fell.add(name)
    assert fell, "the run lowers some levels"
    assert all(not name.endswith("_total") for name in fell), fell
    assert {"fyerreg_instances_registered", "fyerreg_subscriptions"} <= fell
    last = scrapes[-1]
    assert last[("fyerreg_failures_total", (("source", "client"),))] == 3
    assert last[("fyerreg_retries_total", (("source", "client"),))] == 3
    assert last[("fyerreg_registrations_total", (("source", "etcdregistry"),))] == 2
    assert last[("fyerreg_registrations_total", (("source", "memoryregistry"),))] == 2
