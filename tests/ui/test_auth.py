"""Who may see the dashboard: the token on every request (the event stream too), or this host only."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from fyerreg.ui import Dashboard

from .support import EventStream, get

TOKEN = "s3cret-token-0123456789"


@pytest.fixture
def guarded(viewer: Any) -> Iterator[Dashboard]:
    board = Dashboard(viewer, port=0, token=TOKEN)
    board.start()
    try:
        yield board
    finally:
        board.close()


@pytest.mark.parametrize("path", ["/", "/app.js", "/api/state", "/api/leases", "/events"])
def test_every_request_without_the_token_is_refused_and_the_answer_says_how_to_give_it(
        guarded: Dashboard, path: str) -> None:
    status, headers, body = get(guarded.port, path)
    assert status == 401
    assert headers["www-authenticate"].startswith("Bearer")
    assert b"?token=" in body and b"Authorization: Bearer" in body
    assert TOKEN.encode() not in body


@pytest.mark.parametrize("path", ["/api/state", "/events"])
def test_a_wrong_token_is_refused(guarded: Dashboard, path: str) -> None:
    assert get(guarded.port, path, headers={"Authorization": "Bearer not-the-token-at-all"})[0] == 401
    assert get(guarded.port, path + "?token=not-the-token-at-all")[0] == 401
    assert get(guarded.port, path, headers={"Cookie": f"fyerreg_ui_{guarded.port}={TOKEN}"})[0] == 401


def test_the_bearer_token_lets_a_client_in_the_event_stream_included(guarded: Dashboard) -> None:
    assert get(guarded.port, "/api/state", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    stream = EventStream(guarded.port, headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        assert stream.status == 200
        assert stream.next_event()[0] == "state"
    finally:
        stream.close()


def test_a_first_visit_with_the_token_sets_an_httponly_cookie_and_drops_the_token_from_the_address(
        guarded: Dashboard) -> None:
    status, headers, body = get(guarded.port, f"/?token={TOKEN}")
    assert status == 303
    assert headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert TOKEN not in cookie and TOKEN.encode() not in body  # the cookie holds a value derived from it
    session = cookie.split(";")[0]
    assert get(guarded.port, "/", headers={"Cookie": session})[0] == 200
    stream = EventStream(guarded.port, headers={"Cookie": session})
    try:
        assert stream.status == 200 and stream.next_event()[0] == "state"
    finally:
        stream.close()


def test_without_a_token_only_requests_addressed_to_this_host_are_answered(viewer: Any) -> None:
    with Dashboard(viewer, port=0) as board:
        assert get(board.port, "/api/state")[0] == 200  # Host: 127.0.0.1:<port>
        assert get(board.port, "/api/state", headers={"Host": f"localhost:{board.port}"})[0] == 200
        # What a page of another site reaches through DNS rebinding: its own name in Host.
        assert get(board.port, "/api/state", headers={"Host": f"attacker.example:{board.port}"})[0] == 403
        assert get(board.port, "/events", headers={"Host": f"attacker.example:{board.port}"})[0] == 403


def test_a_short_token_is_refused_without_being_repeated(viewer: Any) -> None:
    with pytest.raises(ValueError) as caught:
        Dashboard(viewer, port=0, token="short-secret")
    assert "at least 16 characters" in str(caught.value)
    assert "short-secret" not in str(caught.value)
