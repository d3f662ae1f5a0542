"""contrib.django: a real Django app (configured in-process) registers while it serves."""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Iterator

import pytest

from fyerreg import MemoryRegistry, Status
from tests.helpers import free_port, fyerreg_threads, wait_until

django = pytest.importorskip("django")


HEALTH = {"ok": True}


def site_healthy() -> bool:
    """The site's HEALTH_CHECK: what the test says."""
    return HEALTH["ok"]


@pytest.fixture(scope="module")
def registry() -> Iterator[MemoryRegistry]:
    with MemoryRegistry() as reg:
        yield reg


def test_django_site_registers_when_serving_and_disappears_when_stopped(registry: MemoryRegistry) -> None:
    from django.conf import settings

    if settings.configured:
        pytest.skip("Django was already configured by another test in this process")
    port = free_port()
    settings.configure(
        DEBUG=False, ALLOWED_HOSTS=["*"], SECRET_KEY="test", ROOT_URLCONF=__name__, DATABASES={},
        INSTALLED_APPS=["fyerreg.contrib.django"], MIDDLEWARE=[],
        FYERREG={"SERVICE_NAME": "hello-django", "ADDRESS": f"127.0.0.1:{port}", "REGISTRY": registry,
                 "REGISTER": True, "DRAIN_DELAY": 0, "METADATA": {"framework": "django"},
                 "HEALTH_CHECK": f"{__name__}:site_healthy", "HEALTH_INTERVAL": 0.1, "HEALTH_FAILURES": 2,
                 "HEALTH_SUCCESSES": 1},
    )
    django.setup()
    from django.core.wsgi import get_wsgi_application
    from werkzeug.serving import make_server

    from fyerreg.contrib.django import state

    integration = state()
    assert registry.list_services("hello-django") == []
    server = make_server("127.0.0.1", port, get_wsgi_application(), threaded=True)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        [inst] = wait_until(lambda: registry.list_services("hello-django", "1.0.0"), timeout=10)
        assert inst.address == f"127.0.0.1:{port}" and dict(inst.metadata) == {"framework": "django"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/peers", timeout=5) as resp:
            assert json.load(resp) == [inst.address]
        HEALTH["ok"] = False  # the HEALTH_CHECK setting gates the advertised status
        wait_until(lambda: [i.status for i in registry.list_services("hello-django")] == [Status.DISABLED],
                   timeout=0.1 * 2 + 1)
        HEALTH["ok"] = True
        wait_until(lambda: [i.status for i in registry.list_services("hello-django")] == [Status.ENABLED],
                   timeout=0.1 + 1)
        integration.close()  # what the interpreter's exit runs
        assert registry.list_services("hello-django") == []
    finally:
        server.shutdown()
        thread.join(10)
        integration.close()
    assert fyerreg_threads() == []


def peers(request: object) -> object:
    from django.http import JsonResponse

    from fyerreg.contrib.django import state

    found = state().discovery.instances("hello-django", "1.0.0")
    return JsonResponse([i.address for i in found], safe=False)


def _urls() -> list:
    from django.urls import path

    return [path("peers", peers)]


def __getattr__(name: str) -> object:
    # Django imports ROOT_URLCONF (this module) after settings exist; build the patterns lazily.
    if name == "urlpatterns":
        return _urls()
    raise AttributeError(name)
