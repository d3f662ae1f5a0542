"""fyerreg.serving: one InstanceSpec and one lifecycle behind every way of serving."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import subprocess
import sys
from typing import Any

import pytest

from fyerreg import Endpoint, InvalidInstanceError, MemoryRegistry, Status
from fyerreg.api import ServerOptions
from fyerreg.contrib._integration import Settings
from fyerreg.contrib.gunicorn import GunicornRegistration
from fyerreg.contrib.wsgi import ServiceRegistration
from fyerreg.errors import RegistryClosedError
from fyerreg.serving import DEFAULT_DRAIN_DELAY, InstanceSpec, ServingRegistration
from fyerreg.serving.address import outbound_ip


def test_the_instance_is_advertised_at_the_port_bound() -> None:
    spec = InstanceSpec("orders", "v2", "127.0.0.1:0", instance_id="o-1", weight=7, metadata={"zone": "a"})
    inst = spec.instance(41234)
    assert (inst.service, inst.version, inst.id, inst.address, inst.weight, dict(inst.metadata)) == \
        ("orders", "v2", "o-1", "127.0.0.1:41234", 7, {"zone": "a"})
    assert spec.probe_address(41234) == ("127.0.0.1", 41234)


def test_every_interface_is_advertised_as_the_outbound_address_and_probed_on_loopback() -> None:
    spec = InstanceSpec("orders", address="0.0.0.0:8080")
    assert spec.instance().address == f"{outbound_ip()}:8080"
    assert spec.probe_address() == ("127.0.0.1", 8080)
    assert InstanceSpec("orders", address="*:8080").bind == ("", 8080)


def test_an_explicit_advertised_address_wins_and_takes_the_bound_port() -> None:
    spec = InstanceSpec("orders", address=":0", advertise_address="orders.internal")
    assert spec.instance(9000).address == "orders.internal:9000"


def test_a_port_still_unknown_is_refused_naming_the_address() -> None:
    with pytest.raises(ValueError, match="address ':0' needs the port"):
        InstanceSpec("orders", address=":0").instance()


@pytest.mark.parametrize("bad, field", [
    ({"address": "127.0.0.1:99999"}, "address"),
    ({"advertise_address": "0.0.0.0:80"}, "advertise_address"),
    ({"drain_delay": -1.0}, "drain_delay"),
])
def test_bad_input_raises_naming_the_field(bad: dict, field: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=field):
        InstanceSpec("orders", **bad)


def test_every_way_of_serving_drains_for_the_same_default() -> None:
    defaults = {
        "ServerOptions": ServerOptions().drain_delay,
        "ServiceRegistration": inspect.signature(ServiceRegistration).parameters["drain_delay"].default,
        # Not built here: a GunicornRegistration tells this process's apps that a master registers them.
        "GunicornRegistration": inspect.signature(GunicornRegistration).parameters["drain_delay"].default,
        "Settings": Settings.from_mapping({"SERVICE_NAME": "orders"}, prefix="", source="").spec.drain_delay,
    }
    assert defaults == dict.fromkeys(defaults, DEFAULT_DRAIN_DELAY)


def test_set_status_updates_the_registered_record_and_needs_a_registration() -> None:
    with MemoryRegistry() as registry:
        registration = ServingRegistration(registry, InstanceSpec("orders", address="127.0.0.1:8080",
                                                                  drain_delay=0.0),
                                           wait_ready=False, deregister_at_exit=False)
        with pytest.raises(RegistryClosedError):
            registration.set_status(Status.DISABLED)
        with registration:
            registration.set_status(Status.DISABLED)
            [listed] = registry.list_services("orders", "1.0.0")
            assert listed.status == Status.DISABLED and registration.instance.status == Status.DISABLED
        assert registry.list_services("orders", "1.0.0") == []


def test_the_integrations_and_the_sidecar_do_not_load_the_api_package() -> None:
    code = ("import sys, fyerreg.contrib.wsgi, fyerreg.contrib.gunicorn, fyerreg.contrib._registrar, "
            "fyerreg.cli._sidecar; print(sorted(m for m in sys.modules if m.startswith('fyerreg.api')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_spec_without_an_id_yields_one_instance_however_often_asked() -> None:
    spec = InstanceSpec("orders", address="127.0.0.1:0")
    assert spec.instance(1).id == spec.instance(2).id == spec.replace(address="127.0.0.1:3").instance().id
    assert InstanceSpec("orders", address="127.0.0.1:0").instance_id != spec.instance_id


def test_a_server_logs_and_registers_one_instance(caplog: pytest.LogCaptureFixture) -> None:
    from fyerreg import Server

    caplog.set_level(logging.INFO, logger="fyerreg")
    with MemoryRegistry() as registry:
        server = Server(ServerOptions(address="127.0.0.1:0", enable_registry=True, registry=registry,
                                      service_name="orders", drain_delay=0))
        with server:
            [listed] = registry.list_services("orders", "1.0.0")
            assert server.instance is not None and server.instance.id == listed.id
    ids = {getattr(r, "instance_id", None) for r in caplog.records if getattr(r, "service", None) == "orders"}
    assert ids == {listed.id}


def test_endpoints_take_the_advertised_host_unless_they_name_one():
    spec = InstanceSpec("svc", address="0.0.0.0:0", advertise_address="10.1.2.3",
                        endpoints={"grpc": ":50051", "admin": "0.0.0.0:9000",
                                   "https": Endpoint("lb.example:443", tls=True)})
    inst = spec.instance(8080)
    assert inst.address == "10.1.2.3:8080"
    assert dict(inst.endpoints) == {"grpc": Endpoint("10.1.2.3:50051"), "admin": Endpoint("10.1.2.3:9000"),
                                    "https": Endpoint("lb.example:443", tls=True)}
    inst.validate()


def test_a_spec_with_endpoints_survives_its_dict_form():
    spec = InstanceSpec("svc", address="127.0.0.1:1", endpoints={"grpc": Endpoint(":50051", tls=True)})
    assert InstanceSpec(**dataclasses.asdict(spec)) == spec


@pytest.mark.parametrize("endpoints, error", [
    ({"grpc": ":0"}, ValueError), ({"grpc": "nohostport"}, ValueError), ({"grpc": 1}, TypeError),
    (["grpc"], TypeError),
])
def test_bad_endpoints_fail_at_construction(endpoints: Any, error: type):
    with pytest.raises(error, match="endpoints"):
        InstanceSpec("svc", endpoints=endpoints)


def test_a_bad_endpoint_name_is_reported_by_validate():
    with pytest.raises(InvalidInstanceError) as err:
        InstanceSpec("svc", endpoints={"gRPC": ":1"}).validate()
    assert err.value.field == "endpoints"
