"""The batch forms of oref0's ``setTempBasal`` and micro-bolus sizing (the twins of
:func:`.temp_basal.set_temp_basal` and :func:`.smb.micro_bolus`), for N cases at once.
Insulin in U, rates U/h, durations min, glucose mg/dL.
"""

from __future__ import annotations

import numpy as np

from openinfusion.control.aid.oref._vec import BoolArray, FloatArray, round_basal, round_to


def set_temp(
    mask: BoolArray,
    rate_u_h: FloatArray,
    duration_min: FloatArray,
    cap: FloatArray,
    f: dict[str, FloatArray],
    skip_neutral: BoolArray,
    out_rate: FloatArray,
    out_duration: FloatArray,
    has_rate: BoolArray,
) -> None:
    """The reference's ``setTempBasal`` for the cases in ``mask``: clamp to [0, max safe
    basal (``cap``)], round for the pump, keep a running temp within ±20 %, handle neutral
    temps."""
    rate = np.where(rate_u_h < 0, 0.0, np.where(rate_u_h > cap, cap, rate_u_h))
    suggested = round_basal(rate, f["per_unit"])
    running_min, running_rate = f["temp_min"], f["temp_rate"]
    keep = (
        (running_min > duration_min - 10)
        & (running_min <= 120)
        & (suggested <= running_rate * 1.2)
        & (suggested >= running_rate * 0.8)
        & (duration_min > 0)
    )
    neutral_skip = ~keep & (suggested == f["current_basal"]) & skip_neutral
    cancel = mask & neutral_skip & (running_min > 0)
    setting = mask & ~keep & ~neutral_skip
    out_rate[setting] = suggested[setting]
    out_duration[setting] = duration_min[setting]
    out_rate[cancel] = 0.0
    out_duration[cancel] = 0.0
    has_rate |= setting | cancel


def micro_bolus(
    f: dict[str, FloatArray],
    minutes_unset: BoolArray,
    insulin_req: FloatArray,
    iob: FloatArray,
    meal_cob: FloatArray,
    basal: FloatArray,
    target_bg: FloatArray,
    naive_eventual: FloatArray,
    min_iob_pred_bg: FloatArray,
    sens: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """SMB size (U), and the zero/low temp's duration (min, 0 for none) and rate (U/h):
    :func:`.smb.micro_bolus` for every case."""
    current_basal = f["current_basal"]
    meal_insulin_req = round_to(meal_cob / f["carb_ratio"], 3)
    by_uam = ~minutes_unset & (iob > meal_insulin_req) & (iob > 0)
    minutes = np.where(by_uam, f["uam_smb_minutes"], f["smb_minutes"])
    max_bolus = round_to(current_basal * minutes / 60, 1)
    increment = f["bolus_increment"]
    steps_per_unit = 1 / increment
    bolus = np.floor(np.minimum(insulin_req / 2, max_bolus) * steps_per_unit) / steps_per_unit
    worst_case = (target_bg - (naive_eventual + min_iob_pred_bg) / 2) / sens
    duration = round_to(60 * worst_case / current_basal)
    duration = np.where((insulin_req > 0) & (bolus < increment), 0.0, duration)
    short = ~(duration <= 0) & ~(duration >= 30)
    low_rate = np.where(short, round_to(basal * duration / 30, 2), 0.0)
    duration = np.where(
        duration <= 0,
        0.0,
        np.where(duration >= 30, np.minimum(60, np.maximum(0, round_to(duration / 30) * 30)), 30.0),
    )
    return bolus, duration, low_rate
