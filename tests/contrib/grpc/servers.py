"""Greeter servers for the gRPC tests: real grpc servers in this process, told how to answer by the request."""

from __future__ import annotations

import threading
import time
from concurrent import futures
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional

import greeter_pb2
import greeter_pb2_grpc
import grpc

from fyerreg import Instance
from fyerreg.discovery import Discovery

SERVICE = "greeter"
SAY_HELLO = "/greeter.Greeter/SayHello"
SAY_HELLO_STREAM = "/greeter.Greeter/SayHelloStream"


class Greeter(greeter_pb2_grpc.GreeterServicer):
    """Answers with its name. A request named ``abort:CODE`` is answered with that status,
    ``sleep:SECONDS`` after that long (a stream: between its responses); ``gate`` (when set)
    holds every call until it opens."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0
        self.gate: Optional[threading.Event] = None
        self.delay = 0.0  # seconds every call takes
        self.entered = threading.Event()

    def _obey(self, request: Any, context: grpc.ServicerContext, stream: bool = False) -> None:
        self.calls += 1
        self.entered.set()
        if self.delay:
            time.sleep(self.delay)
        if self.gate is not None:
            self.gate.wait(10)
        what, _, arg = request.name.partition(":")
        if what == "abort":
            context.abort(grpc.StatusCode[arg], f"{self.name} was told to answer {arg}")
        if what == "sleep" and not stream:
            time.sleep(float(arg))

    def SayHello(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._obey(request, context)
        return greeter_pb2.HelloReply(message=self.name)

    def SayHelloStream(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self._obey(request, context, stream=True)
        what, _, arg = request.name.partition(":")
        for n in range(request.count):
            if n and what == "sleep":
                time.sleep(float(arg))
            yield greeter_pb2.HelloReply(message=f"{self.name} {n}")


class Served:
    """One running greeter server: its servicer, port and the instance it is registered as."""

    def __init__(self, name: str) -> None:
        self.servicer = Greeter(name)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        greeter_pb2_grpc.add_GreeterServicer_to_server(self.servicer, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.instance = Instance.new(SERVICE, "1.0.0", f"127.0.0.1:{self.port}", id=name)

    def stop(self) -> None:
        self.server.stop(0).wait(5)


@contextmanager
def greeters(*names: str) -> Iterator[List[Served]]:
    """Start a greeter server per name; stop them all afterwards."""
    served: List[Served] = []
    try:
        for name in names:
            served.append(Served(name))
        yield served
    finally:
        for one in served:
            one.stop()


def counts(discovery: Discovery, service: str = SERVICE) -> Dict[str, Dict[str, int]]:
    """Per instance id: the calls and errors discovery heard of."""
    [view] = [v for v in discovery.describe()["services"] if v["service"] == service]
    return {row["id"]: {"calls": row["calls"], "errors": row["errors"]} for row in view["instances"]}


def hello(name: str, count: int = 0) -> Any:
    return greeter_pb2.HelloRequest(name=name, count=count)
