"""The oref0 glucose status of N patients whose CGM readings share one time grid (a trial's
or a ward's), with NumPy across the patients: the batch twin of
:func:`.glucose.get_last_glucose` on the records :func:`.inputs.glucose_records` makes.

Glucose mg/dL, deltas mg/dL per 5 min, times ms since the epoch. Per patient: the newest
reading is "now"; each older reading above 38 mg/dL gives (now - then) / minutes x 5, and
the averages over 2.5-7.5, 2.5-17.5 and 17.5-42.5 min are summed in the scalar code's order
(newest first), so the doubles are the same. A patient with a second reading within 2.5 min
of the newest (which the scalar code averages into "now") is marked not ``exact``: decide
that one with the scalar function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from openinfusion.control.aid.oref._vec import BoolArray, FloatArray, jround


@dataclass(slots=True)
class GlucoseStatusBatch:
    """The status fields of each patient (N,), as :func:`.glucose.get_last_glucose` gives
    them (``noise`` is NaN: the records carry none); ``exact`` False where the caller must
    use the scalar function, ``found`` False where a patient has no reading."""

    glucose: FloatArray
    delta: FloatArray
    short_avgdelta: FloatArray
    long_avgdelta: FloatArray
    date: FloatArray
    found: BoolArray
    exact: BoolArray


def glucose_status_batch(t_ms: FloatArray, bg_mg_dl: FloatArray) -> GlucoseStatusBatch:
    """Status from readings ``bg_mg_dl`` (N, T) at shared times ``t_ms`` (T,), distinct;
    NaN (or 0) where a patient has no reading."""
    bg = np.atleast_2d(np.asarray(bg_mg_dl, dtype=float))
    n = bg.shape[0]
    order = np.argsort(-np.asarray(t_ms, dtype=float), kind="stable")  # newest first
    times = np.asarray(t_ms, dtype=float)[order]
    values = bg[:, order]
    usable = ~np.isnan(values) & (values != 0.0)
    found = usable.any(axis=1)
    first = np.argmax(usable, axis=1)
    rows = np.arange(n)
    now_bg = np.where(found, values[rows, first], np.nan)
    now_ms = np.where(found, times[first], np.nan)
    sums = {name: np.zeros(n) for name in ("last", "short", "long")}
    counts = {name: np.zeros(n) for name in ("last", "short", "long")}
    exact = np.ones(n, dtype=bool)
    # Readings more than 43 min older than every patient's "now" fall in no average.
    oldest = np.nanmin(now_ms, initial=np.inf) - 43 * 60_000.0
    columns = int(np.count_nonzero(times > oldest))
    with np.errstate(all="ignore"):
        for j in range(columns):
            then = values[:, j]
            counted = usable[:, j] & (j > first) & (then > 38)
            minutes_ago = jround((now_ms - times[j]) / (1000 * 60))
            change = np.where(minutes_ago == 0, np.nan, (now_bg - then) / minutes_ago) * 5
            exact &= ~(counted & (minutes_ago > -2) & (minutes_ago < 2.5))
            short = counted & (minutes_ago > 2.5) & (minutes_ago < 17.5)
            buckets = {
                "short": short,
                "last": short & (minutes_ago < 7.5),
                "long": counted & (minutes_ago > 17.5) & (minutes_ago < 42.5),
            }
            for name, mask in buckets.items():
                sums[name] = np.where(mask, sums[name] + change, sums[name])
                counts[name] += mask
        means = {name: np.where(counts[name] > 0, sums[name] / counts[name], 0.0) for name in sums}
    return GlucoseStatusBatch(
        glucose=jround(now_bg * 100) / 100,
        delta=jround(means["last"] * 100) / 100,
        short_avgdelta=jround(means["short"] * 100) / 100,
        long_avgdelta=jround(means["long"] * 100) / 100,
        date=now_ms,
        found=found,
        exact=exact,
    )


def status_dict(batch: GlucoseStatusBatch, i: int, device: str) -> dict[str, object]:
    """Patient i's status as :func:`.glucose.get_last_glucose` returns it (for the scalar
    function and the reason text); ``device`` as the records named it."""
    return {
        "delta": float(batch.delta[i]),
        "glucose": float(batch.glucose[i]),
        "noise": float("nan"),
        "short_avgdelta": float(batch.short_avgdelta[i]),
        "long_avgdelta": float(batch.long_avgdelta[i]),
        "date": float(batch.date[i]),
        "last_cal": 0,
        "device": device,
    }
