"""Tests of vault.breaker: the circuit breaker's states, with a fake clock."""

from __future__ import annotations

import threading

import pytest

from tests.helpers.backends import FakeClock
from vault.cache import CircuitBreaker
from vault.errors import ConfigurationError


def test_opens_after_consecutive_failures_only() -> None:
    """A success resets the count; the threshold of consecutive failures opens it."""
    breaker = CircuitBreaker(3, 10, clock=FakeClock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()


def test_one_probe_after_the_back_off_then_close_or_reopen() -> None:
    """After reset_after one caller probes; failure reopens for another back-off; success
    closes."""
    clock = FakeClock()
    breaker = CircuitBreaker(1, 10, clock=clock)
    breaker.record_failure()
    clock.advance(9.9)
    assert not breaker.allow() and breaker.seconds_until_probe() == pytest.approx(0.1)
    clock.advance(0.1)
    assert breaker.allow() and breaker.state == "half-open"
    assert not breaker.allow()  # only one probe at a time
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.advance(10)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.failures == 0 and breaker.allow()


def test_a_lost_probe_is_replaced_after_the_back_off() -> None:
    """A probe that never reports back does not keep the breaker half-open forever."""
    clock = FakeClock()
    breaker = CircuitBreaker(1, 5, clock=clock)
    breaker.record_failure()
    clock.advance(5)
    assert breaker.allow() and not breaker.allow()
    clock.advance(5)
    assert breaker.allow()


def test_only_one_thread_probes() -> None:
    """Of many threads asking at once in half-open state, exactly one may probe."""
    clock = FakeClock()
    breaker = CircuitBreaker(1, 1, clock=clock)
    breaker.record_failure()
    clock.advance(1)
    answers: list[bool] = []
    barrier = threading.Barrier(16)

    def ask() -> None:
        barrier.wait()
        answers.append(breaker.allow())

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers.count(True) == 1


def test_reset_and_repr() -> None:
    """reset closes the breaker; repr shows state and counts."""
    breaker = CircuitBreaker(1, 10, clock=FakeClock())
    breaker.record_failure()
    assert "open" in repr(breaker)
    breaker.reset()
    assert breaker.state == "closed" and "failures=0/1" in repr(breaker)


@pytest.mark.parametrize("args", [(0, 1), (1, 0), (1.5, 1), (True, 1), (1, -1)])
def test_bad_settings_are_refused(args: tuple[object, object]) -> None:
    """A threshold below 1 or a non-positive back-off is refused."""
    with pytest.raises(ConfigurationError):
        CircuitBreaker(*args)  # type: ignore[arg-type]
