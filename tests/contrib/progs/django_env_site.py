"""A Django site configured in-process: ``settings.FYERREG`` is the JSON of argv[1], and the rest of
its configuration comes from the environment. Serves on 127.0.0.1:argv[2] until SIGINT or SIGTERM; exits 3
printing the error when fyerreg refuses its configuration at setup."""

import json
import signal
import sys
import threading

import django
from django.conf import settings

urlpatterns: list = []

# SIGINT/SIGTERM are waited for, not raised in whatever the main thread is doing: exit 0, and
# the integration deregisters at exit. Blocked before fyerreg starts a thread, so none takes them.
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})

settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], SECRET_KEY="test", ROOT_URLCONF=__name__, DATABASES={},
                   INSTALLED_APPS=["fyerreg.contrib.django"], MIDDLEWARE=[], FYERREG=json.loads(sys.argv[1]))
try:
    django.setup()
except ValueError as exc:
    print(f"refused: {type(exc).__name__}: {exc}", flush=True)
    sys.exit(3)

from django.core.wsgi import get_wsgi_application  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

server = make_server("127.0.0.1", int(sys.argv[2]), get_wsgi_application(), threaded=True)
serving = threading.Thread(target=server.serve_forever)
serving.start()
print("serving", flush=True)
signal.sigwait({signal.SIGINT, signal.SIGTERM})
server.shutdown()
serving.join()
