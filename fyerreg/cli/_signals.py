"""SIGTERM handled like Ctrl-C, for the commands that run until stopped."""

from __future__ import annotations

import contextlib
import signal
import threading
from types import FrameType
from typing import Any, Iterator, Optional

__all__ = ["interrupt_on_sigterm", "ignore_interrupts"]


def _raise_interrupt(signum: int, frame: Optional[FrameType]) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """Inside the block, SIGTERM raises KeyboardInterrupt in the main thread, as SIGINT does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: Any = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def ignore_interrupts() -> Iterator[None]:
    """Inside the block, SIGINT and SIGTERM are ignored (so cleanup is not cut short)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved: Any = [(sig, signal.signal(sig, signal.SIG_IGN)) for sig in (signal.SIGINT, signal.SIGTERM)]
    try:
        yield
    finally:
        for sig, handler in saved:
            signal.signal(sig, handler)
