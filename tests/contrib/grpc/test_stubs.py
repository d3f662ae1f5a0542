"""The shipped greeter modules are what grpc_tools generates from examples/protos/greeter.proto today."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ..procs import EXAMPLES

GENERATED = ["greeter_pb2.py", "greeter_pb2_grpc.py"]

# The generator's own version, stamped into the output: it changes with grpcio-tools, not with the proto.
_TOOL_VERSION = [
    re.compile(r"^(# Protobuf Python Version: ).*$", re.M),
    re.compile(r"(ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*)\d+,\s*\d+,\s*\d+,"),
    re.compile(r"^(GRPC_GENERATED_VERSION = ).*$", re.M),
]
_OBJECT_BASE = re.compile(r"^(class \w+)\(object\):", re.M)  # written by older grpcio-tools (1.80), not by 1.85


def _normalized(text: str) -> str:
    for pattern in _TOOL_VERSION:
        text = pattern.sub(r"\1<version>", text)
    return _OBJECT_BASE.sub(r"\1:", text)


@pytest.mark.parametrize("name", GENERATED)
def test_the_shipped_module_matches_a_fresh_generation(name: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{EXAMPLES / 'protos'}", f"--python_out={tmp_path}",
         f"--grpc_python_out={tmp_path}", str(EXAMPLES / "protos" / "greeter.proto")],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    fresh, shipped = (tmp_path / name).read_text(), (EXAMPLES / name).read_text()
    assert _normalized(fresh) == _normalized(shipped), (
        f"examples/{name} differs from what examples/protos/greeter.proto generates: regenerate it "
        "with the command at the top of the proto")


def test_the_normalization_only_hides_the_generator_version() -> None:
    shipped = (EXAMPLES / "greeter_pb2.py").read_text()
    assert _normalized(shipped).count("<version>") == 2
    assert _normalized(shipped.replace("HelloReply", "HelloAnswer")) != _normalized(shipped)
