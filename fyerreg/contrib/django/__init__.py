"""Django integration: an AppConfig that registers the site while it serves.

Add ``"fyerreg.contrib.django"`` to ``INSTALLED_APPS`` and a ``FYERREG`` dict to settings::

    FYERREG = {
        "SERVICE_NAME": "user-service",
        "SERVICE_VERSION": "1.0.0",
        "ENDPOINTS": ["etcd:2379"],
    }

Keys are those of the Flask extension without the ``FYERREG_`` prefix. ``ADDRESS``
defaults to the ``runserver`` address (or ``127.0.0.1:8000``). ``REGISTER`` ``"auto"``
registers under ``manage.py runserver`` (in the process that serves, not the
autoreloader's parent); under gunicorn use ``fyerreg.contrib.gunicorn``, under any other
server set ``"REGISTER": True``. With ``"HANDLE_SIGNALS": True`` SIGTERM deregisters at
once under ``runserver``, sent to the serving process, to the autoreloader's parent (which
passes it on to the child and waits for it) or to both. The state is :func:`state`
(``.registry``, ``.discovery``, ``.registration``). With ``"PROBES": True`` the site answers
``HEALTHZ_PATH`` and ``READYZ_PATH`` (``/healthz``, ``/readyz``) through
``fyerreg.contrib.django.probes.ProbesMiddleware``, put first in ``MIDDLEWARE``.
"""

from __future__ import annotations

from .apps import FyerRegConfig, state

__all__ = ["FyerRegConfig", "state"]
