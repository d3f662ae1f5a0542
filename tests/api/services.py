"""Services the api and contrib tests expose: fyer-rpc's example greeter, plus methods that misbehave on purpose."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, Dict, Optional


@dataclasses.dataclass
class HelloRequest:
    name: str


@dataclasses.dataclass
class HelloResponse:
    message: str
    answered_by: str = ""


class GreeterService:
    """Go fyer-rpc's example GreeterService.SayHello, plus a few methods to exercise errors and timing."""

    def __init__(self, label: str = "") -> None:
        self.label = label
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def SayHello(self, req: HelloRequest) -> HelloResponse:
        self.calls += 1
        return HelloResponse(message=f"Hello {req.name}", answered_by=self.label)

    def Fail(self, req: Dict[str, Any]) -> None:
        raise KeyError(req.get("key", "missing"))

    def Block(self, req: Optional[Dict[str, Any]] = None) -> str:
        """Blocks until the test sets ``release``: a call in flight the test controls."""
        self.calls += 1
        self.entered.set()
        self.release.wait(30)
        return self.label

    def NotJson(self) -> object:
        return object()

    def _private(self) -> None:  # never exposed
        raise AssertionError("private methods must not be callable")
