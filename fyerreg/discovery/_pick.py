"""One pick: choosing an instance (by endpoint when asked) and reporting how the call went, sync or async."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import TYPE_CHECKING, Collection, Optional, Type

from ..errors import NoInstanceAvailableError
from ..naming import Instance

if TYPE_CHECKING:
    from ._view import ServiceView
    from .discovery import Discovery

__all__ = ["Pick", "select_on"]


def select_on(view: ServiceView, key: Optional[str], exclude: Collection[Instance],
              endpoint: Optional[str]) -> Instance:
    """An instance of ``view`` (avoiding ``exclude``) that serves ``endpoint`` when one is named."""
    inst = view.select(key, exclude)
    if endpoint is None or inst.endpoint(endpoint) is not None:
        return inst
    mute = [c for c in view.candidates() if c.endpoint(endpoint) is None]
    inst = view.select(key, [*exclude, *mute])
    if inst.endpoint(endpoint) is None:
        reason = f"none of the {len(mute)} instances that can be picked serves the {endpoint!r} endpoint"
        raise NoInstanceAvailableError(
            f"no instance of {view.service} version {view.version or '(any)'} available: {reason}",
            service=view.service, version=view.version, reason=reason)
    return inst


class Pick:
    """What :meth:`Discovery.pick` returns: ``with`` or ``async with`` it to get an instance."""

    __slots__ = ("_discovery", "_service", "_version", "_key", "_exclude", "_endpoint", "_view", "_instance",
                 "_start")

    def __init__(self, discovery: Discovery, service: str, version: Optional[str], key: Optional[str],
                 exclude: Collection[Instance] = (), endpoint: Optional[str] = None) -> None:
        self._discovery = discovery
        self._service = service
        self._version = version
        self._key = key
        self._exclude = exclude
        self._endpoint = endpoint
        self._view: Optional[ServiceView] = None
        self._instance: Optional[Instance] = None
        self._start = 0.0

    def __enter__(self) -> Instance:
        return self._begin(self._discovery._view(self._service, self._version))

    async def __aenter__(self) -> Instance:
        return self._begin(await self._discovery._aview(self._service, self._version))

    def _begin(self, view: ServiceView) -> Instance:
        inst = select_on(view, self._key, self._exclude, self._endpoint)
        view.begin(inst)
        self._view, self._instance = view, inst
        self._start = self._discovery._clock()
        return inst

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        view, inst = self._view, self._instance
        if view is None or inst is None:
            return
        self._view = self._instance = None
        d = self._discovery
        latency = max(d._clock() - self._start, 0.0)
        try:
            view.observe(inst, latency, exc is not None and d._failed(exc))
        finally:
            view.finish(inst)

    async def __aexit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        if isinstance(exc, asyncio.CancelledError):
            view, inst = self._view, self._instance
            self._view = self._instance = None
            if view is not None and inst is not None:
                view.finish(inst)  # a call given up says nothing about the instance
            return
        self.__exit__(exc_type, exc, tb)
