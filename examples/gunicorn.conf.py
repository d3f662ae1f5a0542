"""gunicorn config: serve examples/flask_app.py with 2 workers; the master registers it once.

    FYERREG_ETCD=127.0.0.1:2379 PORT=8080 gunicorn -c examples/gunicorn.conf.py

SIGTERM to the master deregisters the instance, waits for clients to notice, then lets
gunicorn stop its workers. The workers' apps use discovery with their own etcd client.
"""

import os

from fyerreg.contrib.gunicorn import GunicornRegistration

port = os.environ.get("PORT", "8080")
etcd = os.environ.get("FYERREG_ETCD", "127.0.0.1:2379")

chdir = os.path.dirname(os.path.abspath(__file__))
wsgi_app = f"flask_app:create_app(port={port}, etcd={etcd!r})"
bind = f"127.0.0.1:{port}"
workers = 2
control_socket_disable = True  # gunicorn >= 24 otherwise opens ~/.gunicorn/gunicorn.ctl

fyerreg = GunicornRegistration("hello-flask", "1.0.0", registry={"endpoints": etcd.split(","), "ttl": 5},
                               drain_delay=0.5)
when_ready = fyerreg.when_ready
on_exit = fyerreg.on_exit
