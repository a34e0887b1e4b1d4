"""Windowed maintenance features per pump and day, from daily telemetry.

Every feature at day ``d`` uses days up to ``d`` only (no look-ahead). Alarm rates are per
100 infusion-hours over the last 14 days, shrunk towards a typical fleet rate by a prior of
``PRIOR_H`` infusion-hours, so a pump with little use is not ranked on two alarms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from openinfusion.analytics.telemetry import DailyTelemetry, FloatArray

#: Feature names, in column order.
FEATURES = (
    "runtime_vs_first_month",  # ratio: recent battery run time / its first 30 days
    "runtime_vs_fleet",  # ratio: recent run time / fleet median of the same kind
    "runtime_trend",  # ratio: recent run time / run time 30 days earlier
    "occlusion_per_100h",
    "air_per_100h",
    "door_per_100h",
    "drive_effort",  # index, 1.0 = new drive at rated load
    "drive_effort_trend",  # change of the index over 30 days
    "shocks_30d",  # drops or shocks reported in 30 days
    "days_since_service",
)
RECENT_D = 7
RATE_WINDOW_D = 14
BASELINE_D = 30
TREND_D = 30
PRIOR_H = 50.0
#: Typical fleet alarm rates (per infusion-hour) the shrinkage pulls towards.
PRIOR_RATE = {"occlusion": 0.008, "air": 0.003, "door": 0.004}
#: A healthy pump's value of each feature (reasons are given against these).
HEALTHY = {
    "runtime_vs_first_month": 1.0,
    "runtime_vs_fleet": 1.0,
    "runtime_trend": 1.0,
    "occlusion_per_100h": 100 * PRIOR_RATE["occlusion"],
    "air_per_100h": 100 * PRIOR_RATE["air"],
    "door_per_100h": 100 * PRIOR_RATE["door"],
    "drive_effort": 1.0,
    "drive_effort_trend": 0.0,
    "shocks_30d": 0.0,
}


def _csum(x: FloatArray) -> FloatArray:
    out = np.zeros((x.shape[0], x.shape[1] + 1))
    np.cumsum(x, axis=1, out=out[:, 1:])
    return out


def _window(cs: FloatArray, end: np.ndarray, length: int) -> FloatArray:
    """Sum over days (end - length, end] for each end day (clipped at day 0)."""
    hi = end + 1
    lo = np.clip(hi - length, 0, None)
    return cs[:, hi] - cs[:, lo]


def _mean(values: FloatArray, end: np.ndarray, length: int) -> FloatArray:
    ok = ~np.isnan(values)
    total = _window(_csum(np.where(ok, values, 0.0)), end, length)
    count = _window(_csum(ok.astype(np.float64)), end, length)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


@dataclass(slots=True)
class FeatureTable:
    """Features of pumps × chosen days: ``values[p, k, f]`` for day ``days[k]``."""

    values: FloatArray
    days: np.ndarray

    def column(self, name: str) -> FloatArray:
        return self.values[:, :, FEATURES.index(name)]


def compute_features(tel: DailyTelemetry, days: np.ndarray | None = None) -> FeatureTable:
    """Features at each of ``days`` (default: every day) for every pump."""
    end = np.arange(tel.days) if days is None else np.asarray(days, dtype=np.int64)
    n = tel.pumps
    recent = _mean(tel.runtime_h, end, RECENT_D)
    # First month of the record: days 0..min(d, 29).
    first_end = np.minimum(end, BASELINE_D - 1)
    first = _mean(tel.runtime_h, first_end, BASELINE_D)
    earlier_end = end - TREND_D
    earlier = np.where(
        earlier_end >= 0, _mean(tel.runtime_h, np.clip(earlier_end, 0, None), RECENT_D), np.nan
    )
    fleet = np.full_like(recent, np.nan)
    kinds = np.array(tel.kinds)
    for kind in set(tel.kinds):
        rows = kinds == kind
        block = recent[rows]
        if np.isfinite(block).any():
            with np.errstate(all="ignore"):
                fleet[rows] = np.nanmedian(np.where(np.isfinite(block), block, np.nan), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        vs_first = recent / first
        vs_fleet = recent / fleet
        trend = recent / earlier
    hours = _window(_csum(tel.infusion_h), end, RATE_WINDOW_D)

    def rate(counts: FloatArray, key: str) -> FloatArray:
        c = _window(_csum(counts), end, RATE_WINDOW_D)
        return 100.0 * (c + PRIOR_RATE[key] * PRIOR_H) / (hours + PRIOR_H)

    effort = _mean(tel.effort, end, RECENT_D)
    effort_before = np.where(
        earlier_end >= 0, _mean(tel.effort, np.clip(earlier_end, 0, None), RECENT_D), np.nan
    )
    shocks = _window(_csum(tel.shocks), end, 30)
    since_service = tel.service_age_d[:, None] + end[None, :]
    columns = [
        vs_first,
        vs_fleet,
        trend,
        rate(tel.occlusion, "occlusion"),
        rate(tel.air, "air"),
        rate(tel.door, "door"),
        effort,
        effort - effort_before,
        shocks,
        np.broadcast_to(since_service, (n, len(end))),
    ]
    return FeatureTable(np.stack(columns, axis=2).astype(np.float64), end)
