"""Who may see the dashboard: a token on every request, or, without one, only this host.

With a token, a request is let in when it carries ``Authorization: Bearer <token>`` or
the session cookie; a first visit to ``/?token=<token>`` sets that cookie (HttpOnly,
SameSite=Strict, holding a value derived from the token, not the token) and redirects
to the same page without the token in its address. Without a token (loopback binds
only), a request is let in only when its ``Host`` names this host, so a web page of
another site cannot reach the dashboard through DNS rebinding.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
from http.cookies import CookieError, SimpleCookie
from typing import List, Optional, Tuple
from urllib.parse import parse_qsl, urlencode

__all__ = ["Guard", "Verdict", "is_loopback", "check_token", "MIN_TOKEN_LENGTH"]

MIN_TOKEN_LENGTH = 16


def is_loopback(host: str) -> bool:
    """True when ``host`` (a name or an address) only reaches this host."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_token(token: str) -> None:
    """Raise ValueError (saying why, never the token) unless ``token`` is usable."""
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(f"the token must be at least {MIN_TOKEN_LENGTH} characters long "
                         f"(it has {len(token)})")
    if not token.isascii() or not token.isprintable() or " " in token:
        raise ValueError("the token must be printable ASCII without spaces")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What to do with a request: let it in (``status`` 0), redirect it with a cookie, or refuse it."""

    status: int = 0
    message: str = ""
    location: Optional[str] = None
    cookie: Optional[str] = None

    @property
    def allowed(self) -> bool:
        return self.status == 0


_ALLOW = Verdict()


class Guard:
    """Checks each request against the dashboard's ``token`` (None: loopback only, by Host)."""

    def __init__(self, token: Optional[str], *, bind_host: str, port: int) -> None:
        if token is not None:
            check_token(token)
        self._token = token.encode("ascii") if token is not None else None
        self.port = port
        self.cookie_name = f"fyerreg_ui_{port}"  # cookies are per host, not per port
        self._session = (hmac.new(self._token, b"fyerreg ui session", hashlib.sha256).hexdigest()
                         if self._token is not None else "")
        host = f"[{bind_host}]" if ":" in bind_host else bind_host
        self._hosts = {f"{h}:{port}" for h in ("127.0.0.1", "localhost", "[::1]", host)}

    @property
    def needs_token(self) -> bool:
        return self._token is not None

    def check(self, path: str, query: str, host: Optional[str], authorization: Optional[str],
              cookie: Optional[str]) -> Verdict:
        """The verdict on a request for ``path?query`` with these headers."""
        if self._token is None:
            if host is None or host.lower() not in self._hosts:
                return Verdict(403, "this dashboard answers only requests addressed to this host "
                                    f"(Host: 127.0.0.1:{self.port} or localhost:{self.port})")
            return _ALLOW
        given, rest = _split_token(query)
        if given is not None:
            if not self._same(given):
                return Verdict(401, "wrong token")
            location = path + (f"?{rest}" if rest else "")
            cookie_value = (f"{self.cookie_name}={self._session}; HttpOnly; SameSite=Strict; Path=/")
            return Verdict(303, "signed in", location=location, cookie=cookie_value)
        if authorization is not None:
            scheme, _, credential = authorization.partition(" ")
            if scheme.lower() == "bearer" and self._same(credential.strip()):
                return _ALLOW
            return Verdict(401, "wrong token")
        if cookie is not None and hmac.compare_digest(_cookie(cookie, self.cookie_name).encode(),
                                                      self._session.encode()):
            return _ALLOW
        return Verdict(401, "this dashboard needs its token: open /?token=TOKEN once in the browser "
                            "(it sets a cookie), or send the header 'Authorization: Bearer TOKEN'")

    def _same(self, given: str) -> bool:
        assert self._token is not None
        try:
            return hmac.compare_digest(given.encode("ascii"), self._token)
        except UnicodeEncodeError:
            return False


def _split_token(query: str) -> Tuple[Optional[str], str]:
    """The ``token`` parameter of ``query`` (None when absent), and the query without it."""
    if not query:
        return None, ""
    pairs: List[Tuple[str, str]] = parse_qsl(query, keep_blank_values=True)
    token = next((value for name, value in pairs if name == "token"), None)
    return token, urlencode([(name, value) for name, value in pairs if name != "token"])


def _cookie(header: str, name: str) -> str:
    try:
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
    except CookieError:
        return ""
    morsel = jar.get(name)
    return morsel.value if morsel is not None else ""
