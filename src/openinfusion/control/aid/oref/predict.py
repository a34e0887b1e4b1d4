"""The four 4-hour glucose predictions of oref0 (IOB, COB, UAM, zero-temp) and the minima
and guards taken from them (npm ``oref0`` 0.7.1, determine-basal prediction loop; see
AID_REFERENCE.md §2.3). Glucose in mg/dL, one point per 5 min, impacts in mg/dL/5 min.

- IOB: insulin effect plus the current carb impact ``ci`` decaying to 0 over 60 min.
- ZT: insulin effect assuming a zero temp from now, no deviation.
- COB: insulin plus ``ci`` decaying linearly over ``cid`` steps, plus carbs not yet seen
  absorbing as a triangle peaking at half of ``remaining_ca_time_h``.
- UAM: insulin plus the unexplained impact ``uci`` falling at the deviation slope, no
  slower than a linear fall over 3 h.

The reference keeps computing past the 48th point without storing it: the extra points
still count for the minima and the "last" values, and so do they here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from openinfusion.control.aid.oref._js import NAN, jdiv, jmax, jmin, jround, num, truthy

POINTS = 48  # 4 h of 5-min points, the first being now
_IOB_WAIT_POINTS = 18  # minIOBPredBG only after 90 min (insulin peak plus delivery delay)
_UAM_WAIT_POINTS = 12  # minUAMPredBG only after 60 min
_DEVIATION_DECAY_POINTS = 12  # IOB curve: deviation fades over 60 min
_UAM_MAX_DECAY_POINTS = 36  # UAM impact fades over at most 3 h


@dataclass(slots=True)
class Predictions:
    """Raw (unrounded) curves and the running extremes the dosing rules use."""

    iob: list[float]
    cob: list[float]
    uam: list[float]
    zt: list[float]
    min_iob_pred: float
    min_cob_pred: float
    min_uam_pred: float
    min_iob_guard: float
    min_cob_guard: float
    min_uam_guard: float
    min_zt_guard: float
    max_cob_pred: float
    last_iob: float
    last_cob: float
    last_uam: float


def predict(
    ticks: Sequence[Mapping[str, Any]],
    bg: float,
    eventual_bg: float,
    sens: float,
    ci: float,
    uci: float,
    cid: float,
    remaining_ca_time_h: float,
    remaining_ci_peak: float,
    slope_from_deviations: float,
    enable_uam: bool,
) -> Predictions:
    """Run the prediction over the IOB ticks (each with ``activity`` U/min and
    ``iobWithZeroTemp.activity``). A tick without ``iobWithZeroTemp`` ends the curves there,
    as the reference's exception does; on the first tick it is an error (ValueError)."""
    iob = [bg]
    cob = [bg]
    uam = [bg]
    zt = [bg]
    min_iob_pred = min_cob_pred = min_uam_pred = 999.0
    min_iob_guard = min_cob_guard = min_uam_guard = min_zt_guard = 999.0
    max_iob_pred = bg
    max_cob_pred = bg
    iob_pred = eventual_bg
    cob_pred = uam_pred = NAN
    carbs_active = truthy(cid) or remaining_ci_peak > 0
    ci_positive = jmax(0, ci)
    ci_span = jmax(cid * 2, 1)
    ca_points = remaining_ca_time_h * 12
    ca_half_points = remaining_ca_time_h / 2 * 12
    for index, tick in enumerate(ticks):
        zero_temp = tick.get("iobWithZeroTemp")
        if not isinstance(zero_temp, Mapping):
            if index == 0:
                raise ValueError("iob_data[0] has no iobWithZeroTemp")
            break
        pred_bgi = jround(-num(tick.get("activity")) * sens * 5 * 100) / 100
        pred_zt_bgi = jround(-num(zero_temp.get("activity")) * sens * 5 * 100) / 100
        n = len(iob)
        pred_dev = ci * (1 - jmin(1, n / _DEVIATION_DECAY_POINTS))
        iob_pred = iob[-1] + pred_bgi + pred_dev
        zt_pred = zt[-1] + pred_zt_bgi
        n = len(cob)
        pred_ci = jmax(0, ci_positive * (1 - n / ci_span))
        intervals = jmin(n, ca_points - n)
        remaining_ci = jmax(0, jdiv(intervals, ca_half_points) * remaining_ci_peak)
        falling_dev = jmin(0, pred_dev)
        cob_pred = cob[-1] + pred_bgi + falling_dev + pred_ci + remaining_ci
        n = len(uam)
        uci_slope = jmax(0, uci + n * slope_from_deviations)
        uci_linear = jmax(0, uci * (1 - n / _UAM_MAX_DECAY_POINTS))
        uam_pred = uam[-1] + pred_bgi + falling_dev + jmin(uci_slope, uci_linear)
        if len(iob) < POINTS:
            iob.append(iob_pred)
        if len(cob) < POINTS:
            cob.append(cob_pred)
        if len(uam) < POINTS:
            uam.append(uam_pred)
        if len(zt) < POINTS:
            zt.append(zt_pred)
        if cob_pred < min_cob_guard:
            min_cob_guard = jround(cob_pred)
        if uam_pred < min_uam_guard:
            min_uam_guard = jround(uam_pred)
        if iob_pred < min_iob_guard:
            min_iob_guard = jround(iob_pred)
        if zt_pred < min_zt_guard:
            min_zt_guard = jround(zt_pred)
        if len(iob) > _IOB_WAIT_POINTS and iob_pred < min_iob_pred:
            min_iob_pred = jround(iob_pred)
        max_iob_pred = max(max_iob_pred, iob_pred)
        if carbs_active and len(cob) > _IOB_WAIT_POINTS and cob_pred < min_cob_pred:
            min_cob_pred = jround(cob_pred)
        # The reference compares the COB point with the IOB maximum here (kept as is).
        if carbs_active and cob_pred > max_iob_pred:
            max_cob_pred = cob_pred
        if enable_uam and len(uam) > _UAM_WAIT_POINTS and uam_pred < min_uam_pred:
            min_uam_pred = jround(uam_pred)
    return Predictions(
        iob,
        cob,
        uam,
        zt,
        min_iob_pred,
        min_cob_pred,
        min_uam_pred,
        min_iob_guard,
        min_cob_guard,
        min_uam_guard,
        min_zt_guard,
        max_cob_pred,
        iob_pred,
        cob_pred,
        uam_pred,
    )
