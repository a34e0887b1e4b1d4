"""oref0 ``determine-basal`` for N cases at once, with NumPy across the cases.

The batch twin of :func:`~openinfusion.control.aid.oref.determine_basal`: the same stages
(unusable CGM, pump-history checks, targets and sensitivity, carb model, the four curves,
the blend, carbs required, the dosing rules, micro-bolus sizing, the set-temp rule and pump
rounding), each a handful of array operations, the rules' branches as boolean masks. Every
number is the double the scalar function gives on the same case: the arithmetic keeps its
order of operations and its JavaScript rounding (:mod:`._vec`).

The reference's input errors (no basal, no target, a short IOB array, no eventual BG) are
answered in the batch too (:attr:`Branch.INPUT_ERROR`, :attr:`Branch.NO_EVENTUAL_BG`).
Cases the arrays do not express (see :mod:`.batch_inputs`), and cases whose IOB, BG, ISF
or carb impact is not a finite number, are decided by the scalar function, counted in
:attr:`BatchResult.fallback_count`, and their numbers put in the same arrays. The
``reason`` text is not built in the batch: :meth:`BatchResult.decision` materialises one
case's full result on demand (:mod:`.batch_result`), numbers from the arrays and the text
from the scalar function run on that case. Stages: curves and blend in
:mod:`.batch_predict`, set-temp and micro-bolus in :mod:`.batch_dosing`.

Units: glucose mg/dL (the display fields in mmol/L when the profile asks, see ``mmol``),
insulin U, rates U/h, durations min, carbs g, times ms since the epoch.
"""

from __future__ import annotations

import numpy as np

from openinfusion.control.aid.oref._vec import (
    BoolArray,
    FloatArray,
    first_true,
    py_min,
    round_basal,
    round_to,
    trailing_run,
    truthy,
)
from openinfusion.control.aid.oref._vec import jround as vround
from openinfusion.control.aid.oref.batch_dosing import micro_bolus, set_temp
from openinfusion.control.aid.oref.batch_inputs import ERROR_NO_BASAL, BatchInputs
from openinfusion.control.aid.oref.batch_predict import blend_batch, predict_batch
from openinfusion.control.aid.oref.batch_result import (
    CURVES,
    NUMERIC_FIELDS,
    BatchResult,
    Branch,
    fill_fallback,
)
from openinfusion.control.aid.oref.predict import POINTS

__all__ = ["CURVES", "NUMERIC_FIELDS", "BatchResult", "Branch", "determine_basal_batch"]

_STEPS_2H = 24  # 5-min steps to bring BG to target in 2 h
_NORMAL_TARGET = 100.0
_MINUTES_NO_LOW = 240


def _display(values: FloatArray, mmol: BoolArray) -> FloatArray:
    """The reference's ``convert_bg`` as a number: whole mg/dL, or mmol/L to 0.1."""
    out: FloatArray = np.where(mmol, round_to(values / 18, 1), round_to(values))
    return out


def _clip_round(curve: FloatArray) -> FloatArray:
    """Displayed points: whole mg/dL within 39-401 (NaN stays NaN)."""
    out: FloatArray = curve + 0.5
    np.floor(out, out=out)
    np.clip(out, 39.0, 401.0, out=out)
    return out


def determine_basal_batch(inputs: BatchInputs) -> BatchResult:
    """All N decisions of ``inputs`` (see the module docstring)."""
    with np.errstate(all="ignore"):
        return _decide(inputs)


def _decide(inputs: BatchInputs) -> BatchResult:
    f, g = inputs.floats, inputs.flags
    n = inputs.n
    now = f["now_ms"]
    current_basal = f["current_basal"]
    per_unit = f["per_unit"]
    basal0 = round_basal(current_basal, per_unit)
    bg, delta = f["bg"], f["delta"]
    short_avg, long_avg = f["short_avg"], f["long_avg"]
    temp_rate, temp_min = f["temp_rate"], f["temp_min"]
    min_delta = np.minimum(delta, short_avg)
    min_avg_delta = np.minimum(short_avg, long_avg)
    max_delta = np.maximum(np.maximum(delta, short_avg), long_avg)
    branch = np.zeros(n, dtype=np.int8)
    out_rate = np.full(n, np.nan)
    out_duration = np.full(n, np.nan)
    has_rate = np.zeros(n, dtype=bool)
    fallback = g["fallback"] | ~np.isfinite(now)

    # --- Unusable CGM.
    min_ago = round_to((now - f["bg_time_ms"]) / 60 / 1000, 1)
    error_code = (bg <= 10) | (bg == 38) | (f["noise"] >= 3)
    out_of_time = (min_ago > 12) | (min_ago < -5)
    too_flat = (
        (bg > 60)
        & (delta == 0)
        & (short_avg > -1)
        & (short_avg < 1)
        & (long_avg > -1)
        & (long_avg < 1)
        & ~g["fake_cgm"]
    )
    input_error = f["error_code"]
    unusable = ~fallback & ~(input_error == ERROR_NO_BASAL) & (error_code | out_of_time | too_flat)
    cgm_high = unusable & (temp_rate > basal0)
    cgm_zero = unusable & ~cgm_high & (temp_rate == 0) & (temp_min > 30)
    branch[cgm_high] = Branch.CGM_REPLACE_HIGH_TEMP
    branch[cgm_zero] = Branch.CGM_SHORTEN_ZERO_TEMP
    branch[unusable & ~cgm_high & ~cgm_zero] = Branch.CGM_NOTHING
    out_rate[cgm_high] = basal0[cgm_high]
    out_rate[cgm_zero] = 0.0
    out_duration[cgm_high | cgm_zero] = 30.0
    has_rate |= cgm_high | cgm_zero
    answered_error = ~fallback & ~unusable & ~np.isnan(input_error)
    branch[answered_error] = Branch.INPUT_ERROR
    live = ~fallback & ~unusable & ~answered_error

    # --- Targets and sensitivity.
    min_bg, max_bg = f["min_bg"], f["max_bg"]
    target_bg = (min_bg + max_bg) / 2
    temp_target = g["temp_target"]
    by_temp_target = (g["raises_sensitivity"] & temp_target & (target_bg > _NORMAL_TARGET)) | (
        g["lowers_sensitivity"] & temp_target & (target_bg < _NORMAL_TARGET)
    )
    autosens_max = f["autosens_max"]
    c = f["half_basal_target"] - _NORMAL_TARGET
    tt_ratio = np.where(
        c * (c + target_bg - _NORMAL_TARGET) <= 0.0,
        autosens_max,
        c / (c + target_bg - _NORMAL_TARGET),
    )
    tt_ratio = round_to(np.minimum(tt_ratio, autosens_max), 2)
    has_autosens = g["has_autosens"]
    as_ratio = f["autosens_ratio"]
    ratio = np.where(by_temp_target, tt_ratio, np.where(has_autosens, as_ratio, np.nan))
    has_ratio = by_temp_target | (has_autosens & ~np.isnan(as_ratio))
    basal = np.where(truthy(ratio), round_basal(current_basal * ratio, per_unit), basal0)
    moved = (
        ~temp_target
        & has_autosens
        & (
            (g["sens_raises_target"] & (as_ratio < 1))
            | (g["resist_lowers_target"] & (as_ratio > 1))
        )
    )
    min_bg = np.where(moved, round_to((min_bg - 60) / as_ratio) + 60, min_bg)
    max_bg = np.where(moved, round_to((max_bg - 60) / as_ratio) + 60, max_bg)
    target_bg = np.where(
        moved, np.maximum(80, round_to((target_bg - 60) / as_ratio) + 60), target_bg
    )
    noisy = f["noise"] >= 2
    multiplier = np.maximum(1.1, f["noisy_multiplier"])
    min_bg = np.where(noisy, round_to(np.minimum(200, min_bg * multiplier)), min_bg)
    target_bg = np.where(noisy, round_to(np.minimum(200, target_bg * multiplier)), target_bg)
    max_bg = np.where(noisy, round_to(np.minimum(200, max_bg * multiplier)), max_bg)
    threshold = min_bg - 0.5 * (min_bg - 40)
    profile_sens = f["sens"]
    sens = np.where(has_autosens, round_to(profile_sens / ratio, 1), profile_sens)

    # --- Pump history against the running temp.
    iob = f["iob_now"]
    has_last_temp = g["has_last_temp"]
    last_temp_age = np.where(has_last_temp, round_to((now - f["last_temp_ms"]) / 60000), 0.0)
    mismatch = (
        live
        & has_last_temp
        & g["microbolus"]
        & (temp_rate != f["last_temp_rate"])
        & (last_temp_age > 10)
        & truthy(temp_min)
    )
    ended = (
        live
        & has_last_temp
        & ~mismatch
        & (temp_min > 0)
        & (last_temp_age - f["last_temp_min"] > 5)
        & (last_temp_age > 10)
    )
    branch[mismatch] = Branch.TEMP_RATE_MISMATCH
    branch[ended] = Branch.TEMP_ENDED
    cancel = mismatch | ended
    req_rate = np.full(n, np.nan)  # what each rule asks setTempBasal for
    req_duration = np.full(n, 30.0)
    req_rate[cancel] = 0.0
    req_duration[cancel] = 0.0
    live &= ~cancel

    # --- BGI, deviation, eventual BG.
    activity_t = inputs.activity
    bgi = round_to(-activity_t[0] * sens * 5, 2)
    deviation = round_to(6 * (min_delta - bgi))
    deviation = np.where(deviation < 0, round_to(6 * (min_avg_delta - bgi)), deviation)
    deviation = np.where(deviation < 0, round_to(6 * (long_avg - bgi)), deviation)
    naive_eventual = np.where(
        iob > 0,
        round_to(bg - iob * sens),
        round_to(bg - iob * np.minimum(sens, profile_sens)),
    )
    eventual = naive_eventual + deviation
    expected_delta = round_to(bgi + (target_bg - eventual) / _STEPS_2H, 1)

    meal_cob, carbs = f["meal_cob"], f["carbs"]
    enable_uam = g["enable_uam"]
    enable_smb = (
        g["microbolus"]
        & ~(~g["allow_smb_high_tt"] & temp_target & (target_bg > 100))
        & ~(g["bw_found"] & g["a52_false"])
        & (
            g["smb_always"]
            | (g["smb_with_cob"] & truthy(meal_cob))
            | (g["smb_after_carbs"] & truthy(carbs))
            | (g["smb_with_temptarget"] & temp_target & (target_bg < 100))
            | (g["smb_high_bg"] & (bg >= f["high_bg_target"]))
        )
    )

    # --- Carb model (carbs.py).
    ci = round_to(min_delta - bgi, 1)
    uci = ci
    csf = sens / f["carb_ratio"]
    max_ci = round_to(30.0 * csf * 5 / 60, 1)
    ci = py_min(ci, max_ci)
    carbs_entered = truthy(carbs)
    ca_time_min_h = np.where(truthy(ratio), 3.0 / ratio, 3.0)
    ca_time_min_h = np.where(
        carbs_entered, np.maximum(ca_time_min_h, meal_cob / 20.0), ca_time_min_h
    )
    last_carb_age = round_to((now - f["last_carb_ms"]) / 60000)
    ca_time_h = np.where(
        carbs_entered, round_to(ca_time_min_h + 1.5 * last_carb_age / 60, 1), ca_time_min_h
    )
    total_ci = np.maximum(0, ci / 5 * 60 * ca_time_h / 2)
    total_ca = total_ci / csf
    remaining = np.maximum(0, meal_cob - total_ca - carbs * (1 - f["carbs_fraction"]))
    remaining = np.minimum(f["carbs_cap"], remaining)
    ci_peak = remaining * csf * 5 / 60 / (ca_time_h / 2)
    slope = np.minimum(round_to(f["slope_max"], 2), -round_to(f["slope_min"], 2) / 3)
    cid = np.where(
        ci == 0, 0.0, np.minimum(ca_time_h * 60 / 5 / 2, np.maximum(0, meal_cob * csf / ci))
    )
    carbs_active = truthy(cid) | (ci_peak > 0)
    cob_shown = (meal_cob > 0) & ((ci > 0) | (ci_peak > 0))

    # No eventual BG is the reference's error. Other cases whose IOB, BG, ISF or carb
    # impact is not a finite number go to the scalar function. A NaN carb time (carbs
    # without COB) stays: it only makes the COB curve NaN, here as there.
    no_eventual = live & np.isnan(eventual)
    branch[no_eventual] = Branch.NO_EVENTUAL_BG
    live &= ~no_eventual
    finite = (
        np.isfinite(inputs.activity).all(axis=0)
        & np.isfinite(inputs.zt_activity).all(axis=0)
        & np.isfinite(bg)
        & np.isfinite(eventual)
        & np.isfinite(sens)
        & np.isfinite(ci)
        & (ca_time_h != 0)
        & ~np.isinf(ca_time_h)
    )
    fallback |= live & ~finite
    live &= finite
    ticks = np.where(np.isfinite(f["ticks"]), f["ticks"], POINTS).astype(np.intp)

    # --- Predictions, displayed curves.
    pred = predict_batch(
        activity_t,
        inputs.zt_activity,
        bg,
        sens,
        ci,
        uci,
        cid,
        ca_time_h,
        ci_peak,
        slope,
        enable_uam,
        carbs_active | cob_shown,
        carbs_active,
        ticks,
    )
    shown = _clip_round(pred.stacked[:POINTS])  # [ZT | IOB | COB | UAM], (48, 4N)
    zt_curve = shown[:, :n]
    iob_curve = shown[:, n : 2 * n]
    cob_curve = shown[:, 2 * n : 3 * n]
    uam_curve = shown[:, 3 * n :]
    # Trailing repeats are dropped down to 13 points: pairs (j, j + 1) from j = 12 on.
    flat = POINTS - trailing_run(shown[12:-1, n:] == shown[13:, n:])  # [IOB | COB | UAM]
    iob_len = flat[:n]
    cob_len = flat[n : 2 * n]
    uam_len = flat[2 * n :]
    rising = (zt_curve[6:-1] < zt_curve[7:]) & (zt_curve[7:] > target_bg)
    zt_len = POINTS - trailing_run(rising)
    for case in np.flatnonzero(ticks < POINTS).tolist():  # curves that end early
        end = int(ticks[case]) + 1
        iob_len[case] = _flat_tail_len(iob_curve[:end, case].tolist())
        cob_len[case] = _flat_tail_len(cob_curve[:end, case].tolist())
        uam_len[case] = _flat_tail_len(uam_curve[:end, case].tolist())
        zt_len[case] = _zt_len(zt_curve[:end, case].tolist(), float(target_bg[case]))
    shown_last = np.minimum(ticks, POINTS - 1)
    uam_shown = ((ci > 0) | (ci_peak > 0)) & enable_uam
    cases = np.arange(n)
    last_cob = cob_curve[shown_last, cases]
    last_uam = uam_curve[shown_last, cases]
    eventual = np.where(cob_shown, np.maximum(eventual, last_cob), eventual)
    eventual = np.where(uam_shown & truthy(last_uam), np.maximum(eventual, last_uam), eventual)

    blended = blend_batch(
        pred,
        bg,
        meal_cob,
        carbs,
        carbs_entered,
        carbs_active,
        enable_uam,
        threshold,
        target_bg,
    )
    min_pred, min_guard = blended.min_pred_bg, blended.min_guard_bg

    # --- Carbs required.
    carbs_req_bg = np.where(
        naive_eventual < 40, np.minimum(min_guard, naive_eventual), naive_eventual
    )
    bg_undershoot = threshold - carbs_req_bg
    no_low = _MINUTES_NO_LOW // 5
    below = first_true(shown[:, n : 3 * n] < np.tile(threshold, 2), no_low)  # [IOB | COB]
    minutes_above = 5.0 * np.where(cob_shown, below[n:], below[:n])
    enable_smb &= ~(min_guard < threshold)
    enable_smb &= ~(max_delta > f["max_delta_fraction"] * bg)
    zero_temp_effect = current_basal * sens * minutes_above / 60
    cob_for_carbs_req = np.maximum(0, meal_cob - 0.25 * carbs)
    carbs_req = vround((bg_undershoot - zero_temp_effect) / csf - cob_for_carbs_req)
    has_carbs_req = (
        live & ~g["clock_error"] & (carbs_req >= f["carbs_req_threshold"]) & (minutes_above <= 45)
    )

    # --- Dosing, first matching rule wins.
    neutral = np.zeros(n, dtype=bool)  # keep a matching temp, else scheduled basal
    rising_no_suspend = (
        (bg < threshold)
        & (iob < -current_basal * 20 / 60)
        & (min_delta > 0)
        & (min_delta > expected_delta)
    )
    suspend = live & ~rising_no_suspend & ((bg < threshold) | (min_guard < threshold))
    suspend_min = vround(60 * ((target_bg - min_guard) / sens) / current_basal)
    suspend_min = np.minimum(120, np.maximum(30, vround(suspend_min / 30) * 30))
    branch[suspend] = Branch.LOW_SUSPEND
    req_rate[suspend] = 0.0
    req_duration[suspend] = suspend_min[suspend]
    rest = live & ~suspend

    minute_of_hour = np.floor_divide(now, 60000.0) % 60
    skip = rest & g["skip_neutral"] & (minute_of_hour >= 55)
    branch[skip] = Branch.SKIP_NEUTRAL_CANCEL
    req_rate[skip] = 0.0
    req_duration[skip] = 0.0
    rest &= ~skip

    low = rest & (eventual < min_bg)
    rest &= ~low
    low_rising = low & (min_delta > expected_delta) & (min_delta > 0) & ~truthy(carbs_req)
    naive_40 = low_rising & (naive_eventual < 40)
    branch[naive_40] = Branch.EVENTUAL_LOW_NAIVE_40
    req_rate[naive_40] = 0.0
    branch[low_rising & ~naive_40] = Branch.EVENTUAL_LOW_RISING
    neutral |= low_rising & ~naive_40
    low &= ~low_rising
    insulin_req = round_to(2 * np.minimum(0, (eventual - target_bg) / sens), 2)
    naive_req = round_to(np.minimum(0, (naive_eventual - target_bg) / sens), 2)
    slowing = (min_delta < 0) & (min_delta > expected_delta)
    insulin_req = np.where(
        slowing, round_to(insulin_req * (min_delta / expected_delta), 2), insulin_req
    )
    low_rate = round_basal(basal + 2 * insulin_req, per_unit)
    scheduled = temp_min * (temp_rate - basal) / 60
    lot_less = low & (scheduled < np.minimum(insulin_req, naive_req) - basal * 0.3)
    low_kept = low & ~lot_less & (temp_min > 5) & (low_rate >= temp_rate * 0.8)
    low_set = low & ~lot_less & ~low_kept
    zero_min = vround(60 * ((target_bg - naive_eventual) / sens) / current_basal)
    zero_min = np.where(
        zero_min < 0, 0.0, np.minimum(120, np.maximum(0, vround(zero_min / 30) * 30))
    )
    long_zero = low_set & (low_rate <= 0) & (zero_min > 0)
    branch[lot_less] = Branch.LOW_TEMP_LOT_LESS
    branch[low_kept] = Branch.LOW_TEMP_KEPT
    branch[low_set] = Branch.LOW_TEMP
    low_temp = lot_less | low_set
    req_rate[low_temp] = low_rate[low_temp]
    req_duration[long_zero] = zero_min[long_zero]

    smb_active = g["microbolus"] & enable_smb
    falling = rest & (min_delta < expected_delta) & ~smb_active
    rest &= ~falling
    in_range = rest & (np.minimum(eventual, min_pred) < max_bg) & ~smb_active
    rest &= ~in_range
    over_iob = rest & (iob > f["max_iob"])
    rest &= ~over_iob
    branch[falling] = Branch.FALLING
    branch[in_range] = Branch.IN_RANGE
    branch[over_iob] = Branch.ABOVE_MAX_IOB
    neutral |= falling | in_range | over_iob

    # High temp: enough extra insulin to bring the lower prediction to target.
    max_iob = f["max_iob"]
    high_req = round_to((np.minimum(min_pred, eventual) - target_bg) / sens, 2)
    high_req = np.where(high_req > max_iob - iob, max_iob - iob, high_req)
    high_rate = round_basal(basal + 2 * high_req, per_unit)
    high_req = round_to(high_req, 3)
    out_insulin_req = np.where(rest, high_req, 0.0)
    last_bolus_age = round_to((now - f["last_bolus_ms"]) / 60000, 1)

    smb_try = rest & g["microbolus"] & enable_smb & (bg > threshold)
    units, smb_min, smb_rate = micro_bolus(
        f,
        g["smb_minutes_unset"],
        high_req,
        iob,
        meal_cob,
        basal,
        target_bg,
        naive_eventual,
        blended.min_iob_pred_bg,
        sens,
    )
    has_units = smb_try & (last_bolus_age > f["smb_interval"]) & (units > 0)
    smb_exit = smb_try & (smb_min > 0)
    branch[smb_exit] = Branch.MICRO_BOLUS_TEMP
    out_rate[smb_exit] = smb_rate[smb_exit]
    out_duration[smb_exit] = smb_min[smb_exit]
    has_rate |= smb_exit
    rest &= ~smb_exit

    cap = np.minimum(  # max safe basal
        np.minimum(f["max_basal"], f["daily_multiplier"] * f["max_daily_basal"]),
        f["current_multiplier"] * current_basal,
    )
    high_rate = np.where(high_rate > cap, round_basal(cap, per_unit), high_rate)
    two_x = rest & (scheduled >= high_req * 2)
    no_temp = rest & ~two_x & (temp_min == 0)
    high_kept = (
        rest
        & ~two_x
        & ~no_temp
        & (temp_min > 5)
        & (round_basal(high_rate, per_unit) <= round_basal(temp_rate, per_unit))
    )
    high_set = rest & ~two_x & ~no_temp & ~high_kept
    branch[two_x] = Branch.HIGH_TEMP_SCHEDULED
    branch[no_temp] = Branch.HIGH_TEMP_NO_TEMP
    branch[high_kept] = Branch.HIGH_TEMP_KEPT
    branch[high_set] = Branch.HIGH_TEMP
    high_temp = two_x | no_temp | high_set
    req_rate[high_temp] = high_rate[high_temp]

    # Neutral: a running temp at the scheduled basal continues, else basal for 30 min.
    kept = (
        neutral
        & (temp_min > 15)
        & (round_basal(basal, per_unit) == round_basal(temp_rate, per_unit))
    )
    neutral &= ~kept
    req_rate[neutral] = basal[neutral]
    setting = cancel | suspend | skip | naive_40 | low_temp | high_temp | neutral
    set_temp(
        setting, req_rate, req_duration, cap, f, g["skip_neutral"], out_rate, out_duration, has_rate
    )

    # --- Outputs.
    shown_bg = _display(np.stack([bgi, deviation, sens, target_bg]), g["mmol"])
    values = {
        "rate": out_rate,
        "duration": out_duration,
        "units": np.where(has_units, units, np.nan),
        "eventual_bg": eventual,
        "insulin_req": out_insulin_req,
        "cob": meal_cob.copy(),  # copies: absent fields become NaN below, inputs stay
        "iob": iob.copy(),
        "bgi": shown_bg[0],
        "deviation": shown_bg[1],
        "isf": shown_bg[2],
        "cr": round_to(f["carb_ratio"], 2),
        "target_bg": shown_bg[3],
        "sensitivity_ratio": ratio,
        "carbs_req": carbs_req,
    }
    present = {name: live.copy() for name in values}
    present["rate"] = has_rate & ~fallback
    present["duration"] = has_rate & ~fallback
    present["units"] = has_units
    present["cob"] = live & g["has_cob"]
    present["sensitivity_ratio"] = live & has_ratio
    present["carbs_req"] = has_carbs_req
    for name, array in values.items():
        array[~present[name]] = np.nan
    curves = {
        "IOB": iob_curve.T,
        "ZT": zt_curve.T,
        "COB": cob_curve.T,
        "UAM": uam_curve.T,
    }
    lengths = {
        "IOB": np.where(live, iob_len, 0),
        "ZT": np.where(live, zt_len, 0),
        "COB": np.where(live & cob_shown, cob_len, 0),
        "UAM": np.where(live & uam_shown, uam_len, 0),
    }
    branch[fallback] = Branch.FALLBACK
    result = BatchResult(inputs, branch, values, present, curves, lengths, fallback)
    fill_fallback(result)
    return result


def _flat_tail_len(points: list[float]) -> int:
    """Displayed length after dropping trailing repeats (at least 13 points kept)."""
    i = len(points) - 1
    while i > 12 and points[i - 1] == points[i]:
        i -= 1
    return i + 1


def _zt_len(points: list[float], target_bg: float) -> int:
    """Displayed ZT length: the rising tail above target dropped (at least 7 points kept)."""
    i = len(points) - 1
    while i > 6 and points[i - 1] < points[i] and points[i] > target_bg:
        i -= 1
    return i + 1
