"""go-zero's layout (``core/discov``): ``<key>/<lease id>`` holding the bare ``host:port``.

go-zero's publisher grants a lease, then puts its value at ``key + "/" + lease id`` (the lease id
in decimal) bound to that lease; its subscriber reads every key under ``key + "/"`` and uses only
the values. The service is go-zero's ``Key`` (``Etcd.Key`` of a zrpc server, e.g. ``user.rpc``).
"""

from __future__ import annotations

from typing import Optional, Tuple

from ...errors import InvalidInstanceError
from ...naming import Instance, _check_address, _check_segment
from .base import NO_VERSION, Layout

__all__ = ["GoZeroLayout"]


class GoZeroLayout(Layout):
    """Keys ``<root><service>/<lease id>``, values ``host:port``; no versions, leased, the lease in the key.

    ``root`` is what every go-zero key of the estate starts with (``""``: keys such as
    ``user.rpc/7587869391862349316``, go-zero's usual ones). Read back, an instance's id is
    the key's last segment (the lease id, or the ``ID`` a go-zero server was configured with),
    its version :data:`~fyerreg.registry.layouts.NO_VERSION`, its metadata empty; writing keeps
    only the address (go-zero's records have no room for the rest).
    """

    name = "go-zero"
    versioned = False
    leased = True
    lease_in_key = True

    def __init__(self, root: str = "") -> None:
        if root and not root.endswith("/"):
            raise ValueError(f"root {root!r} must be empty or end with '/'")
        self._root = root

    @property
    def root(self) -> str:
        return self._root

    def instance_key(self, instance: Instance, lease_id: int = 0) -> str:
        return f"{self._root}{instance.service}/{lease_id:d}"

    def prefix(self, service: str, version: Optional[str]) -> str:
        return f"{self._root}{service}/"

    def split(self, key: str) -> Tuple[str, str]:
        """``(service, id)`` of a record key; InvalidInstanceError when the key is not one."""
        if not key.startswith(self._root):
            raise InvalidInstanceError(f"key {key!r} is outside {self._root!r}")
        parts = key[len(self._root):].split("/")
        if len(parts) != 2:
            raise InvalidInstanceError(f"key {key!r} is not {self._root}<service>/<lease id>")
        try:
            _check_segment("service", parts[0])
            _check_segment("id", parts[1])
        except InvalidInstanceError as exc:
            raise InvalidInstanceError(f"key {key!r}: {exc}") from None
        return parts[0], parts[1]

    def service_of(self, key: str) -> Optional[str]:
        try:
            return self.split(key)[0]
        except InvalidInstanceError:
            return None

    def encode(self, instance: Instance) -> bytes:
        return instance.address.encode("utf-8")

    def decode(self, key: str, value: bytes) -> Instance:
        """The instance at ``key``; InvalidInstanceError when the key or the ``host:port`` value is malformed."""
        service, id_ = self.split(key)
        try:
            address = value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInstanceError(f"record at {key!r} is not UTF-8 text", field="address") from None
        _check_address(address)
        instance = Instance(id=id_, service=service, version=NO_VERSION, address=address)
        instance.validate()
        return instance

    def __repr__(self) -> str:
        return f"GoZeroLayout(root={self._root!r})"
