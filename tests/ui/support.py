"""Reading the dashboard as a plain client does: requests with http.client, its event stream line by line."""

from __future__ import annotations

import http.client
import json
import socket
import time
from typing import Any, Dict, List, Optional, Tuple


def get(port: int, path: str, *, headers: Optional[Dict[str, str]] = None,
        method: str = "GET") -> Tuple[int, Dict[str, str], bytes]:
    """``(status, headers, body)`` of one request to the dashboard on 127.0.0.1:``port``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def get_json(port: int, path: str, **kwargs: Any) -> Any:
    status, _, body = get(port, path, **kwargs)
    assert status == 200, (status, body)
    return json.loads(body)


class EventStream:
    """The dashboard's ``/events``, read as server-sent events ``(event, data)``."""

    def __init__(self, port: int, *, headers: Optional[Dict[str, str]] = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.request("GET", "/events", headers=headers or {})
        self._socket = self.conn.sock  # http.client lets go of it once the response says Connection: close
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.headers = {k.lower(): v for k, v in self.response.getheaders()}
        self.seen: List[Tuple[str, Any]] = []

    def next_event(self, timeout: float = 10.0) -> Tuple[str, Any]:
        """The next event (comments and ``retry:`` lines skipped); fails after ``timeout`` s or at the end."""
        deadline = time.monotonic() + timeout
        event, data = "message", []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no event within {timeout}s")
            self._sock().settimeout(left)
            try:
                raw = self.response.fp.readline()
            except socket.timeout:
                raise AssertionError(f"no event within {timeout}s") from None
            if not raw:
                raise AssertionError("the event stream ended")
            line = raw.decode("utf-8").rstrip("\n")
            if line == "":
                if data:
                    item = (event, json.loads("\n".join(data)))
                    self.seen.append(item)
                    return item
                event = "message"
                continue
            if line.startswith(":") or line.startswith("retry:"):
                continue
            name, _, value = line.partition(": ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> Tuple[str, Any]:
        """The first event (from now on) for which ``predicate(event, data)`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            event, data = self.next_event(max(deadline - time.monotonic(), 0.001))
            if predicate(event, data):
                return event, data

    def ended(self, timeout: float = 10.0) -> bool:
        """True when the server ends the stream within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._sock().settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                if not self.response.fp.readline():
                    return True
            except socket.timeout:
                return False
            except OSError:
                return True
        return False

    def _sock(self) -> socket.socket:
        assert self._socket is not None
        return self._socket

    def close(self) -> None:
        self.response.close()
        self.conn.close()
        if self._socket is not None:
            self._socket.close()


def service_of(data: Dict[str, Any], name: str) -> Optional[Dict[str, Any]]:
    """The service ``name`` of a ``state`` event's data (None when absent)."""
    return next((s for s in data["services"] if s["name"] == name), None)


def instance_ids(service: Dict[str, Any]) -> List[str]:
    return [inst["id"] for inst in service["instances"]]
