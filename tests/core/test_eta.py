"""ETA from the rate of progress: bias-corrected EMA, and the whole-run average at 0."""

from __future__ import annotations

import itertools

import pytest

from celery_progress_mcp.core.eta import EtaEstimator


def reference_ema_eta(samples: list[tuple[float, float]], alpha: float) -> float | None:
    """tqdm's rule, computed independently: EMA of increments, bias-corrected."""
    ema_dp = ema_dt = 0.0
    n = 0
    for (p0, t0), (p1, t1) in itertools.pairwise(samples):
        ema_dp = alpha * (p1 - p0) + (1 - alpha) * ema_dp
        ema_dt = alpha * (t1 - t0) + (1 - alpha) * ema_dt
        n += 1
    if n == 0:
        return None
    correction = 1 - (1 - alpha) ** n
    rate = (ema_dp / correction) / (ema_dt / correction)
    return (100 - samples[-1][0]) / rate


SAMPLES = [(0.0, 0.0), (10.0, 10.0), (30.0, 20.0), (35.0, 30.0), (60.0, 35.0)]


def test_the_first_sample_gives_no_estimate() -> None:
    assert EtaEstimator(0.3).observe(10.0, 5.0) is None


@pytest.mark.parametrize("alpha", [0.1, 0.3, 1.0])
def test_ema_estimate_matches_the_reference(alpha: float) -> None:
    estimator = EtaEstimator(alpha)
    eta = None
    for percentage, t in SAMPLES:
        eta = estimator.observe(percentage, t)
    assert eta == pytest.approx(reference_ema_eta(SAMPLES, alpha))


def test_smoothing_zero_uses_the_whole_run_average() -> None:
    estimator = EtaEstimator(0.0)
    eta = None
    for percentage, t in SAMPLES:
        eta = estimator.observe(percentage, t)
    rate = (60.0 - 0.0) / (35.0 - 0.0)
    assert eta == pytest.approx(40.0 / rate)


def test_smoothing_one_uses_the_latest_rate() -> None:
    estimator = EtaEstimator(1.0)
    for percentage, t in SAMPLES:
        eta = estimator.observe(percentage, t)
    assert eta == pytest.approx(40.0 / (25.0 / 5.0))


def test_no_progress_gives_no_estimate_and_done_gives_zero() -> None:
    estimator = EtaEstimator(0.3)
    estimator.observe(10.0, 0.0)
    assert estimator.observe(10.0, 5.0) is None
    assert estimator.observe(100.0, 6.0) == 0.0


def test_progress_going_backwards_starts_afresh() -> None:
    estimator = EtaEstimator(0.3)
    estimator.observe(50.0, 0.0)
    estimator.observe(60.0, 1.0)
    assert estimator.observe(5.0, 2.0) is None
    assert estimator.observe(15.0, 12.0) == pytest.approx(85.0)


def test_smoothing_outside_unit_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="smoothing"):
        EtaEstimator(1.5)
