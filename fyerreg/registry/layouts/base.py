"""``Layout``: how instances are laid out in etcd, keys and values, for one family of registries."""

from __future__ import annotations

import abc
from typing import ClassVar, Optional

from ...naming import Instance

__all__ = ["Layout", "NO_VERSION"]

NO_VERSION = "-"
"""The version of an instance read from a layout whose records carry none."""


class Layout(abc.ABC):
    """Where the record of an instance lives in etcd and what it holds.

    A layout maps an instance to its key (:meth:`instance_key`) and its value
    (:meth:`encode`), a service (and version) to the prefix holding its records
    (:meth:`prefix`), and a key and value read back to an :class:`Instance`
    (:meth:`decode`, raising :class:`~fyerreg.errors.InvalidInstanceError` for anything
    that is not a valid record of it: the registry skips such keys with one warning).
    Registries, subscriptions, discovery and the CLI work unchanged on any layout.

    ``versioned``: the keys separate versions, so ``prefix(service, version)`` holds that
    version only (else it holds every version and records are told apart by their value).
    ``leased``: records are bound to leases (a dead process's records expire).
    ``lease_in_key``: the key names the lease it is bound to (:meth:`instance_key` is then
    given the lease id, and a new lease means a new key).
    """

    name: ClassVar[str]
    """What the CLI's ``--layout`` calls it."""
    versioned: ClassVar[bool] = True
    leased: ClassVar[bool] = True
    lease_in_key: ClassVar[bool] = False

    @property
    @abc.abstractmethod
    def root(self) -> str:
        """The prefix every record of this layout is under (what listing every service reads)."""

    @abc.abstractmethod
    def instance_key(self, instance: Instance, lease_id: int = 0) -> str:
        """The key of ``instance``'s record (bound to ``lease_id`` where the key names it)."""

    @abc.abstractmethod
    def prefix(self, service: str, version: Optional[str]) -> str:
        """The prefix holding every record of ``service`` (of ``version`` where keys have versions)."""

    @abc.abstractmethod
    def service_of(self, key: str) -> Optional[str]:
        """The service whose record ``key`` (under :attr:`root`) would be; None when it is no record key."""

    @abc.abstractmethod
    def encode(self, instance: Instance) -> bytes:
        """The value stored for ``instance``."""

    @abc.abstractmethod
    def decode(self, key: str, value: bytes) -> Instance:
        """The instance stored at ``key``; InvalidInstanceError when it is not a valid record of this layout."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} under {self.root!r}>"
