"""``InstanceSpec``: "this process serves service S at address A", before the port is bound."""

from __future__ import annotations

import dataclasses
import os
import uuid
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from ..config import advertise_address_from_env, node_ip_from_env
from ..naming import DEFAULT_WEIGHT, Endpoint, Instance
from .address import advertise_address, is_unspecified, join_host_port, split_host_port

__all__ = ["InstanceSpec", "DEFAULT_DRAIN_DELAY"]

DEFAULT_DRAIN_DELAY = 0.5
"""Seconds a stopping server keeps serving after deregistering, so clients see the removal first."""

@dataclasses.dataclass(frozen=True)
class InstanceSpec:
    """What one serving process registers: everything of its ``Instance`` but the bound port.

    ``address`` is where the process binds (``":8000"``, ``"0.0.0.0:8000"``; port 0: any
    free port, known once bound); ``advertise_address`` is what others dial (its port
    defaults to the bound one). Without it, ``FYERREG_ADVERTISE_ADDRESS`` is taken (when
    set); else an unspecified bind host is advertised as ``POD_IP``, else ``HOST_IP``
    (when set), else the host's outbound IP, never ``0.0.0.0``. ``drain_delay`` is how long the process keeps
    serving after deregistering. ``endpoints`` names the other ports the process serves,
    one per protocol (``{"grpc": ":50051"}``: a ``host:port`` str or an
    :class:`~fyerreg.naming.Endpoint`); an empty or unspecified host there means the
    advertised host. Without ``instance_id`` the spec draws a random one, so
    every :meth:`instance` it yields is the same instance. Malformed addresses and a negative ``drain_delay`` raise
    ValueError at construction (ConfigurationError, naming the variable, for one from the
    environment); :meth:`validate` checks the instance's own fields.
    """

    service: str
    version: str = "1.0.0"
    address: str = ":8000"
    advertise_address: Optional[str] = None
    instance_id: Optional[str] = None
    weight: int = DEFAULT_WEIGHT
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)
    drain_delay: float = DEFAULT_DRAIN_DELAY
    endpoints: Mapping[str, Union[str, Endpoint]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        split_host_port(self.address, field="address")
        if self.advertise_address is None:
            object.__setattr__(self, "advertise_address", advertise_address_from_env(os.environ))
        if self.advertise_address is not None:
            advertise_address("127.0.0.1", 1, self.advertise_address)
        elif is_unspecified(self.bind[0]):
            node_ip_from_env(os.environ)  # a malformed POD_IP/HOST_IP fails here, not when registering
        if not self.drain_delay >= 0:
            raise ValueError(f"drain_delay must be >= 0, got {self.drain_delay!r}")
        object.__setattr__(self, "metadata", dict(self.metadata or {}))
        object.__setattr__(self, "endpoints", _endpoints(self.endpoints))
        if self.instance_id is None:
            object.__setattr__(self, "instance_id", uuid.uuid4().hex)

    @property
    def bind(self) -> Tuple[str, int]:
        """The host and port to bind (``""`` for every interface; port 0 for any free port)."""
        host, port = split_host_port(self.address, field="address")
        return ("" if host == "*" else host), port

    def port(self, bound_port: Optional[int] = None) -> int:
        """The port served: ``bound_port`` when given, else the one in ``address`` (which must not be 0)."""
        if bound_port is not None:
            return bound_port
        port = self.bind[1]
        if port == 0:
            raise ValueError(f"address {self.address!r} needs the port the app listens on")
        return port

    def instance(self, bound_port: Optional[int] = None) -> Instance:
        """The ``Instance`` others dial, once the port is bound (``bound_port`` when ``address`` had port 0)."""
        host = self.bind[0]
        advertise = self.advertise_address
        if advertise is None and is_unspecified(host):
            advertise = node_ip_from_env(os.environ)
        address = advertise_address(host, self.port(bound_port), advertise)
        advertised_host = split_host_port(address, field="address")[0]
        endpoints = {}
        for name, endpoint in _endpoints(self.endpoints).items():
            ep_host, ep_port = split_host_port(endpoint.address, field=f"endpoints.{name}")
            if is_unspecified(ep_host):
                ep_host = advertised_host
            endpoints[name] = Endpoint(join_host_port(ep_host, ep_port), endpoint.tls)
        return Instance.new(self.service, self.version, address, id=self.instance_id, weight=self.weight,
                            metadata=self.metadata, endpoints=endpoints)

    def probe_address(self, bound_port: Optional[int] = None) -> Tuple[str, int]:
        """Where this process itself can connect to check that it serves (loopback for every interface)."""
        host = self.bind[0]
        loopback = "::1" if host == "::" else "127.0.0.1"
        return (loopback if is_unspecified(host) else host), self.port(bound_port)

    def validate(self) -> None:
        """Raise InvalidInstanceError (naming the Instance field) when the instance would be invalid."""
        Instance.new(self.service, self.version, "127.0.0.1:1", id=self.instance_id, weight=self.weight,
                     metadata=self.metadata,
                     endpoints={name: Endpoint("127.0.0.1:1", e.tls) for name, e in _endpoints(self.endpoints).items()}
                     ).validate()

    def replace(self, **changes: object) -> InstanceSpec:
        """A copy with ``changes`` applied (e.g. the address a server was bound to)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _endpoints(given: Any) -> Dict[str, Endpoint]:
    """``endpoints`` as Endpoint values whose bind addresses parse (a dict as ``dataclasses.asdict`` writes one too)."""
    if not isinstance(given, Mapping):
        raise TypeError(f"endpoints must be a mapping of names to host:port, got {type(given).__name__}")
    out: Dict[str, Endpoint] = {}
    for name, value in given.items():
        if isinstance(value, Mapping):
            value = Endpoint(**value)
        elif isinstance(value, str):
            value = Endpoint(value)
        elif not isinstance(value, Endpoint):
            raise TypeError(f"endpoints[{name!r}] must be a host:port str or an Endpoint, got {type(value).__name__}")
        if split_host_port(value.address, field=f"endpoints[{name!r}]")[1] == 0:
            raise ValueError(f"endpoints[{name!r}] {value.address!r} needs the port it is served on, not 0")
        out[name] = value
    return out
