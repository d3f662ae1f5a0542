"""The example site's settings with a 30 s lease: a record gone within seconds was deregistered."""

from hello_site.settings import *  # noqa: F403
from hello_site.settings import FYERREG as _EXAMPLE

FYERREG = {**_EXAMPLE, "TTL": 30}
