"""A real etcd server process on loopback ports, started and broken on demand (for tests)."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from types import TracebackType
from typing import IO, Dict, List, Optional, Sequence, Set, Tuple, Type

from ._host import fill_ports, port_in_use, wait_for_threads
from .binary import find_etcd_binary, version_of, version_tuple
from .errors import EtcdPortInUseError, EtcdServerError

__all__ = ["EtcdServer", "etcd_healthy"]

log = logging.getLogger("fyerreg.testing.server")

_LOG_TAIL_LINES = 40
_ADDR_IN_USE = "address already in use"
# A local HTTP request must never go through the user's HTTP proxy.
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# A lone member never holds an election after it starts, so short raft timings only make its
# start ~4x faster; members of a real cluster keep etcd's defaults (extra_args override both).
_LONE_MEMBER_TIMING = ["--heartbeat-interval", "20", "--election-timeout", "200"]
PORT_RELEASE_WAIT = 2.0
"""Seconds a first :meth:`EtcdServer.start` waits for a taken port to be released (a process exiting)."""


def etcd_healthy(client_url: str, timeout: float = 1.0) -> bool:
    """True when the etcd member at ``client_url`` answers its ``/health`` endpoint as healthy."""
    try:
        with _NO_PROXY_OPENER.open(client_url.rstrip("/") + "/health", timeout=timeout) as resp:
            body = resp.read()
    except (OSError, urllib.error.URLError, ValueError):
        return False
    return b'"health":"true"' in body.replace(b" ", b"")


# Strong references: a server dropped without close() must still be found at exit (a weak
# set let an unclosed, collected server leave its temp dir or even its etcd behind).
_unclosed: Set[EtcdServer] = set()


@atexit.register
def _kill_unclosed() -> None:
    """At interpreter exit, kill the etcd of servers nobody closed and remove their temp dirs."""
    for server in list(_unclosed):
        with contextlib.suppress(Exception):
            server.kill(timeout=5)
        with contextlib.suppress(Exception):
            server.close()


def _etcd_env() -> Dict[str, str]:
    # etcd reads ETCD_* variables as flags and refuses those that conflict with ours.
    return {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}


class EtcdServer:
    """One etcd member on free loopback ports, with a temporary data dir.

    Built for tests: :meth:`start` waits until the member answers; :meth:`kill`, :meth:`restart`,
    :meth:`pause`/:meth:`resume` and :meth:`wipe` break it on demand. Ports and data dir stay
    the same across restarts. etcd's output goes to :attr:`log_path` (shown in the error when
    a start fails), never to stdout. A data dir or log dir the caller gives is kept at
    :meth:`close`; the temporary ones are removed. Use it as a context manager (started on
    enter, closed on exit). Drive one server from one thread at a time.

    ``initial_cluster`` / ``initial_cluster_state`` / ``initial_cluster_token`` are
    etcd's flags of those names, for members of a multi-member cluster; by default the
    member forms a cluster of its own. To form one, create the members, set each one's
    ``initial_cluster`` to ``",".join(f"{m.name}={m.peer_url}" for m in members)``, call
    ``start(wait=False)`` on each, then :meth:`wait_healthy` on each.
    """

    def __init__(
        self,
        *,
        data_dir: Optional[str] = None,
        client_port: Optional[int] = None,
        peer_port: Optional[int] = None,
        name: str = "fyerreg",
        binary: Optional[str] = None,
        extra_args: Sequence[str] = (),
        log_dir: Optional[str] = None,
        host: str = "127.0.0.1",
        initial_cluster: Optional[str] = None,
        initial_cluster_state: str = "new",
        initial_cluster_token: str = "fyerreg-test",
    ) -> None:
        if isinstance(extra_args, str):
            raise TypeError("extra_args must be a sequence of arguments, not a str")
        if initial_cluster_state not in ("new", "existing"):
            raise ValueError("initial_cluster_state must be 'new' or 'existing'")
        self.name = name
        self.host = host
        self.extra_args = list(extra_args)
        self.initial_cluster = initial_cluster
        self.initial_cluster_state = initial_cluster_state
        self.initial_cluster_token = initial_cluster_token
        self._binary = binary
        # Ports we chose ourselves may be re-chosen if another process takes them before the first start.
        self._ports_chosen = client_port is None and peer_port is None
        self.client_port, self.peer_port = fill_ports(host, [client_port, peer_port])
        self._temp_root: Optional[str] = None
        if data_dir is None or log_dir is None:
            self._temp_root = tempfile.mkdtemp(prefix="fyerreg-etcd-")
        self._data_dir = os.path.abspath(data_dir) if data_dir is not None else os.path.join(self._root, "data")
        self._log_dir = os.path.abspath(log_dir) if log_dir is not None else self._root
        self._proc: Optional[subprocess.Popen[bytes]] = None
        self._log_file: Optional[IO[bytes]] = None
        self._started_once = False
        self._paused = False
        self._closed = False
        _unclosed.add(self)

    @property
    def _root(self) -> str:
        assert self._temp_root is not None
        return self._temp_root

    # -- addresses ------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """``host:port`` of the client URL, the form fyerreg's etcd backend takes."""
        return f"{self.host}:{self.client_port}"

    @property
    def endpoints(self) -> List[str]:
        """``[endpoint]``: what the ``etcd_endpoints`` fixture yields."""
        return [self.endpoint]

    @property
    def client_url(self) -> str:
        """``http://host:port`` clients talk to."""
        return f"http://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        """``http://host:port`` other cluster members talk to."""
        return f"http://{self.host}:{self.peer_port}"

    # -- state ------------------------------------------------------------------------

    @property
    def data_dir(self) -> str:
        """The member's data directory (kept across restarts; emptied by :meth:`wipe`)."""
        return self._data_dir

    @property
    def log_path(self) -> str:
        """The file etcd's output is appended to."""
        return os.path.join(self._log_dir, f"etcd-{self.name}.log")

    @property
    def pid(self) -> Optional[int]:
        """The etcd process id while it runs (paused included), else None."""
        return self._proc.pid if self.is_running and self._proc is not None else None

    @property
    def is_running(self) -> bool:
        """True while the etcd process exists (also when paused)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def is_paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._paused and self.is_running

    def healthy(self, timeout: float = 1.0) -> bool:
        """True when the member answers its ``/health`` endpoint as healthy right now."""
        return self.is_running and etcd_healthy(self.client_url, timeout)

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines etcd wrote (empty when it wrote nothing yet)."""
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, timeout: float = 30.0, *, wait: bool = True) -> None:
        """Start etcd (no-op when it runs) and, when ``wait``, block until it is healthy.

        Before the first start, a port that something else still listens on after
        :data:`PORT_RELEASE_WAIT` seconds raises :class:`EtcdPortInUseError` (see
        :meth:`check_ports`); a restart retries while a port is still in use (after a
        kill) until ``timeout``. Raises :class:`EtcdServerError` with the end of etcd's
        log when it cannot start.
        """
        self._check_open()
        if self.is_running:
            return
        if not self._started_once:
            self.check_ports(wait=min(PORT_RELEASE_WAIT, timeout))
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            attempt += 1
            offset = self._launch()
            if not wait:
                return
            if self._wait_started(deadline):
                self._started_once = True
                log.debug("etcd started", extra={"endpoint": self.endpoint, "attempt": attempt})
                return
            output = self._log_since(offset)
            self._reap()
            if _ADDR_IN_USE in output and time.monotonic() < deadline:
                if not self._started_once:  # taken between the check and etcd's bind
                    self.check_ports(wait=max(0.0, min(PORT_RELEASE_WAIT, deadline - time.monotonic())))
                time.sleep(0.2)
                continue
            reason = "exited" if self._proc is None else "did not become healthy"
            self.kill()
            raise EtcdServerError(
                f"etcd at {self.client_url} {reason} within {timeout:g}s "
                f"(binary {self.binary}, log {self.log_path}); last output:\n{self.log_tail()}"
            )

    def check_ports(self, wait: float = 0.0) -> None:
        """Raise :class:`EtcdPortInUseError` when the client or peer port is still taken after
        ``wait`` seconds; ports this server chose itself are chosen again instead."""
        deadline = time.monotonic() + wait
        while True:
            taken = [(what, port) for what, port in (("client", self.client_port), ("peer", self.peer_port))
                     if port_in_use(self.host, port)]
            if not taken:
                return
            if self._ports_chosen and self.initial_cluster is None:
                self.client_port, self.peer_port = fill_ports(self.host, [None, None])
                continue
            if time.monotonic() >= deadline:
                what, port = taken[0]
                raise EtcdPortInUseError(
                    f"cannot start etcd: {what} port {self.host}:{port}: address already in use "
                    "(another etcd or another program listens there)"
                )
            time.sleep(0.05)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Block until the member answers as healthy; :class:`EtcdServerError` after ``timeout``."""
        if not self._wait_started(time.monotonic() + timeout):
            raise EtcdServerError(
                f"etcd at {self.client_url} is not healthy after {timeout:g}s; last output:\n{self.log_tail()}"
            )
        self._started_once = True

    def stop(self, timeout: float = 10.0) -> None:
        """Stop etcd gracefully (SIGTERM), killing it when it has not exited after ``timeout``."""
        if not self._end(signal.SIGTERM, timeout):
            log.warning("etcd ignored SIGTERM; killing it", extra={"endpoint": self.endpoint})
            self.kill(timeout)
        self._reap()

    def kill(self, timeout: float = 10.0) -> None:
        """Kill etcd at once (SIGKILL, as a crash would) and wait up to ``timeout`` until it is gone."""
        proc = self._proc
        if not self._end(signal.SIGKILL, timeout):
            raise EtcdServerError(f"etcd (pid {proc.pid if proc else '?'}) still exists {timeout:g}s after SIGKILL")
        self._reap()

    def _end(self, signum: int, timeout: float) -> bool:
        """Send ``signum`` to etcd, if it runs, and wait up to ``timeout`` for it to exit; False when it has not."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return True
        proc.send_signal(signum)
        if self._paused and signum != signal.SIGKILL:
            proc.send_signal(signal.SIGCONT)  # a stopped process handles no other signal
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def restart(self, timeout: float = 30.0) -> None:
        """Stop (gracefully) and start again on the same ports and data dir."""
        self.stop()
        self.start(timeout)

    def pause(self) -> None:
        """Freeze etcd (SIGSTOP): connections stay open but nothing answers."""
        proc = self._require_running("pause")
        proc.send_signal(signal.SIGSTOP)
        self._paused = True
        wait_for_threads(proc.pid, stopped=True)

    def resume(self) -> None:
        """Unfreeze etcd after :meth:`pause` (SIGCONT)."""
        proc = self._require_running("resume")
        proc.send_signal(signal.SIGCONT)
        self._paused = False
        wait_for_threads(proc.pid, stopped=False)

    def wipe(self) -> None:
        """Stop etcd and empty its data dir; the next :meth:`start` brings up an empty etcd."""
        self._check_open()
        self.stop()
        if os.path.isdir(self._data_dir):
            for entry in os.listdir(self._data_dir):
                path = os.path.join(self._data_dir, entry)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.remove(path)

    def close(self) -> None:
        """Stop etcd and remove the temporary directories. Idempotent."""
        if self._closed:
            return
        try:
            self.stop()
        finally:
            self._closed = True
            _unclosed.discard(self)
            if self._temp_root is not None:
                shutil.rmtree(self._temp_root, ignore_errors=True)

    @property
    def binary(self) -> str:
        """The etcd executable this server runs (found with :func:`find_etcd_binary` by default)."""
        if self._binary is None:
            self._binary = find_etcd_binary()
        return self._binary

    @property
    def version(self) -> str:
        """The version :attr:`binary` reports (``etcd --version``), e.g. ``"3.5.1"``; ``"unknown"`` if none."""
        return version_of(self.binary)

    @property
    def version_info(self) -> Tuple[int, ...]:
        """:attr:`version` as numbers, e.g. ``(3, 4, 23)``, for tests of features one version lacks."""
        return version_tuple(self.version)

    def __enter__(self) -> EtcdServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "paused" if self.is_paused else "running" if self.is_running else "stopped"
        return f"EtcdServer(name={self.name!r}, endpoint={self.endpoint!r}, {state})"

    # -- internals ---------------------------------------------------------------------

    def _args(self) -> List[str]:
        cluster = self.initial_cluster or f"{self.name}={self.peer_url}"
        return [
            self.binary,
            "--name", self.name,
            "--data-dir", self._data_dir,
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", cluster,
            "--initial-cluster-state", self.initial_cluster_state,
            "--initial-cluster-token", self.initial_cluster_token,
            "--logger", "zap",
            *(_LONE_MEMBER_TIMING if self.initial_cluster is None else []),
            *self.extra_args,
        ]

    def _launch(self) -> int:
        """Start the process; return the log offset its output starts at."""
        args = self._args()
        os.makedirs(self._log_dir, exist_ok=True)
        if self._log_file is None:
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        offset = self._log_file.tell()
        try:
            self._proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT, env=_etcd_env()
            )
        except OSError as exc:
            self._close_log()
            raise EtcdServerError(f"cannot run etcd binary {self.binary}: {exc}") from exc
        self._paused = False
        return offset

    def _wait_started(self, deadline: float) -> bool:
        """Poll until healthy (True), the process exits or the deadline passes (False)."""
        while True:
            if not self.is_running:
                return False
            if etcd_healthy(self.client_url, timeout=max(0.1, min(1.0, deadline - time.monotonic()))):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def _log_since(self, offset: int) -> str:
        if self._log_file is not None:
            self._log_file.flush()
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _reap(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None
            self._paused = False
            self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            with contextlib.suppress(OSError):
                self._log_file.close()
            self._log_file = None

    def _require_running(self, action: str) -> subprocess.Popen[bytes]:
        self._check_open()
        if self._proc is None or self._proc.poll() is not None:
            raise EtcdServerError(f"cannot {action} etcd at {self.client_url}: it is not running")
        return self._proc

    def _check_open(self) -> None:
        if self._closed:
            raise EtcdServerError("this EtcdServer was closed; create a new one")
