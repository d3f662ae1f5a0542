"""gunicorn with fyerreg's registrar and probes on.

Environment: PORT, FYERREG_ETCD, PROBES_SERVICE, PROBES_UNREADY and PROBES_DRAIN (seconds);
PROBES_APP and PROBES_WORKER (default the WSGI app, sync workers).
"""

import os

from fyerreg.contrib.gunicorn import GunicornRegistration

chdir = os.path.dirname(os.path.abspath(__file__))
wsgi_app = os.environ.get("PROBES_APP", "probes_app:wsgi_app")
worker_class = os.environ.get("PROBES_WORKER", "sync")
bind = f"127.0.0.1:{os.environ['PORT']}"
workers = 2
control_socket_disable = True

fyerreg = GunicornRegistration(os.environ["PROBES_SERVICE"], "1.0.0",
                               registry={"endpoints": os.environ["FYERREG_ETCD"].split(","), "ttl": 5,
                                         "dial_timeout": 1},
                               drain_delay=float(os.environ["PROBES_DRAIN"]), probes=True,
                               unready_delay=float(os.environ["PROBES_UNREADY"]))
when_ready = fyerreg.when_ready
on_exit = fyerreg.on_exit
post_worker_init = fyerreg.post_worker_init
