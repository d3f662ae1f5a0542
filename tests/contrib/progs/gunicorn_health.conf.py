"""gunicorn config for the health tests: tests/contrib/progs/health_apps.py's WSGI app, whose /healthz the
registrar GETs (GunicornRegistration(health_check="/healthz")). Environment as for health_apps.py, plus PORT."""

import os

from fyerreg.contrib.gunicorn import GunicornRegistration

chdir = os.path.dirname(os.path.abspath(__file__))
wsgi_app = "health_apps:wsgi_app"
bind = f"127.0.0.1:{os.environ['PORT']}"
workers = 1
control_socket_disable = True

fyerreg = GunicornRegistration(
    os.environ["SERVICE"], "1.0.0", registry={"endpoints": os.environ["FYERREG_ETCD"].split(","), "ttl": 5},
    drain_delay=0, health_check="/healthz", health_interval=float(os.environ["HEALTH_INTERVAL"]),
    health_timeout=float(os.environ["HEALTH_TIMEOUT"]), health_failures=int(os.environ["HEALTH_FAILURES"]),
    health_successes=int(os.environ["HEALTH_SUCCESSES"]))
when_ready = fyerreg.when_ready
on_exit = fyerreg.on_exit
