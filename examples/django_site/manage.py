"""Django's command line for the example site.

    FYERREG_ETCD=127.0.0.1:2379 python examples/django_site/manage.py runserver 127.0.0.1:8002

runserver registers "hello-django" once it serves (fyerreg.contrib.django) and
deregisters on Ctrl-C or SIGTERM.
"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hello_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
