"""The gRPC integration loads only when imported itself."""

from __future__ import annotations

from tests.helpers import imports_in_fresh_interpreter


def test_fyerreg_its_discovery_and_contrib_packages_do_not_load_the_grpc_integration() -> None:
    loaded = imports_in_fresh_interpreter("import fyerreg, fyerreg.contrib, fyerreg.discovery, fyerreg.serving")
    assert not {name for name in loaded if name.startswith(("fyerreg.contrib.grpc", "grpc_health"))}


def test_importing_the_integration_loads_grpc_and_the_health_service() -> None:
    loaded = imports_in_fresh_interpreter("import fyerreg.contrib.grpc")
    assert {"grpc", "grpc.aio", "grpc_health.v1.health", "fyerreg.contrib.grpc._server"} <= loaded
