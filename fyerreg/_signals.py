"""Running a callback on SIGTERM/SIGINT before the process's previous handling of the signal."""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import Any, Callable, Dict, List, Optional, Sequence

logger = logging.getLogger("fyerreg.signals")

TERMINATION_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install(
    callback: Callable[[int], None],
    signals: Sequence[int] = TERMINATION_SIGNALS,
    *,
    chain: bool = True,
) -> Callable[[], None]:
    """Call ``callback(signum)`` on each of ``signals``; return a function restoring the old handlers.

    With ``chain`` the signal is then handed to the handler that was installed before
    (the default action terminates the process, Python's SIGINT handler raises
    KeyboardInterrupt). A signal arriving while ``callback`` runs is ignored: the first
    one's effect follows. Signal handlers can only be set from the main thread:
    elsewhere this installs nothing and logs a warning.
    """
    if threading.current_thread() is not threading.main_thread():
        logger.warning("signal handlers not installed: not called from the main thread")
        return lambda: None
    previous: Dict[int, Any] = {}

    def restore() -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers; the handler left in place passes signals on
        for signum, old in previous.items():
            if signal.getsignal(signum) is handler:
                signal.signal(signum, old)

    running: List[int] = []

    def handler(signum: int, frame: Optional[FrameType]) -> None:
        if running:
            # A repeat (say SIGTERM to the process group, then from a parent passing it
            # on) must not cut the callback short: it runs in this very thread.
            logger.debug("signal %d ignored: still handling signal %d", signum, running[0])
            return
        running.append(signum)
        try:
            callback(signum)
        finally:
            running.clear()
            if chain:
                old = previous.get(signum, signal.SIG_DFL)
                restore()
                _deliver(signum, frame, old)

    for signum in signals:
        previous[signum] = signal.getsignal(signum)
        signal.signal(signum, handler)
    return restore


def install_deferred(
    start: Callable[[int, Callable[[], None]], None],
    signals: Sequence[int] = TERMINATION_SIGNALS,
) -> Callable[[], None]:
    """Call ``start(signum, resume)`` on the first of ``signals``; its previous handling follows ``resume()``.

    For work that must not block the thread the signal interrupts (an event loop that
    keeps serving meanwhile): ``start`` hands the work to another thread and returns;
    that thread calls ``resume()`` when done, and the signal then takes the effect of the
    handler installed before, in the main thread. Signals arriving in between are
    ignored. Returns a function restoring the old handlers; from a thread other than the
    main thread this installs nothing and logs a warning.
    """
    if threading.current_thread() is not threading.main_thread():
        logger.warning("signal handlers not installed: not called from the main thread")
        return lambda: None
    previous: Dict[int, Any] = {}
    first: List[int] = []  # the signal being handled
    resumed = threading.Event()
    main = threading.main_thread().ident

    def restore() -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers; the handler left in place passes signals on
        for signum, old in previous.items():
            if signal.getsignal(signum) is handler:
                signal.signal(signum, old)

    def resume() -> None:
        if first and not resumed.is_set():
            resumed.set()
            # Aimed at the main thread, so a blocking wait there (a selector) wakes up at once.
            if main is not None:
                signal.pthread_kill(main, first[0])
            else:
                os.kill(os.getpid(), first[0])

    def handler(signum: int, frame: Optional[FrameType]) -> None:
        if not first:
            first.append(signum)
            try:
                start(signum, resume)
            except BaseException:
                logger.exception("handling signal %d failed; taking its previous effect", signum)
                resume()
            return
        if not resumed.is_set():
            logger.debug("signal %d ignored: still handling signal %d", signum, first[0])
            return
        old = previous.get(first[0], signal.SIG_DFL)
        restore()
        _deliver(first[0], frame, old)

    for signum in signals:
        previous[signum] = signal.getsignal(signum)
        signal.signal(signum, handler)
    return restore


def _deliver(signum: int, frame: Optional[FrameType], old: Any) -> None:
    if callable(old):
        old(signum, frame)
    elif old == signal.SIG_DFL:
        os.kill(os.getpid(), signum)
