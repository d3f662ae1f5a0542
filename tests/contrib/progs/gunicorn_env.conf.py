"""gunicorn registering a plain WSGI app with no registry options: etcd, namespace, lease TTL and
advertised host all come from the FYERREG_* environment the master (and its registrar) inherit."""

import os

from fyerreg.contrib.gunicorn import GunicornRegistration

chdir = os.path.dirname(os.path.abspath(__file__))
wsgi_app = "gunicorn_env_conf_app:app"
bind = f"127.0.0.1:{os.environ['PORT']}"
workers = 1
control_socket_disable = True

fyerreg = GunicornRegistration("env-app", "1.0.0", drain_delay=0)
when_ready = fyerreg.when_ready
on_exit = fyerreg.on_exit
