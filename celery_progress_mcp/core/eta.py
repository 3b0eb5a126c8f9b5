"""ETA from the rate of progress: a bias-corrected exponential moving average.

As tqdm does, the increments of progress and of time are smoothed separately
and their ratio is the rate; dividing by ``1 - (1 - alpha) ** n`` removes the
bias towards the zero the averages start from. ``smoothing=0`` uses the
whole-run average rate instead.
"""

from __future__ import annotations

__all__ = ["EtaEstimator"]

_FULL_PERCENT = 100.0


class EtaEstimator:
    __slots__ = (
        "_calls",
        "_ema_dp",
        "_ema_dt",
        "_first_pct",
        "_first_t",
        "_last_eta_s",
        "_last_pct",
        "_last_t",
        "smoothing",
    )

    def __init__(self, smoothing: float = 0.3) -> None:
        if not 0.0 <= smoothing <= 1.0:
            raise ValueError(f"smoothing must be within [0, 1], got {smoothing!r}")
        self.smoothing = smoothing
        self._reset()

    def _reset(self) -> None:
        self._first_pct: float | None = None
        self._first_t = 0.0
        self._last_pct = 0.0
        self._last_t = 0.0
        self._ema_dp = 0.0
        self._ema_dt = 0.0
        self._calls = 0
        self._last_eta_s: float | None = None

    def observe(self, percentage: float, t_s: float) -> float | None:
        """Record ``percentage`` at monotonic time ``t_s``; return the ETA in seconds."""
        if self._first_pct is None or percentage < self._last_pct:
            # First sample, or progress went backwards: start measuring afresh.
            self._reset()
            self._first_pct = self._last_pct = percentage
            self._first_t = self._last_t = t_s
            return None
        dt = t_s - self._last_t
        if dt <= 0.0:
            return self._last_eta_s
        dp = percentage - self._last_pct
        self._last_pct, self._last_t = percentage, t_s
        rate = self._rate(dp, dt, percentage, t_s)
        if percentage >= _FULL_PERCENT:
            self._last_eta_s = 0.0
        elif rate <= 0.0:
            self._last_eta_s = None
        else:
            self._last_eta_s = (_FULL_PERCENT - percentage) / rate
        return self._last_eta_s

    def _rate(self, dp: float, dt: float, percentage: float, t_s: float) -> float:
        if self.smoothing == 0.0:
            assert self._first_pct is not None
            elapsed = t_s - self._first_t
            return (percentage - self._first_pct) / elapsed if elapsed > 0 else 0.0
        alpha = self.smoothing
        self._ema_dp = alpha * dp + (1.0 - alpha) * self._ema_dp
        self._ema_dt = alpha * dt + (1.0 - alpha) * self._ema_dt
        self._calls += 1
        # The bias correction divides both averages by the same factor, so it
        # cancels in their ratio; it matters only for reading either alone.
        return self._ema_dp / self._ema_dt if self._ema_dt > 0 else 0.0
