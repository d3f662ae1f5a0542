"""The probes of a gunicorn master's registration, as its workers see them.

The registration lives in the registrar process (``fyerreg.contrib._registrar``), not in
the workers that serve ``/healthz`` and ``/readyz``. The registrar answers the two probes
on a unix socket in a directory only this user can enter (one line in: ``healthz`` or
``readyz``; one JSON line out), computed from its live registration; each worker's
:class:`RegistrarProbes` asks it per probe request. So a worker answers what the
registration is right now (draining included, from the registrar's first step on
SIGTERM) without a call to etcd, and a registrar that is gone or hung makes both probes
fail within ``timeout``.

The directory is a :class:`ProbeDirectory`: the master holds a lock on a file in it for
as long as it (or a worker forked from it) lives, so a master that was killed leaves a
directory that the next one started by this user removes.
"""

from __future__ import annotations

import fcntl
import glob
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
from typing import Optional

from .._threads import join_thread, start_thread
from ..serving.probes import ProbeAnswer, ProbeSource

__all__ = ["ProbeDirectory", "ProbeRelay", "RegistrarProbes"]

logger = logging.getLogger("fyerreg.contrib.gunicorn")

_PROBES = ("healthz", "readyz")
_MAX_LINE = 64 * 1024
_PREFIX = "fyerreg-probes-"
_LOCK = "owner.lock"


class ProbeDirectory:
    """A directory only this user can enter, for the probes' socket, held while this process lives.

    Creating one first removes this user's directories whose holder is gone (no process
    holds the lock in them any more: a master killed before its ``on_exit``).
    """

    def __init__(self) -> None:
        remove_abandoned()
        self.path = tempfile.mkdtemp(prefix=_PREFIX)  # mode 0700
        self.socket_path = os.path.join(self.path, "probes.sock")
        pending = os.path.join(self.path, _LOCK + ".new")
        self._lock: Optional[int] = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        os.rename(pending, os.path.join(self.path, _LOCK))  # only ever seen under its name once held

    def remove(self) -> None:
        """Remove the directory and what is in it (idempotent)."""
        lock, self._lock = self._lock, None
        if lock is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            os.close(lock)


def remove_abandoned(directory: Optional[str] = None) -> int:
    """Remove this user's probe directories under ``directory`` (the temp dir) that no process holds."""
    removed = 0
    for path in glob.glob(os.path.join(directory or tempfile.gettempdir(), _PREFIX + "*")):
        try:
            if os.stat(path).st_uid != os.getuid():
                continue
            fd = os.open(os.path.join(path, _LOCK), os.O_RDONLY)
        except OSError:
            continue  # not ours, being made (no lock file yet) or gone already
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # held: its master lives
        finally:
            os.close(fd)
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    if removed:
        logger.info("removed %d probe director%s left by gunicorn masters that were killed", removed,
                    "y" if removed == 1 else "ies")
    return removed


class ProbeRelay:
    """Answers the probes of ``probes`` on the unix socket ``path`` (registrar side) until :meth:`close`."""

    def __init__(self, path: str, probes: ProbeSource, *, name: str) -> None:
        self.path = path
        self._probes = probes
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(path):
            os.unlink(path)  # left by a registrar that was killed
        self._sock.bind(path)
        self._sock.listen(64)
        self._closed = threading.Event()
        self._thread = start_thread(f"probes-{name}", self._serve)

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            with conn:
                try:
                    conn.settimeout(1.0)
                    with conn.makefile("rb") as lines:
                        which = lines.readline(100).decode("ascii", "replace").strip()
                    if which not in _PROBES:
                        continue
                    answer = self._probes.healthz() if which == "healthz" else self._probes.readyz()
                    conn.sendall(json.dumps(answer.to_dict()).encode() + b"\n")
                except Exception:  # a worker gone mid-answer, or a bug: never end the relay
                    logger.debug("a probe relay answer failed", exc_info=True)

    def close(self) -> None:
        """Stop answering (workers' probes fail from now on) and remove the socket. Idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        except OSError:
            pass
        self._sock.close()
        join_thread(self._thread, 2.0)
        try:
            os.unlink(self.path)
        except OSError:
            pass


class RegistrarProbes:
    """A worker's probes: asks the registrar's :class:`ProbeRelay` at ``path``, within ``timeout`` seconds."""

    def __init__(self, path: str, *, timeout: float = 1.0) -> None:
        self.path = path
        self.timeout = timeout

    def healthz(self) -> ProbeAnswer:
        """The registration's liveness, or 503 when the registrar does not answer."""
        return self._ask("healthz")

    def readyz(self) -> ProbeAnswer:
        """The registration's readiness, or 503 when the registrar does not answer."""
        return self._ask("readyz")

    def _ask(self, which: str) -> ProbeAnswer:
        error: Optional[str] = None
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(self.timeout)
                conn.connect(self.path)
                conn.sendall(which.encode() + b"\n")
                with conn.makefile("rb") as lines:
                    line = lines.readline(_MAX_LINE)
            if line:
                return ProbeAnswer.from_dict(json.loads(line))
            error = "the registrar closed the connection"
        except (OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        return ProbeAnswer(503, {"status": "no-registrar", "reason": f"the registrar does not answer ({error})"})
