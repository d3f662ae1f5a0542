"""``runserver``'s autoreloader: SIGTERM to its watching parent reaches the serving child.

Django's autoreloader runs the server in a child process and, on SIGTERM, exits the
parent by killing that child outright (SIGKILL), so the child never deregisters and its
record stays for the whole lease. With ``HANDLE_SIGNALS`` the parent instead passes
SIGTERM on to the child and waits for it: the child deregisters, then exits.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from types import FrameType
from typing import Any, Callable, Optional

logger = logging.getLogger("fyerreg.contrib.django")

_CHILD_EXIT_TIMEOUT = 15.0
"""Seconds the parent waits, after Ctrl-C, for the child to finish before killing it."""

_RESTART = 3
"""The exit status by which the child asks the parent to start it again (a changed file)."""


def pass_sigterm_to_child() -> None:
    """Make the autoreloader's parent hand SIGTERM to its serving child and wait for it to exit."""
    from django.utils import autoreload

    if not all(hasattr(autoreload, name) for name in
               ("restart_with_reloader", "get_child_arguments", "DJANGO_AUTORELOAD_ENV")):
        logger.warning("this Django's autoreloader is not the one fyerreg knows: SIGTERM to runserver's "
                       "parent kills the serving child before it deregisters (use --noreload)")
        return
    autoreload.restart_with_reloader = _restart_with_reloader


def _restart_with_reloader() -> int:
    # Django's own loop (run the child again while it exits with status 3), holding the
    # child process so that SIGTERM can be passed on to it.
    from django.utils import autoreload

    env = {**os.environ, autoreload.DJANGO_AUTORELOAD_ENV: "true"}
    args = autoreload.get_child_arguments()
    while True:
        child = subprocess.Popen(args, env=env, close_fds=False)
        previous: Any = signal.signal(signal.SIGTERM, _forwarder(child))
        try:
            code = child.wait()
        except KeyboardInterrupt:  # Ctrl-C reached the child as well: let it deregister
            _reap(child)
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
        if code != _RESTART:
            return code


def _forwarder(child: subprocess.Popen[bytes]) -> Callable[[int, Optional[FrameType]], None]:
    def forward(signum: int, frame: Optional[FrameType]) -> None:
        child.send_signal(signum)

    return forward


def _reap(child: subprocess.Popen[bytes]) -> None:
    try:
        child.wait(_CHILD_EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        logger.warning("runserver's child (pid %d) did not exit within %.0fs; killing it", child.pid,
                       _CHILD_EXIT_TIMEOUT)
        child.kill()
        child.wait()
