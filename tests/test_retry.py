"""The Retry policy object: tries, backoff bounds, deadline and stop event."""

from __future__ import annotations

import threading
import time
from typing import Callable, List, Tuple

import pytest

from fyerreg import Retry

TINY = 0.001


class Flaky:
    """Fails with ``exc`` the first ``failures`` calls, then returns the attempt number."""

    def __init__(self, failures: int, exc: Callable[[], BaseException] = lambda: ConnectionError("down")) -> None:
        self.failures = failures
        self.exc = exc
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc()
        return self.calls


def test_returns_after_retrying_the_listed_errors():
    seen: List[Tuple[int, str, float]] = []
    func = Flaky(2)
    result = Retry(max_tries=5, delay=TINY, jitter=0).call(
        func, retry_on=(ConnectionError,), on_retry=lambda n, exc, wait: seen.append((n, str(exc), wait))
    )
    assert result == 3 and func.calls == 3
    assert [(n, msg) for n, msg, _ in seen] == [(1, "down"), (2, "down")]
    assert all(wait == pytest.approx(TINY * 2 ** (n - 1)) for n, _, wait in seen)


def test_gives_up_after_max_tries_with_the_last_error():
    func = Flaky(10)
    with pytest.raises(ConnectionError):
        Retry(max_tries=3, delay=TINY).call(func, retry_on=(ConnectionError,))
    assert func.calls == 3
    once = Flaky(10)
    with pytest.raises(ConnectionError):
        Retry(max_tries=1, delay=TINY).call(once, retry_on=(ConnectionError,))
    assert once.calls == 1


def test_other_errors_are_not_retried():
    func = Flaky(1, exc=lambda: KeyError("x"))
    with pytest.raises(KeyError):
        Retry(max_tries=5, delay=TINY).call(func, retry_on=(ConnectionError,))
    assert func.calls == 1


def test_deadline_bounds_the_whole_call():
    func = Flaky(10**9)
    start = time.monotonic()
    with pytest.raises(ConnectionError):
        Retry(max_tries=None, delay=0.01, backoff=1, jitter=0).call(func, retry_on=(ConnectionError,), deadline=0.1)
    assert time.monotonic() - start < 30  # generous: only proves it ended
    assert func.calls >= 2


def test_policy_deadline_applies_when_the_call_gives_none():
    func = Flaky(10**9)
    with pytest.raises(ConnectionError):
        Retry(max_tries=None, delay=0.01, backoff=1, deadline=0.05).call(func, retry_on=(ConnectionError,))
    assert func.calls >= 2


def test_stop_event_set_during_a_wait_ends_it_and_the_retries():
    stop, waiting = threading.Event(), threading.Event()
    stopper = threading.Thread(target=lambda: waiting.wait(30) and stop.set())
    stopper.start()
    func = Flaky(10**9)
    start = time.monotonic()
    with pytest.raises(ConnectionError):
        Retry(max_tries=None, delay=600, max_delay=600).call(
            func, retry_on=(ConnectionError,), stop=stop, on_retry=lambda n, exc, wait: waiting.set()
        )
    stopper.join(timeout=30)
    assert func.calls == 1
    assert time.monotonic() - start < 60  # generous: the 600 s wait was cut short


def test_a_stop_set_beforehand_allows_one_attempt_only():
    stop = threading.Event()
    stop.set()
    func = Flaky(10)
    with pytest.raises(ConnectionError):
        Retry(max_tries=None, delay=60).call(func, retry_on=(ConnectionError,), stop=stop)
    assert func.calls == 1


def test_wait_time_grows_by_backoff_up_to_max_delay_with_bounded_jitter():
    plain = Retry(delay=1, backoff=2, max_delay=5, jitter=0)
    assert [plain.wait_time(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]
    jittery = Retry(delay=1, backoff=2, max_delay=5, jitter=0.5)
    for n in range(1, 6):
        base = plain.wait_time(n)
        samples = [jittery.wait_time(n) for _ in range(200)]
        assert all(base <= s <= base * 1.5 for s in samples)
        assert max(samples) > base  # jitter is actually applied


@pytest.mark.parametrize("kwargs", [
    {"max_tries": 0}, {"delay": -1}, {"max_delay": -1}, {"backoff": 0.5}, {"jitter": 1.5}, {"jitter": -0.1},
    {"deadline": 0},
])
def test_invalid_policies_are_rejected(kwargs):
    with pytest.raises(ValueError):
        Retry(**kwargs)


def test_retry_is_an_immutable_value():
    policy = Retry()
    assert policy == Retry() and hash(policy) == hash(Retry())
    with pytest.raises(AttributeError):
        policy.delay = 5  # type: ignore[misc]
