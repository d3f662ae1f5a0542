"""etcd's own gRPC proxy (``etcd grpc-proxy start``) in front of an etcd, on a free loopback port."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import tempfile
import time
from types import TracebackType
from typing import IO, List, Optional, Sequence, Type

from ._host import free_port
from .binary import find_etcd_binary
from .errors import EtcdServerError

__all__ = ["EtcdGrpcProxy"]

log = logging.getLogger("fyerreg.testing.proxy")


class EtcdGrpcProxy:
    """``etcd grpc-proxy start`` forwarding to ``endpoints``, listening on ``127.0.0.1:<port>``.

    The proxy coalesces the watches of its clients and is how etcd deployments scale
    readers. :meth:`start` waits until it forwards a request; :meth:`stop` and
    :meth:`start` again keep its port (a proxy restart); :meth:`close` ends it and
    removes its log. A context manager (started on enter, closed on exit).
    """

    def __init__(self, endpoints: Sequence[str], *, binary: Optional[str] = None, port: Optional[int] = None) -> None:
        if not endpoints:
            raise ValueError("endpoints must name at least one etcd")
        self.targets: List[str] = list(endpoints)
        self.binary = binary or find_etcd_binary()
        self.port = port or free_port("127.0.0.1")
        self._proc: Optional[subprocess.Popen[bytes]] = None
        fd, self.log_path = tempfile.mkstemp(prefix="fyerreg-grpc-proxy-", suffix=".log")
        os.close(fd)
        self._log: Optional[IO[bytes]] = None

    @property
    def endpoint(self) -> str:
        """``host:port`` clients dial instead of etcd's."""
        return f"127.0.0.1:{self.port}"

    @property
    def endpoints(self) -> List[str]:
        """``[endpoint]``, the form fyerreg's etcd backend takes."""
        return [self.endpoint]

    @property
    def is_running(self) -> bool:
        """True while the proxy process runs."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        """Start the proxy (no-op when it runs) and wait until it answers through to etcd."""
        if self.is_running:
            return
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self._proc = subprocess.Popen(
            [self.binary, "grpc-proxy", "start", "--endpoints", ",".join(self.targets),
             "--listen-addr", self.endpoint],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self._proc.poll() is not None:
                raise EtcdServerError(f"etcd grpc-proxy exited with {self._proc.returncode}: {self._tail()}")
            if time.monotonic() >= deadline:
                self.stop()
                raise EtcdServerError(f"etcd grpc-proxy did not answer within {timeout:g}s: {self._tail()}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        from .client import raw_client  # the pyetcd client, imported only when a proxy is used

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                pass
        except OSError:
            return False
        try:
            client = raw_client(self.endpoints, timeout=2)
        except Exception:
            return False
        try:
            client.get("fyerreg-proxy-probe")
            return True
        except Exception:
            return False
        finally:
            with contextlib.suppress(Exception):
                client.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the proxy (SIGTERM, then SIGKILL after ``timeout``); its clients lose their connections."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        """Stop the proxy and remove its log (idempotent)."""
        self.stop()
        with contextlib.suppress(OSError):
            os.unlink(self.log_path)

    def _tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-2000:].decode("utf-8", "replace")
        except OSError:
            return "(no log)"

    def __enter__(self) -> EtcdGrpcProxy:
        self.start()
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EtcdGrpcProxy(endpoint={self.endpoint!r}, targets={self.targets!r}, running={self.is_running})"
