"""Health-gated registration in-process: HealthCheck's arguments, hung and raising checks, maintenance from
code and from its key, and a status write that fails while etcd is down, retried at the next tick."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator, List, Tuple

import pytest

from fyerreg import EtcdRegistry, Status
from fyerreg.contrib._integration import Settings
from fyerreg.registry.kv._maintenance import delete_maintenance, put_maintenance
from fyerreg.registry.memory import MemoryRegistry, MemoryStore
from fyerreg.serving import InstanceSpec, ServingRegistration
from fyerreg.serving.health import MAX_HUNG_CHECKS, HealthCheck
from fyerreg.testing import EtcdServer
from tests.helpers import no_fyerreg_thread_left, wait_until

INTERVAL = 0.1
TIMEOUT = 0.2


def status_in(registry: Any, service: str) -> List[Status]:
    return [instance.status for instance in registry.list_services(service)]


class Flag:
    """A check whose answer the test sets; counts its calls."""

    def __init__(self) -> None:
        self.ok = True
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.ok


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    yield MemoryStore()


@pytest.mark.parametrize("field, value, error", [
    ("interval", 0, ValueError), ("interval", -1.0, ValueError), ("interval", "5", TypeError),
    ("timeout", 0, ValueError), ("failures", 0, ValueError), ("failures", 1.5, TypeError),
    ("successes", 0, ValueError), ("successes", True, TypeError),
])
def test_bad_health_check_arguments_raise_an_error_naming_the_field(field: str, value: Any, error: type) -> None:
    with pytest.raises(error, match=f"health_check.{field}"):
        HealthCheck(lambda: True, **{field: value})


def test_a_check_that_is_neither_callable_nor_module_colon_callable_is_refused() -> None:
    with pytest.raises(TypeError, match="health_check"):
        HealthCheck(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="module:callable"):
        HealthCheck("no_colon_here")
    assert HealthCheck("os.path:exists").call is __import__("os").path.exists


def test_bad_health_settings_fail_when_the_app_is_configured_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="FYERREG_HEALTH_INTERVAL"):
        Settings.from_mapping({"FYERREG_SERVICE_NAME": "app", "FYERREG_HEALTH_CHECK": "os.path:exists",
                               "FYERREG_HEALTH_INTERVAL": 0}, prefix="FYERREG_", source="app.config")
    settings = Settings.from_mapping({"FYERREG_SERVICE_NAME": "app", "FYERREG_HEALTH_CHECK": "os.path:isdir",
                                      "FYERREG_HEALTH_FAILURES": 5}, prefix="FYERREG_", source="app.config")
    health = settings.health()
    assert health is not None and health.failures == 5 and health.interval == 5.0


def test_the_check_runs_in_a_named_thread_off_the_caller_and_every_thread_ends_at_stop(store: MemoryStore) -> None:
    seen: List[str] = []

    def check() -> bool:
        seen.append(threading.current_thread().name)
        return True

    with no_fyerreg_thread_left("stop"), MemoryRegistry(store=store) as registry:
        registration = ServingRegistration(registry, InstanceSpec("named", address="127.0.0.1:9"), wait_ready=False,
                                           health_check=HealthCheck(check, interval=INTERVAL))
        registration.start()
        wait_until(lambda: seen, timeout=5)
        assert "fyerreg-health-named" in {t.name for t in threading.enumerate()}
        registration.stop()
    assert seen[0].startswith("fyerreg-health-check-named")


def test_a_raising_check_is_a_failure_and_the_checks_go_on(store: MemoryStore) -> None:
    state = {"raise": True}

    def check() -> bool:
        if state["raise"]:
            raise RuntimeError("boom")
        return True

    with MemoryRegistry(store=store) as registry, MemoryRegistry(store=store) as other:
        registration = ServingRegistration(registry, InstanceSpec("raising", address="127.0.0.1:9"), wait_ready=False,
                                           health_check=HealthCheck(check, interval=INTERVAL, failures=2))
        with registration:
            wait_until(lambda: status_in(other, "raising") == [Status.DISABLED], timeout=INTERVAL * 2 + 1)
            state["raise"] = False
            wait_until(lambda: status_in(other, "raising") == [Status.ENABLED], timeout=INTERVAL * 2 + 1)


def test_a_hung_check_is_a_failure_bounded_by_its_timeout_and_hung_runs_do_not_pile_up(store: MemoryStore) -> None:
    release = threading.Event()
    calls: List[int] = []

    def check() -> bool:
        calls.append(1)
        release.wait(30)
        return True

    health = HealthCheck(check, interval=INTERVAL, timeout=TIMEOUT, failures=2, successes=1)
    with MemoryRegistry(store=store) as registry, MemoryRegistry(store=store) as other:
        registration = ServingRegistration(registry, InstanceSpec("hung", address="127.0.0.1:9"), wait_ready=False,
                                           health_check=health)
        with registration:
            began = time.monotonic()
            wait_until(lambda: status_in(other, "hung") == [Status.DISABLED], timeout=(INTERVAL + TIMEOUT) * 2 + 1)
            assert time.monotonic() - began <= (INTERVAL + TIMEOUT) * 2 + 1
            monitor = registration._gate.monitor
            # The ticks go on past the cap; no run beyond it is started while they hang.
            wait_until(lambda: monitor.failed >= MAX_HUNG_CHECKS + 3, timeout=20)
            assert len(calls) == MAX_HUNG_CHECKS
            hung = [t for t in threading.enumerate() if t.name.startswith("fyerreg-health-check-hung")]
            assert len(hung) == MAX_HUNG_CHECKS
            release.set()  # the hung runs end; the next run answers in time
            wait_until(lambda: status_in(other, "hung") == [Status.ENABLED], timeout=(INTERVAL + TIMEOUT) * 2 + 1)


def test_maintenance_from_code_disables_whatever_the_health_and_off_gives_the_status_back_to_it(
        store: MemoryStore) -> None:
    check = Flag()
    with MemoryRegistry(store=store) as registry, MemoryRegistry(store=store) as other:
        registration = ServingRegistration(registry, InstanceSpec("maint", address="127.0.0.1:9"), wait_ready=False,
                                           health_check=HealthCheck(check, interval=INTERVAL, failures=1, successes=1))
        with registration:
            registration.maintenance(True)
            wait_until(lambda: status_in(other, "maint") == [Status.DISABLED], timeout=2)
            calls = check.calls
            wait_until(lambda: check.calls >= calls + 3, timeout=5)  # healthy checks meanwhile change nothing
            assert status_in(other, "maint") == [Status.DISABLED]
            assert registration.instance.status == Status.DISABLED
            check.ok = False
            registration.maintenance(False)  # off, but unhealthy: stays disabled
            wait_until(lambda: not registration.healthy, timeout=2)
            assert status_in(other, "maint") == [Status.DISABLED]
            check.ok = True
            wait_until(lambda: status_in(other, "maint") == [Status.ENABLED], timeout=INTERVAL + 1)


def test_maintenance_from_code_without_a_health_check(store: MemoryStore) -> None:
    with MemoryRegistry(store=store) as registry, MemoryRegistry(store=store) as other, \
            ServingRegistration(registry, InstanceSpec("plain", address="127.0.0.1:9"),
                                wait_ready=False) as registration:
        registration.maintenance(True)
        wait_until(lambda: status_in(other, "plain") == [Status.DISABLED], timeout=2)
        registration.maintenance(False)
        wait_until(lambda: status_in(other, "plain") == [Status.ENABLED], timeout=2)


def test_the_maintenance_key_written_by_another_registry_is_applied_by_the_owner_on_the_memory_backend(
        store: MemoryStore) -> None:
    with MemoryRegistry(store=store) as registry, MemoryRegistry(store=store) as other, \
            ServingRegistration(registry, InstanceSpec("keyed", address="127.0.0.1:9"),
                                wait_ready=False) as registration:
        put_maintenance(other, registration.instance, "disk swap")
        wait_until(lambda: status_in(other, "keyed") == [Status.DISABLED], timeout=2)
        assert delete_maintenance(other, "keyed") != []
        wait_until(lambda: status_in(other, "keyed") == [Status.ENABLED], timeout=2)


@pytest.mark.etcd
def test_an_instance_whose_maintenance_key_exists_registers_disabled_soon_after_start(
        etcd_endpoints: List[str]) -> None:
    spec = InstanceSpec("prekeyed", address="127.0.0.1:9")
    with EtcdRegistry(endpoints=etcd_endpoints) as registry, EtcdRegistry(endpoints=etcd_endpoints) as other:
        put_maintenance(other, spec.instance(), "kept out across restarts")
        try:
            with ServingRegistration(registry, spec, wait_ready=False):
                wait_until(lambda: status_in(other, "prekeyed") == [Status.DISABLED], timeout=2)
        finally:
            delete_maintenance(other, "prekeyed")


@contextmanager
def registered_on(etcd_server: EtcdServer, service: str, **options: Any) -> Iterator[Tuple[ServingRegistration, Any]]:
    """A started registration of ``service`` on ``etcd_server`` (a 0.5 s timeout, ``options`` added) and another
    registry reading the same etcd; both closed after."""
    registry = EtcdRegistry(endpoints=etcd_server.endpoints, dial_timeout=1.0, ttl=60)
    other = EtcdRegistry(endpoints=etcd_server.endpoints, dial_timeout=1.0)
    registration = ServingRegistration(registry, InstanceSpec(service, address="127.0.0.1:9"), wait_ready=False,
                                       timeout=0.5, **options)
    try:
        registration.start()
        yield registration, other
    finally:
        registration.stop()
        other.close()
        registry.close()


@contextmanager
def etcd_stopped(etcd_server: EtcdServer) -> Iterator[None]:
    """``etcd_server`` stopped for the block (refused at once: no request is held to be served late)."""
    etcd_server.stop()
    try:
        yield
    finally:
        etcd_server.start()


@pytest.mark.etcd
def test_a_status_write_that_fails_while_etcd_is_down_is_retried_at_the_next_tick(etcd_server: EtcdServer) -> None:
    check = Flag()
    with registered_on(etcd_server, "retried", health_check=HealthCheck(check, interval=INTERVAL, failures=1,
                                                                        successes=1)) as (registration, other):
        with etcd_stopped(etcd_server):
            check.ok = False
            wait_until(lambda: registration.instance.status == Status.DISABLED, timeout=5)
            calls = check.calls
            wait_until(lambda: check.calls >= calls + 2, timeout=10)  # writes failed meanwhile
        wait_until(lambda: status_in(other, "retried") == [Status.DISABLED], timeout=10,
                   message="the write that failed to be made once etcd answers")


def test_an_api_server_with_a_health_check_is_disabled_while_it_fails(store: MemoryStore) -> None:
    from fyerreg.api import Server, ServerOptions

    check = Flag()
    with MemoryRegistry(store=store) as registry, MemoryRegistry(store=store) as other:
        server = Server(ServerOptions(address="127.0.0.1:0", enable_registry=True, registry=registry,
                                      service_name="api-health", drain_delay=0,
                                      health_check=HealthCheck(check, interval=INTERVAL, failures=2, successes=1)))
        server.start()
        try:
            assert status_in(other, "api-health") == [Status.ENABLED]
            check.ok = False
            wait_until(lambda: status_in(other, "api-health") == [Status.DISABLED], timeout=INTERVAL * 2 + 1)
            check.ok = True
            wait_until(lambda: status_in(other, "api-health") == [Status.ENABLED], timeout=INTERVAL + 1)
            server.maintenance(True)
            wait_until(lambda: status_in(other, "api-health") == [Status.DISABLED], timeout=2)
            server.maintenance(False)
            wait_until(lambda: status_in(other, "api-health") == [Status.ENABLED], timeout=2)
        finally:
            server.stop(grace=1.0)


def test_server_options_refuse_a_bad_health_check() -> None:
    from fyerreg.api import ServerOptions

    with pytest.raises(TypeError, match="health_check"):
        ServerOptions(health_check=42)


@pytest.mark.etcd
def test_maintenance_switched_on_while_etcd_is_down_is_written_once_it_answers(etcd_server: EtcdServer) -> None:
    with registered_on(etcd_server, "retried-maint") as (registration, other):  # no health check: nothing else ticks
        # The owner has read its maintenance key before etcd goes: its watch has nothing new to say after.
        put_maintenance(other, registration.instance, "warm-up")
        wait_until(lambda: status_in(other, "retried-maint") == [Status.DISABLED], timeout=5)
        delete_maintenance(other, "retried-maint")
        wait_until(lambda: status_in(other, "retried-maint") == [Status.ENABLED], timeout=5)
        with etcd_stopped(etcd_server):
            registration.maintenance(True)
            assert registration.instance.status == Status.DISABLED
            wait_until(lambda: registration._status_failing, timeout=5, message="the first write to fail")
        wait_until(lambda: status_in(other, "retried-maint") == [Status.DISABLED], timeout=10,
                   message="the write that failed to be made once etcd answers")


def test_a_wsgi_service_registration_takes_a_plain_callable_as_its_health_check(store: MemoryStore) -> None:
    from fyerreg.contrib.wsgi import ServiceRegistration

    check = Flag()
    with MemoryRegistry(store=store) as registry, MemoryRegistry(store=store) as other, \
            ServiceRegistration(registry, "wsgi-health", address="127.0.0.1:9", wait_ready=False,
                                health_check=check) as registration:
        assert registration._gate.monitor.health == HealthCheck(check)  # the defaults: 5 s, 2 s, 3, 2
        registration.maintenance(True)
        wait_until(lambda: status_in(other, "wsgi-health") == [Status.DISABLED], timeout=2)


def test_gunicorn_registration_refuses_a_health_check_it_cannot_hand_to_its_registrar() -> None:
    from fyerreg.contrib.gunicorn import GunicornRegistration

    with pytest.raises(ValueError, match="health_check"):
        GunicornRegistration("g", health_check="healthz")  # neither a path nor module:callable
    with pytest.raises(ValueError, match=r"health_check\.failures"):
        GunicornRegistration("g", health_check="/healthz", health_failures=0)


def test_a_maintenance_key_names_an_instance_by_version_and_id_or_by_address() -> None:
    import json

    from fyerreg import Instance
    from fyerreg.registry.kv._maintenance import names

    mine = Instance.new("svc", "v1", "10.0.0.1:80", id="a")
    prefix = "/ns/maintenance/svc/"

    def value(address: str) -> bytes:
        return json.dumps({"reason": "", "address": address}).encode()

    assert names(mine, prefix, prefix + "v1/a", value("10.0.0.9:80"))
    assert names(mine, prefix, prefix + "-/7587869391862349316", value("10.0.0.1:80"))  # go-zero: lease id
    assert not names(mine, prefix, prefix + "v2/a", value("10.0.0.1:80"))  # another version
    assert not names(mine, prefix, prefix + "v1/b", value("10.0.0.2:80"))  # another instance
    assert not names(mine, prefix, prefix + "v1/b", b"not json")


def test_stop_does_not_wait_for_a_slow_check_to_reach_its_timeout(store: MemoryStore) -> None:
    release = threading.Event()
    entered = threading.Event()

    def slow() -> bool:
        entered.set()
        release.wait(60)
        return True

    with MemoryRegistry(store=store) as registry:
        registration = ServingRegistration(registry, InstanceSpec("slow", address="127.0.0.1:9"), wait_ready=False,
                                           health_check=HealthCheck(slow, interval=INTERVAL, timeout=30))
        registration.start()
        try:
            assert entered.wait(5)
            began = time.monotonic()
            registration.stop()
            assert time.monotonic() - began < 2.0, "stop() waited for the check's 30 s timeout"
            assert not any(t.name == "fyerreg-health-slow" for t in threading.enumerate())
        finally:
            release.set()
