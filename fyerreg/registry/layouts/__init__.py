"""Key layouts: how a registry's records sit in etcd, so fyerreg can share an etcd with registries
of other families: :class:`FyerRpcLayout` (Go fyer-rpc's, the default), :class:`EtcdNamingLayout`
(etcd's gRPC naming), :class:`KratosLayout` (Kratos' etcd registry), :class:`GoZeroLayout`
(go-zero's ``core/discov``); :func:`layout_named` builds one by the name the CLI's ``--layout`` takes."""

from __future__ import annotations

from typing import Callable, Dict

from .base import NO_VERSION, Layout
from .etcd_naming import EtcdNamingLayout
from .fyerrpc import FyerRpcLayout
from .gozero import GoZeroLayout
from .kratos import KratosLayout

__all__ = ["Layout", "FyerRpcLayout", "EtcdNamingLayout", "GoZeroLayout", "KratosLayout", "layout_named", "LAYOUTS",
           "NO_VERSION"]

LAYOUTS: Dict[str, Callable[[str], Layout]] = {
    FyerRpcLayout.name: FyerRpcLayout,
    EtcdNamingLayout.name: lambda namespace: EtcdNamingLayout(),  # targets at the top of the keyspace
    KratosLayout.name: KratosLayout.for_namespace,
    GoZeroLayout.name: lambda namespace: GoZeroLayout(),
}
"""Each layout's name and a factory taking the namespace (which layouts without one ignore)."""


def layout_named(name: str, namespace: str = "fyerrpc") -> Layout:
    """The layout called ``name`` (see :data:`LAYOUTS`); ValueError naming the known ones otherwise."""
    try:
        factory = LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown layout {name!r}; known: {', '.join(sorted(LAYOUTS))}") from None
    return factory(namespace)
