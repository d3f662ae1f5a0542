"""etcd's own gRPC naming layout (``go.etcd.io/etcd/client/v3/naming/endpoints``, read by its
``resolver`` when gRPC-Go dials ``etcd:///<target>``): the key ``<target>/<key>`` holds the JSON
``{"Op":0,"Addr":"host:port","Metadata":...}``, bound to a lease.

A fyerreg service is a target: ``root + service`` (``root`` is what targets live under, ``""``
for the top of the keyspace, ``"foo/bar/"`` for ``foo/bar/my-service``), and an instance's id
is the key's part after ``<target>/`` (Go's users mostly put the address there). ``Addr`` is
the instance's address, the only field gRPC-Go reads. ``Metadata`` carries the rest:

* a JSON object's string values are the instance's metadata; its other values (numbers,
  lists, objects, null) read as their compact JSON text; a Metadata that is no object
  reads as ``{"metadata": <the string, or the JSON text>}``; null as no metadata;
* ``version``, ``weight``, ``status``, ``updated_at`` and ``endpoints`` are fyerreg's own
  fields: written there when not their default (``version`` unless :data:`NO_VERSION`), and
  read back when valid for the field; a value that is not stays in the metadata as it is.
  Those names are therefore the instance's fields, not free metadata, in this layout.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Optional, Tuple

from ...errors import InvalidInstanceError
from ...naming import (
    DEFAULT_WEIGHT,
    MAX_RECORD_BYTES,
    MAX_WEIGHT,
    Endpoint,
    Instance,
    Status,
    _check_endpoints,
    _check_segment,
    _decode_endpoints,
)
from .base import NO_VERSION, Layout

__all__ = ["EtcdNamingLayout", "ADD"]

ADD = 0
"""``Op`` of the records Go's endpoints manager writes (``endpoints.Add``); a delete removes the key."""

_FIELDS = ("Op", "Addr", "Metadata")


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _as_int(value: Any, low: int, high: int) -> Optional[int]:
    """``value`` (a JSON integer or its decimal text) when it is an integer in [low, high]."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    return None


def _as_status(value: Any) -> Optional[Status]:
    code = _as_int(value, 0, 255)
    return None if code is None else Status(code)


def _as_version(value: Any) -> Optional[str]:
    try:
        _check_segment("version", value)
    except InvalidInstanceError:
        return None
    return str(value)


def _as_endpoints(value: Any) -> Optional[Dict[str, Endpoint]]:
    try:
        data = json.loads(value) if isinstance(value, str) else value
        endpoints = _decode_endpoints(data)
        _check_endpoints(endpoints)
    except (ValueError, RecursionError, InvalidInstanceError):
        return None
    return endpoints or None


def _go_fields(data: Mapping[str, Any]) -> Dict[str, Any]:
    """The fields of ``internal.Update`` as Go's ``json.Unmarshal`` fills them: a key matches a
    field whatever its case, the last match wins, other keys are ignored."""
    by_case = {field.lower(): field for field in _FIELDS}
    fields: Dict[str, Any] = {}
    for name, value in data.items():
        field = by_case.get(name.lower())
        if field is not None:
            fields[field] = value
    return fields


class EtcdNamingLayout(Layout):
    """etcd's gRPC naming: ``<root><service>/<id>`` holding ``{"Op":0,"Addr":...,"Metadata":...}``.

    No versions in the keys: an id names one instance whatever its version (the version is
    read from the record's ``Metadata``, :data:`NO_VERSION` when it has none). ``root`` is
    ``""`` (targets at the top of the keyspace) or a prefix ending in ``/``, added when
    missing; listing every service reads everything under it and takes each key's first
    segment after it for a target (a guess: targets cannot be told from keys).
    """

    name = "etcd-naming"
    versioned = False
    leased = True

    def __init__(self, root: str = "") -> None:
        if not isinstance(root, str):
            raise TypeError(f"root must be a str, got {type(root).__name__}")
        if root.startswith("/") and root.strip("/") == "":
            raise ValueError(f"root {root!r}: use '' for the whole keyspace")
        self._root = root if not root or root.endswith("/") else root + "/"

    @property
    def root(self) -> str:
        return self._root

    def target(self, service: str) -> str:
        """The gRPC target of ``service``: what a gRPC-Go client dials as ``etcd:///<target>``."""
        return f"{self._root}{service}"

    def instance_key(self, instance: Instance, lease_id: int = 0) -> str:
        return f"{self._root}{instance.service}/{instance.id}"

    def prefix(self, service: str, version: Optional[str]) -> str:
        return f"{self._root}{service}/"

    def split(self, key: str) -> Tuple[str, str]:
        """``(service, id)`` of a record key; InvalidInstanceError when the key is not one."""
        if not key.startswith(self._root):
            raise InvalidInstanceError(f"key {key!r} is outside {self._root!r}")
        service, sep, id_ = key[len(self._root):].partition("/")
        if not service or not sep or not id_:
            raise InvalidInstanceError(f"key {key!r} is not {self._root}<target>/<key>")
        if "/" in id_:
            raise InvalidInstanceError(
                f"key {key!r}: {id_!r} after target {self.target(service)!r} has a '/', which no instance id "
                "has (a record of a longer target?)")
        return service, id_

    def service_of(self, key: str) -> Optional[str]:
        if not key.startswith(self._root):
            return None
        service, sep, id_ = key[len(self._root):].partition("/")
        return service if service and sep and id_ else None

    def encode(self, instance: Instance) -> bytes:
        """Go's ``json.Marshal`` of ``internal.Update{Op: Add, Addr, Metadata}``: fields in Go's
        order, Metadata's keys sorted as Go sorts a map's, null when there is nothing to say."""
        meta: Dict[str, Any] = dict(instance.metadata)
        if instance.version != NO_VERSION:
            meta["version"] = instance.version
        if instance.weight != DEFAULT_WEIGHT:
            meta["weight"] = instance.weight
        if instance.status != Status.ENABLED:
            meta["status"] = int(instance.status)
        if instance.updated_at:
            meta["updated_at"] = instance.updated_at
        if instance.endpoints:
            meta["endpoints"] = {name: e.to_dict() for name, e in sorted(instance.endpoints.items())}
        record = {"Op": ADD, "Addr": instance.address, "Metadata": dict(sorted(meta.items())) or None}
        return _compact(record).encode("utf-8")

    def decode(self, key: str, value: bytes) -> Instance:
        """The instance at ``key``; InvalidInstanceError when the value is no endpoint record Go
        would read (not a JSON object, ``Op`` not an integer 0..255, ``Addr`` not a string) or its
        address is not ``host:port``."""
        service, id_ = self.split(key)
        if len(value) > MAX_RECORD_BYTES:
            raise InvalidInstanceError(f"record is {len(value)} bytes; at most {MAX_RECORD_BYTES} are allowed")
        try:
            data = json.loads(bytes(value).decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise InvalidInstanceError(f"record is not UTF-8 JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidInstanceError(f"record must be a JSON object, got {type(data).__name__}")
        fields = _go_fields(data)
        op = fields.get("Op")
        # Go reads every stored record as an Add whatever its Op, once it unmarshals into a uint8.
        if op is not None and (isinstance(op, str) or _as_int(op, 0, 255) is None):
            raise InvalidInstanceError(f"Op {op!r} is not an integer in 0..255", field="Op")
        address = fields.get("Addr")
        if address is None:
            raise InvalidInstanceError("record has no Addr", field="address")
        if not isinstance(address, str):
            raise InvalidInstanceError(f"Addr must be a string, got {type(address).__name__}", field="address")
        instance = Instance(id=id_, service=service, version=NO_VERSION, address=address)
        instance = instance.replace(**_from_metadata(fields.get("Metadata")))
        instance.validate()
        return instance

    def __repr__(self) -> str:
        return f"EtcdNamingLayout(root={self._root!r})"


def _from_metadata(raw: Any) -> Dict[str, Any]:
    """The Instance fields a record's Metadata gives (see the module's docstring)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        return {"metadata": {"metadata": raw if isinstance(raw, str) else _compact(raw)}}
    metadata = {name: value if isinstance(value, str) else _compact(value) for name, value in raw.items()}
    fields: Dict[str, Any] = {}
    readers = (
        ("version", _as_version),
        ("weight", lambda v: _as_int(v, 0, MAX_WEIGHT)),
        ("status", _as_status),
        ("updated_at", lambda v: _as_int(v, 0, 2**63 - 1)),
        ("endpoints", _as_endpoints),
    )
    for name, read in readers:
        if name in raw:
            value = read(raw[name])
            if value is not None:
                fields[name] = value
                del metadata[name]
    fields["metadata"] = metadata
    return fields
