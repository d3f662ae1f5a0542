"""Waking a coroutine from another thread: the one bridge from fyerreg's threads to an event loop."""

from __future__ import annotations

import asyncio
from typing import Callable

__all__ = ["waker"]


def waker(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> Callable[[], None]:
    """A callable, safe from any thread, that resolves ``future`` on ``loop`` unless it is done
    (cancelled, say); it does nothing once the loop is closed."""

    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    def wake() -> None:
        try:
            loop.call_soon_threadsafe(resolve)
        except RuntimeError:
            pass  # the loop is closed: nobody waits any more

    return wake
