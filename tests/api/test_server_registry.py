"""api.Server with a registry: registers only once it answers, deregisters before it stops answering."""

from __future__ import annotations

import socket
import threading
from typing import List, Optional

import pytest

from fyerreg import Instance, MemoryRegistry, RegistryUnavailableError
from fyerreg.api import Server, ServerOptions
from fyerreg.serving.address import split_host_port

from .services import GreeterService


def answers(address: str) -> bool:
    try:
        socket.create_connection(split_host_port(address, field="address"), timeout=2).close()
        return True
    except OSError:
        return False


class ProbingRegistry(MemoryRegistry):
    """Records whether the instance's address answered at the moment it was (de)registered."""

    def __init__(self) -> None:
        super().__init__()
        self.answered_at_register: List[bool] = []
        self.answered_at_deregister: List[bool] = []

    def _do_register(self, instance: Instance, *, timeout: Optional[float], exclusive: bool) -> None:
        self.answered_at_register.append(answers(instance.address))
        super()._do_register(instance, timeout=timeout, exclusive=exclusive)

    def _do_deregister(self, instance: Instance, *, timeout: Optional[float]) -> None:
        self.answered_at_deregister.append(answers(instance.address))
        super()._do_deregister(instance, timeout=timeout)


def options(registry: MemoryRegistry, **kw: object) -> ServerOptions:
    base = dict(address="127.0.0.1:0", enable_registry=True, registry=registry, service_name="greeter-service",
                service_version="1.0.0", metadata={"region": "cn-shanghai"}, weight=7, drain_delay=0.05)
    base.update(kw)
    return ServerOptions(**base)  # type: ignore[arg-type]


def test_start_registers_only_once_the_port_answers_and_stop_deregisters_while_it_still_does() -> None:
    with ProbingRegistry() as registry:
        server = Server(options(registry))
        server.register(GreeterService())
        server.start()
        [inst] = registry.list_services("greeter-service", "1.0.0")
        assert server.instance is not None and inst.id == server.instance.id
        assert (inst.weight, dict(inst.metadata), inst.address) == (7, {"region": "cn-shanghai"}, server.address)
        server.stop(grace=5)
        assert registry.answered_at_register == [True]
        assert registry.answered_at_deregister == [True]
        assert registry.list_services("greeter-service", "1.0.0") == []
        assert not answers(inst.address)


def test_a_subscriber_sees_the_removal_before_the_server_stops_answering() -> None:
    with MemoryRegistry() as registry:
        server = Server(options(registry, drain_delay=0.2))
        server.register(GreeterService())
        server.start()
        assert server.instance is not None
        address = server.instance.address
        with registry.subscribe("greeter-service", "1.0.0") as sub:
            assert [i.address for i in sub.get(timeout=5)] == [address]
            stopper = threading.Thread(target=server.stop, kwargs={"grace": 5})
            stopper.start()
            assert sub.get(timeout=5) == []
            port_answered_after_removal = answers(address)
            stopper.join(10)
        assert port_answered_after_removal
        assert not answers(address)


def test_registration_failure_closes_the_server_and_raises() -> None:
    with MemoryRegistry() as registry, registry.unavailable():
        server = Server(options(registry))
        with pytest.raises(RegistryUnavailableError):
            server.start()
        assert server.address is None
        assert not [t for t in threading.enumerate() if t.name.startswith("fyerreg-http")]


def test_options_validate_service_fields_naming_them() -> None:
    with MemoryRegistry() as registry:
        with pytest.raises(ValueError, match="service_name"):
            options(registry, service_name="")
        with pytest.raises(ValueError, match="weight"):
            options(registry, weight=-1)
        with pytest.raises(ValueError, match="version"):
            options(registry, service_version="a/b")


def test_set_status_disabled_takes_the_server_out_of_rotation() -> None:
    from fyerreg import Discovery, NoInstanceAvailableError, Status

    with MemoryRegistry() as registry, Discovery(registry) as discovery:
        server = Server(options(registry))
        server.register(GreeterService())
        server.start()
        try:
            assert discovery.select("greeter-service", "1.0.0").address == server.address
            server.set_status(Status.DISABLED)
            [record] = registry.list_services("greeter-service", "1.0.0")
            assert record.status == Status.DISABLED
            with pytest.raises(NoInstanceAvailableError, match="disabled"):
                discovery.select("greeter-service", "1.0.0")
            server.set_status(Status.ENABLED)
            assert discovery.select("greeter-service", "1.0.0").address == server.address
        finally:
            server.stop(grace=2)
