"""Service instances and their wire format (JSON compatible with the Go fyer-rpc registry)."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
import unicodedata
import uuid
from enum import IntEnum
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from .errors import InvalidInstanceError

__all__ = ["Status", "Instance", "Endpoint", "DEFAULT_WEIGHT", "MAX_WEIGHT", "MAX_RECORD_BYTES", "MAX_ENDPOINTS"]

DEFAULT_WEIGHT = 100
"""Weight of a record that carries none (the Go registry writes no weight)."""
MAX_WEIGHT = 10_000
MAX_RECORD_BYTES = 64 * 1024
"""Largest serialized record accepted, in bytes."""
MAX_SEGMENT_LENGTH = 256
"""Longest id, service or version accepted, in characters."""
MAX_ENDPOINTS = 16
"""Most named endpoints one instance may carry."""

_HOSTNAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
_ENDPOINT_NAME = re.compile(r"^[a-z0-9][a-z0-9_.+-]{0,31}$")


class Status(IntEnum):
    """Whether an instance takes traffic. Values are the Go registry's uint8 codes.

    An integer unknown to this version (written by a newer peer) is kept as a
    pseudo-member named ``UNKNOWN_<n>`` rather than rejected; it is not ENABLED.
    """

    DISABLED = 0
    ENABLED = 1

    @classmethod
    def _missing_(cls, value: object) -> Optional[Status]:
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255:
            member = int.__new__(cls, value)
            member._name_ = f"UNKNOWN_{value}"
            member._value_ = value
            return member
        return None


def _check_segment(field: str, value: object) -> None:
    if not isinstance(value, str):
        raise InvalidInstanceError(f"{field} must be a str, got {type(value).__name__}", field=field)
    if not value:
        raise InvalidInstanceError(f"{field} must not be empty", field=field)
    if len(value) > MAX_SEGMENT_LENGTH:
        raise InvalidInstanceError(
            f"{field} is {len(value)} characters long; at most {MAX_SEGMENT_LENGTH} are allowed",
            field=field,
        )
    if value in (".", ".."):
        raise InvalidInstanceError(f"{field} must not be {value!r}", field=field)
    for ch in value:
        if ch == "/" or ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            raise InvalidInstanceError(
                f"{field} {value!r} contains {ch!r}: '/', whitespace and control or "
                "invisible characters are not allowed (it is a key segment)",
                field=field,
            )


def _check_address(value: object, field: str = "address") -> None:
    if not isinstance(value, str):
        raise InvalidInstanceError(f"{field} must be a str, got {type(value).__name__}", field=field)
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise InvalidInstanceError(f"{field} {value!r} is not host:port", field=field)
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        raise InvalidInstanceError(f"{field} {value!r} has no port in 1..65535", field=field)
    if host.startswith("["):
        if not host.endswith("]"):
            raise InvalidInstanceError(f"{field} {value!r} has an unterminated IPv6 bracket", field=field)
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise InvalidInstanceError(f"{field} {value!r} has an invalid IPv6 host", field=field) from None
        return
    if ":" in host:
        raise InvalidInstanceError(
            f"{field} {value!r}: write an IPv6 host in brackets, as [::1]:8080", field=field
        )
    if len(host) > 253 or not host.isascii() or not _HOSTNAME.match(host):
        raise InvalidInstanceError(f"{field} {value!r} has an invalid host", field=field)


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One more place an instance listens, for one protocol: ``host:port``, and whether it speaks TLS."""

    address: str
    tls: bool = False

    def to_dict(self) -> Dict[str, Any]:
        """The wire form: ``{"address": ..., "tls": ...}``."""
        return {"address": self.address, "tls": self.tls}


EndpointsSpec = Mapping[str, Union[str, Endpoint]]


def _endpoints(value: object) -> object:
    """``endpoints`` as given to an Instance, with str values read as plain (non-TLS) endpoints."""
    if isinstance(value, MappingProxyType) and all(isinstance(e, Endpoint) for e in value.values()):
        return value
    if not isinstance(value, Mapping):
        return value  # validate() reports it
    return MappingProxyType({k: Endpoint(e) if isinstance(e, str) else e for k, e in value.items()})


def _check_endpoints(endpoints: object) -> None:
    if not isinstance(endpoints, Mapping):
        raise InvalidInstanceError("endpoints must be a mapping of names to Endpoint", field="endpoints")
    if len(endpoints) > MAX_ENDPOINTS:
        raise InvalidInstanceError(f"{len(endpoints)} endpoints; at most {MAX_ENDPOINTS} are allowed",
                                   field="endpoints")
    for name, endpoint in endpoints.items():
        if not isinstance(name, str) or not _ENDPOINT_NAME.match(name):
            raise InvalidInstanceError(
                f"endpoint name {name!r} must be 1-32 lower-case letters, digits or '_.+-' (as 'http', 'grpc')",
                field="endpoints")
        field = f"endpoints.{name}"
        if not isinstance(endpoint, Endpoint):
            raise InvalidInstanceError(f"{field} must be an Endpoint or a host:port str", field=field)
        _check_address(endpoint.address, f"{field}.address")
        if not isinstance(endpoint.tls, bool):
            raise InvalidInstanceError(f"{field}.tls must be a bool", field=f"{field}.tls")


def _decode_endpoints(data: object) -> Dict[str, Endpoint]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInstanceError("endpoints must be a JSON object", field="endpoints")
    decoded = {}
    for name, entry in data.items():
        field = f"endpoints.{name}"
        if not isinstance(entry, dict) or "address" not in entry:
            raise InvalidInstanceError(f"{field} must be a JSON object with an address", field=field)
        tls = entry.get("tls", False)
        decoded[name] = Endpoint(entry["address"], False if tls is None else tls)
    return decoded


@dataclasses.dataclass(frozen=True, eq=True)
class Instance:
    """One running copy of a service, as stored in the registry.

    Instances are immutable: use :meth:`replace` to derive a changed copy
    (for example ``inst.replace(status=Status.DISABLED)`` before ``update_service``).
    ``updated_at`` is the Unix time in milliseconds of the last write (0 when unknown,
    as in records written by Go). ``endpoints`` names more places the instance listens,
    one per protocol (``{"grpc": Endpoint("10.0.0.5:50051")}``); ``address`` stays the
    primary one, the only one Go fyer-rpc reads. See :meth:`endpoint`.
    """

    id: str
    service: str
    version: str
    address: str
    status: Status = Status.ENABLED
    weight: int = DEFAULT_WEIGHT
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)
    updated_at: int = 0
    endpoints: Mapping[str, Endpoint] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        # Frozen and shared between snapshots and threads, so the metadata must not change either.
        if not isinstance(self.metadata, MappingProxyType):
            meta = dict(self.metadata) if isinstance(self.metadata, Mapping) else self.metadata
            object.__setattr__(self, "metadata", MappingProxyType(meta) if isinstance(meta, dict) else meta)
        if isinstance(self.status, int) and not isinstance(self.status, (Status, bool)):
            try:
                object.__setattr__(self, "status", Status(self.status))
            except ValueError:
                pass  # validate() reports it
        object.__setattr__(self, "endpoints", _endpoints(self.endpoints))

    @classmethod
    def new(
        cls,
        service: str,
        version: str,
        address: str,
        *,
        id: Optional[str] = None,
        status: Status = Status.ENABLED,
        weight: int = DEFAULT_WEIGHT,
        metadata: Optional[Mapping[str, str]] = None,
        endpoints: Optional[EndpointsSpec] = None,
    ) -> Instance:
        """Build an instance, generating a random id when none is given (``endpoints`` values:
        an :class:`Endpoint` or a ``host:port`` str)."""
        return cls(
            id=id if id is not None else uuid.uuid4().hex,
            service=service,
            version=version,
            address=address,
            status=status,
            weight=weight,
            metadata=dict(metadata or {}),
            endpoints=dict(endpoints or {}),  # type: ignore[arg-type]
        )

    @property
    def key(self) -> Tuple[str, str, str]:
        """``(service, version, id)``: what identifies an instance in a registry."""
        return (self.service, self.version, self.id)

    @property
    def enabled(self) -> bool:
        """True when the instance takes traffic."""
        return self.status == Status.ENABLED

    def endpoint(self, name: str) -> Optional[Endpoint]:
        """Where to reach this instance for protocol ``name`` (``"http"``, ``"grpc"``...).

        The named endpoint; an instance that names none (records from Go and from servers
        with one port) answers every protocol at ``address``; one that names others but not
        ``name`` does not speak it (None).
        """
        found = self.endpoints.get(name)
        if found is not None:
            return found
        return None if self.endpoints else Endpoint(self.address)

    def replace(self, **changes: Any) -> Instance:
        """Return a copy with the given fields changed."""
        return dataclasses.replace(self, **changes)

    def __hash__(self) -> int:
        return hash((self.id, self.service, self.version, self.address, int(self.status), self.weight,
                     tuple(sorted(self.metadata.items())), self.updated_at, tuple(sorted(self.endpoints.items()))))

    def __repr__(self) -> str:
        return (f"Instance(id={self.id!r}, service={self.service!r}, version={self.version!r}, "
                f"address={self.address!r}, status={self.status!r}, weight={self.weight!r}, "
                f"metadata={dict(self.metadata)!r}, updated_at={self.updated_at!r}"
                + (f", endpoints={dict(self.endpoints)!r})" if self.endpoints else ")"))

    def validate(self) -> None:
        """Raise :class:`InvalidInstanceError` naming the first invalid field."""
        _check_segment("id", self.id)
        _check_segment("service", self.service)
        _check_segment("version", self.version)
        _check_address(self.address)
        if not isinstance(self.status, Status):
            raise InvalidInstanceError(f"status {self.status!r} is not a Status (0..255)", field="status")
        if isinstance(self.weight, bool) or not isinstance(self.weight, int):
            raise InvalidInstanceError(f"weight must be an int, got {type(self.weight).__name__}", field="weight")
        if not 0 <= self.weight <= MAX_WEIGHT:
            raise InvalidInstanceError(f"weight {self.weight} is outside 0..{MAX_WEIGHT}", field="weight")
        if not isinstance(self.metadata, Mapping):
            raise InvalidInstanceError("metadata must be a mapping of str to str", field="metadata")
        for k, v in self.metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise InvalidInstanceError(
                    f"metadata must map str to str; {k!r}: {v!r} does not", field="metadata"
                )
        if isinstance(self.updated_at, bool) or not isinstance(self.updated_at, int):
            raise InvalidInstanceError("updated_at must be an int", field="updated_at")
        _check_endpoints(self.endpoints)
        try:
            size = len(self._encode())
        except UnicodeEncodeError:
            raise InvalidInstanceError(
                "metadata contains a lone surrogate character, which cannot be encoded as UTF-8",
                field="metadata",
            ) from None
        if size > MAX_RECORD_BYTES:
            raise InvalidInstanceError(
                f"serialized record is {size} bytes; at most {MAX_RECORD_BYTES} are allowed "
                "(metadata is too large)",
                field="metadata",
            )

    def to_dict(self) -> Dict[str, Any]:
        """The wire record as a dict (Go field names, plus ``weight`` and, when any, ``endpoints``)."""
        record = {
            "id": self.id,
            "service": self.service,
            "version": self.version,
            "address": self.address,
            "metadata": dict(self.metadata),
            "status": int(self.status),
            "updated_at": self.updated_at,
            "weight": self.weight,
        }
        if self.endpoints:
            record["endpoints"] = {name: e.to_dict() for name, e in self.endpoints.items()}
        return record

    def _encode(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def to_json(self) -> str:
        """Serialize to the wire JSON shared with Go fyer-rpc."""
        return self._encode().decode("utf-8")

    @classmethod
    def from_dict(cls, data: object) -> Instance:
        """Build and validate an instance from a decoded wire record."""
        if not isinstance(data, dict):
            raise InvalidInstanceError(f"record must be a JSON object, got {type(data).__name__}")
        for name in ("id", "service", "version", "address"):
            if name not in data:
                raise InvalidInstanceError(f"record has no {name!r}", field=name)
        status = data.get("status", int(Status.ENABLED))
        if isinstance(status, bool) or not isinstance(status, int) or not 0 <= status <= 255:
            raise InvalidInstanceError(f"status {status!r} is not an integer in 0..255", field="status")
        metadata = data.get("metadata")
        if metadata is None:
            metadata = {}  # Go writes a nil map as null
        if not isinstance(metadata, dict):
            raise InvalidInstanceError("metadata must be a JSON object", field="metadata")
        updated_at = data.get("updated_at", 0)
        if updated_at is None:
            updated_at = 0
        inst = cls(
            id=data["id"],
            service=data["service"],
            version=data["version"],
            address=data["address"],
            status=Status(status),
            weight=data.get("weight", DEFAULT_WEIGHT),
            metadata=metadata,
            updated_at=updated_at,
            endpoints=_decode_endpoints(data.get("endpoints")),
        )
        inst.validate()
        return inst

    @classmethod
    def from_json(cls, raw: Union[str, bytes, bytearray]) -> Instance:
        """Parse and validate a wire record; anything malformed raises :class:`InvalidInstanceError`."""
        if isinstance(raw, (bytes, bytearray)):
            if len(raw) > MAX_RECORD_BYTES:
                raise InvalidInstanceError(f"record is {len(raw)} bytes; at most {MAX_RECORD_BYTES} are allowed")
            try:
                text = bytes(raw).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInstanceError(f"record is not UTF-8: {exc}") from None
        elif isinstance(raw, str):
            text = raw
            if len(text) > MAX_RECORD_BYTES:
                raise InvalidInstanceError(f"record is {len(text)} characters; at most {MAX_RECORD_BYTES} are allowed")
        else:
            raise InvalidInstanceError(f"record must be str or bytes, got {type(raw).__name__}")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise InvalidInstanceError(f"record is not valid JSON: {exc}") from None
        return cls.from_dict(data)
