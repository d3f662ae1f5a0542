"""A Django site with ``FYERREG["PROBES"]`` on, asked through Django's test client; prints one JSON line.

Its ALLOWED_HOSTS admits only ``site.example``: kubelet dials the pod's IP, and the probes must
answer it all the same. Argument: the READYZ_PATH to configure.
"""

from __future__ import annotations

import json
import socket
import sys

import django
from django.conf import settings

from fyerreg import MemoryRegistry

registry = MemoryRegistry()
listener = socket.create_server(("127.0.0.1", 0))  # accepts: the registration's readiness check passes
settings.configure(
    DEBUG=False, ALLOWED_HOSTS=["site.example"], SECRET_KEY="test", ROOT_URLCONF=__name__, DATABASES={},
    INSTALLED_APPS=["fyerreg.contrib.django"], MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    FYERREG={"SERVICE_NAME": "probed-django", "ADDRESS": f"127.0.0.1:{listener.getsockname()[1]}",
             "REGISTRY": registry, "REGISTER": True, "DRAIN_DELAY": 0, "PROBES": True, "READYZ_PATH": sys.argv[1]},
)
django.setup()
urlpatterns: list = []

from django.test import Client  # noqa: E402

from fyerreg.contrib.django import state  # noqa: E402

integration = state()
assert integration.registration is not None and integration.registration.wait_registered(10)
client = Client(HTTP_HOST="10.1.2.3:8000")
ready = client.get(sys.argv[1])
result = {"middleware": list(settings.MIDDLEWARE), "healthz": client.get("/healthz").status_code,
          "readyz": ready.status_code, "readyz_body": json.loads(ready.content),
          "other": client.get("/other").status_code}
integration.close()
result["readyz_after_close"] = client.get(sys.argv[1]).status_code
print(json.dumps(result), flush=True)
