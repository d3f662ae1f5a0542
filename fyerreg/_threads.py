"""Starting the library's threads: always named ``fyerreg-...`` and daemonic."""

from __future__ import annotations

import threading
from typing import Any, Callable

PREFIX = "fyerreg-"


def start_thread(name: str, target: Callable[..., Any], *args: Any) -> threading.Thread:
    """Start a daemon thread called ``fyerreg-<name>`` running ``target(*args)``."""
    thread = threading.Thread(target=target, args=args, name=PREFIX + name, daemon=True)
    thread.start()
    return thread


def join_thread(thread: threading.Thread, timeout: float) -> bool:
    """Join ``thread`` unless it is the calling thread; True when it has ended."""
    if thread is not threading.current_thread():
        thread.join(timeout)
    return not thread.is_alive()
