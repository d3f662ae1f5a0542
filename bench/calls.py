"""7. Calls through discovery: ``api.Client.call`` beside a direct ``http.client`` call (filled in below)."""

from __future__ import annotations

from .context import Context
from .report import Section


def run(ctx: Context) -> Section:
    return Section("calls", "Calls through discovery", __doc__ or "",
                   pending="fyerreg.api (Server/Client) is not in this checkout yet")
