"""Outcome metrics for in-silico trials: glycaemic (consensus time in ranges, GMI, risk
indices, CVGA) and TCI performance (Varvel criteria). Vectorized over patients.

Glucose arrays are mg/dL, shape ``(N, T)`` (one row a patient, equally spaced samples) or
``(T,)``; NaN marks a missing reading and is left out of every statistic. Formulas and their
sources are given where each metric is computed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from openinfusion.errors import InputError

MG_DL_PER_MMOL_L = 18.016  # glucose, molar mass 180.16 g/mol

# Consensus bands (Battelino et al., Diabetes Care 2019;42:1593), mg/dL.
VERY_LOW, LOW, HIGH, VERY_HIGH = 54.0, 70.0, 180.0, 250.0

Array = NDArray[np.float64]


def _as_2d(bg: ArrayLike, field: str = "bg_mg_dl") -> Array:
    a = np.asarray(bg, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] == 0:
        raise InputError(field, str(a.shape), "must be a (patients, samples) array of readings")
    if np.any(np.isinf(a)) or np.any(a[~np.isnan(a)] < 0):
        raise InputError(field, "negative or infinite", "glucose readings must be >= 0 mg/dL")
    return a


def _percent(mask: NDArray[np.bool_], valid: NDArray[np.bool_]) -> Array:
    n = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, 100.0 * (mask & valid).sum(axis=1) / n, np.nan)


def time_in_ranges(bg: ArrayLike) -> dict[str, Array]:
    """Percent of readings per consensus band (Battelino 2019, table 1).

    Returns ``tir`` 70-180 (inclusive), ``tbr`` < 70, ``tbr2`` < 54, ``tar`` > 180,
    ``tar2`` > 250, ``titr`` 70-140 and the level-1 bands ``tbr1`` 54-69 and ``tar1`` 181-250.
    """
    g = _as_2d(bg)
    v = ~np.isnan(g)
    with np.errstate(invalid="ignore"):
        return {
            "tir": _percent((g >= LOW) & (g <= HIGH), v),
            "titr": _percent((g >= LOW) & (g <= 140.0), v),
            "tbr": _percent(g < LOW, v),
            "tbr2": _percent(g < VERY_LOW, v),
            "tbr1": _percent((g >= VERY_LOW) & (g < LOW), v),
            "tar": _percent(g > HIGH, v),
            "tar1": _percent((g > HIGH) & (g <= VERY_HIGH), v),
            "tar2": _percent(g > VERY_HIGH, v),
        }


def _risk(g: Array) -> tuple[Array, Array]:
    """Kovatchev low and high risk per reading: f(G) = 1.509 ((ln G)^1.084 - 5.381),
    r = 10 f^2, split by the sign of f (Kovatchev et al., Diabetes Care 1997;20:1655)."""
    # The transform is defined for G > 1 mg/dL; a model driven to 0 counts as 1 (extreme risk).
    with np.errstate(invalid="ignore"):
        f = 1.509 * (np.log(np.maximum(g, 1.0 + 1e-9)) ** 1.084 - 5.381)
    r = 10.0 * f * f
    return np.where(f < 0, r, 0.0), np.where(f > 0, r, 0.0)


def glycaemic_metrics(bg: ArrayLike, *, samples_per_day: int = 1440) -> list[dict[str, float]]:
    """Every standard glycaemic metric per patient (one dict each).

    - mean, SD (n-1) and %CV = 100 SD / mean (Battelino 2019);
    - GMI (%) = 3.31 + 0.02392 mean (Bergenstal et al., Diabetes Care 2018;41:2275);
    - LBGI/HBGI = mean over all readings of the low/high risk (Kovatchev 1998);
    - ADRR = mean over days of (max low risk + max high risk), days with >= 14 readings
      (Kovatchev et al., Diabetes Care 2006;29:2433);
    - GRI = 3.0 VLow + 2.4 Low + 1.6 VHigh + 0.8 High, capped at 100 (Klonoff, JDST 2023);
    - the consensus time-in-range percentages (:func:`time_in_ranges`).
    """
    g = _as_2d(bg)
    valid = ~np.isnan(g)
    n = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a patient with no reading: NaN
        mean = np.nanmean(g, axis=1)
        sd = np.where(n > 1, np.nanstd(g, axis=1, ddof=1), np.nan)
    ranges = time_in_ranges(g)
    rl, rh = _risk(np.where(valid, g, 112.5))
    lbgi = np.where(n > 0, (rl * valid).sum(axis=1) / np.maximum(n, 1), np.nan)
    hbgi = np.where(n > 0, (rh * valid).sum(axis=1) / np.maximum(n, 1), np.nan)
    adrr = _adrr(g, rl, rh, valid, samples_per_day)
    gri = np.minimum(
        100.0,
        3.0 * ranges["tbr2"] + 2.4 * ranges["tbr1"] + 1.6 * ranges["tar2"] + 0.8 * ranges["tar1"],
    )
    out = []
    for i in range(g.shape[0]):
        row = {
            "mean_mg_dl": float(mean[i]),
            "sd_mg_dl": float(sd[i]),
            "cv_percent": float(100.0 * sd[i] / mean[i]),
            "gmi_percent": float(3.31 + 0.02392 * mean[i]),
            "lbgi": float(lbgi[i]),
            "hbgi": float(hbgi[i]),
            "bgri": float(lbgi[i] + hbgi[i]),
            "adrr": float(adrr[i]),
            "gri": float(gri[i]),
            "min_mg_dl": float(np.nanmin(g[i])) if n[i] else float("nan"),
            "max_mg_dl": float(np.nanmax(g[i])) if n[i] else float("nan"),
            "readings": int(n[i]),
        }
        row.update({f"{k}_percent": float(v[i]) for k, v in ranges.items()})
        out.append(row)
    return out


def _adrr(g: Array, rl: Array, rh: Array, valid: Any, per_day: int) -> Array:
    days = g.shape[1] // per_day
    if days == 0:
        return np.full(g.shape[0], np.nan)
    cut = days * per_day
    shape = (g.shape[0], days, per_day)
    lr = np.where(valid[:, :cut], rl[:, :cut], 0.0).reshape(shape).max(axis=2)
    hr = np.where(valid[:, :cut], rh[:, :cut], 0.0).reshape(shape).max(axis=2)
    ok = valid[:, :cut].reshape(shape).sum(axis=2) >= 14
    total = np.where(ok, lr + hr, 0.0).sum(axis=1)
    count = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


# ---- CVGA -------------------------------------------------------------------------------------


def cvga(bg: ArrayLike) -> dict[str, Any]:
    """Control-variability grid analysis (Magni et al., JDST 2008;2:630).

    Per patient x = 2.5th percentile (clipped to >= 50), y = 97.5th percentile (clipped to
    <= 400); zones A (x > 90, y < 180), B (70-90 or 180-300), C, D, E by the grid in
    AID_REFERENCE §4.3. Returns the points, each patient's zone and the percent per zone.
    """
    g = _as_2d(bg)
    x = np.maximum(np.nanpercentile(g, 2.5, axis=1), 50.0)
    y = np.minimum(np.nanpercentile(g, 97.5, axis=1), 400.0)
    zones = [_cvga_zone(float(a), float(b)) for a, b in zip(x, y, strict=True)]
    letters = ["A", "B", "C", "D", "E"]
    counts = {z: sum(1 for zone in zones if zone.endswith(z)) for z in letters}
    return {
        "points": [
            {"min_mg_dl": float(a), "max_mg_dl": float(b)} for a, b in zip(x, y, strict=True)
        ],
        "zones": zones,
        "percent": {z: 100.0 * c / len(zones) for z, c in counts.items()},
    }


def _cvga_zone(x: float, y: float) -> str:
    """Zone of one point: x the low bound, y the high bound (mg/dL)."""
    col = 0 if x > 90 else (1 if x >= 70 else 2)  # 0: 90-110, 1: 70-90, 2: < 70
    row = 0 if y < 180 else (1 if y <= 300 else 2)  # 0: 110-180, 1: 180-300, 2: > 300
    table = [
        ["A", "Upper B", "Upper C"],
        ["Lower B", "B", "Upper D"],
        ["Lower C", "Lower D", "E"],
    ]
    return table[col][row]


# ---- TCI performance --------------------------------------------------------------------------


@dataclass(frozen=True)
class Varvel:
    """Performance of a concentration prediction (Varvel, Donoho & Shafer, J Pharmacokinet
    Biopharm 1992;20:63): medians over one patient's samples, in percent."""

    mdpe: float  # bias: median PE
    mdape: float  # inaccuracy: median |PE|
    divergence: float  # slope of |PE| against time, %/h
    wobble: float  # median |PE - MDPE|

    def as_dict(self) -> dict[str, float]:
        return {
            "mdpe_percent": self.mdpe,
            "mdape_percent": self.mdape,
            "divergence_percent_h": self.divergence,
            "wobble_percent": self.wobble,
        }


def varvel(measured: ArrayLike, predicted: ArrayLike, t_s: ArrayLike) -> Varvel:
    """Varvel criteria for one patient: PE = 100 (Cm - Cp) / Cp per sample; divergence is
    the least-squares slope of |PE| on time in hours."""
    cm = np.asarray(measured, dtype=np.float64)
    cp = np.asarray(predicted, dtype=np.float64)
    t = np.asarray(t_s, dtype=np.float64) / 3600.0
    if not cm.shape == cp.shape == t.shape or cm.ndim != 1 or len(cm) < 2:
        raise InputError("measured", str(cm.shape), "needs >= 2 samples matching predicted and t_s")
    if np.any(cp <= 0):
        raise InputError("predicted", "<= 0", "predicted concentrations must be > 0")
    pe = 100.0 * (cm - cp) / cp
    ape = np.abs(pe)
    mdpe = float(np.median(pe))
    slope = float(np.polyfit(t, ape, 1)[0]) if np.ptp(t) > 0 else float("nan")
    return Varvel(mdpe, float(np.median(ape)), slope, float(np.median(np.abs(pe - mdpe))))


__all__ = [
    "MG_DL_PER_MMOL_L",
    "Varvel",
    "cvga",
    "glycaemic_metrics",
    "time_in_ranges",
    "varvel",
]
