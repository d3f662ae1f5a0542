"""Settings of the example site: the smallest Django project fyerreg can register."""

import os

SECRET_KEY = "example-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["fyerreg.contrib.django"]
MIDDLEWARE: list = []
ROOT_URLCONF = "hello_site.urls"
WSGI_APPLICATION = "hello_site.wsgi.application"
DATABASES: dict = {}
USE_TZ = True

FYERREG = {
    "SERVICE_NAME": "hello-django",
    "SERVICE_VERSION": "1.0.0",
    "ENDPOINTS": os.environ.get("FYERREG_ETCD", "127.0.0.1:2379").split(","),
    "TTL": 5,
    "HANDLE_SIGNALS": True,  # SIGTERM deregisters before the server stops
}
