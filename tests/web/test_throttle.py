"""The failed-login throttle: a sliding window per address, bounded in memory."""

from __future__ import annotations

import pytest

from celery_progress_mcp import ConfigError
from celery_progress_mcp.web import throttle as throttle_module
from celery_progress_mcp.web.throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_may_try_again_once_the_window_has_passed() -> None:
    clock = Clock()
    throttle = LoginThrottle(limit=2, window_s=60, monotonic=clock)
    throttle.failed("10.0.0.1")
    clock.now += 10
    assert throttle.retry_after_s("10.0.0.1") is None
    throttle.failed("10.0.0.1")
    assert throttle.retry_after_s("10.0.0.1") == 50  # until the first failure leaves the window
    assert throttle.retry_after_s("10.0.0.2") is None
    clock.now += 50
    # The first failure left the window; one remains, under the limit: it may try again.
    assert throttle.retry_after_s("10.0.0.1") is None
    throttle.failed("10.0.0.1")
    assert throttle.retry_after_s("10.0.0.1") == 10


def test_memory_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throttle_module, "MAX_TRACKED_ADDRESSES", 3)
    throttle = LoginThrottle(limit=1, monotonic=Clock())
    for number in range(5):
        throttle.failed(f"10.0.0.{number}")
    assert throttle.retry_after_s("10.0.0.0") is None  # forgotten, the longest quiet
    assert throttle.retry_after_s("10.0.0.4") is not None


@pytest.mark.parametrize(("limit", "window_s"), [(0, 60.0), (5, 0.0), (5, float("nan"))])
def test_limits_must_be_positive(limit: int, window_s: float) -> None:
    with pytest.raises(ConfigError):
        LoginThrottle(limit=limit, window_s=window_s)
