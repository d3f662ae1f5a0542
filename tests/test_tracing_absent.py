"""Without OpenTelemetry (not installed, or installed but unused by the application) calls work as
before and nothing imports it."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import List

import pytest

from tests.helpers import imports_in_fresh_interpreter

HIDE = '''
import importlib.abc, sys

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "opentelemetry":
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)")
        return None

sys.meta_path.insert(0, Hide())
'''

CALLS = '''
import io, json, logging, sys
import requests
import fyerreg.logging
from fyerreg import Instance, MemoryRegistry
from fyerreg.api import Client, ClientOptions, Server, ServerOptions
from fyerreg.contrib.requests import session
from fyerreg.discovery import Discovery

class Greeter:
    def SayHello(self, req):
        logging.getLogger("fyerreg.tests").info("in the method")
        return "Hello " + req["name"]

out = io.StringIO()
fyerreg.logging.configure(json=True, stream=out)
with MemoryRegistry() as registry, Discovery(registry) as discovery:
    server = Server(ServerOptions(address="127.0.0.1:0", enable_registry=True, registry=registry,
                                  service_name="greeter", drain_delay=0.0))
    server.register(Greeter())
    server.start()
    registry.register(Instance.new("web", "1.0.0", server.address, id="web"))
    with Client(ClientOptions(discovery=discovery, service_name="greeter")) as client:
        answer = client.call("Greeter", "SayHello", {"name": "x"})
    with session(discovery, {"web": "1.0.0"}) as http:
        status = http.post("http://web/Greeter/SayHello", json={"name": "y"}, timeout=5).status_code
    server.stop(grace=1)
loaded = sorted(name for name in sys.modules if name.split(".")[0] == "opentelemetry")
print(json.dumps({"answer": answer, "status": status, "loaded": loaded, "log": out.getvalue().splitlines()}))
'''


def run(code: str) -> dict:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def method_log_lines(outcome: dict) -> List[dict]:
    return [line for line in map(json.loads, outcome["log"]) if line["message"] == "in the method"]


@pytest.mark.parametrize("hidden", [True, False], ids=["not-installed", "installed-unused"])
def test_calls_and_json_logs_work_without_opentelemetry_and_nothing_imports_it(hidden: bool) -> None:
    outcome = run((HIDE if hidden else "") + CALLS)
    assert outcome["answer"] == "Hello x" and outcome["status"] == 200
    assert outcome["loaded"] == []
    lines = method_log_lines(outcome)
    assert len(lines) == 2 and not any("trace_id" in line or "span_id" in line for line in lines)


def test_the_hidden_import_is_really_hidden() -> None:
    """The blocker above works: importing OpenTelemetry behind it fails."""
    result = subprocess.run([sys.executable, "-c", HIDE + "import opentelemetry.trace"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0 and "hidden by the test" in result.stderr


@pytest.mark.parametrize("module", ["fyerreg.contrib.requests", "fyerreg.contrib.httpx", "fyerreg.api",
                                    "fyerreg.contrib.grpc", "fyerreg.logging"])
def test_importing_an_integration_imports_no_opentelemetry(module: str) -> None:
    loaded = imports_in_fresh_interpreter(f"import {module}")
    assert not {name for name in loaded if name.startswith("opentelemetry")}
    timed = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True,
                           text=True, timeout=60)
    assert timed.returncode == 0 and "opentelemetry" not in timed.stderr


def test_an_application_that_imports_opentelemetry_gets_traced_calls() -> None:
    """The other side of "tracing starts once the application imported opentelemetry.trace"."""
    code = CALLS.replace("import requests\n", "import requests\nimport opentelemetry.trace\n"
                         "from opentelemetry.sdk.trace import TracerProvider\n"
                         "opentelemetry.trace.set_tracer_provider(TracerProvider())\n")
    lines = method_log_lines(run(code))
    assert len(lines) == 2 and all(len(line["trace_id"]) == 32 and len(line["span_id"]) == 16 for line in lines)


def test_with_opentelemetry_imported_but_no_tracer_provider_calls_work_and_send_no_trace() -> None:
    code = CALLS.replace("import requests\n", "import requests\nimport opentelemetry.trace\n")
    outcome = run(code)
    assert outcome["answer"] == "Hello x" and outcome["status"] == 200
    assert not any("trace_id" in line for line in method_log_lines(outcome))
