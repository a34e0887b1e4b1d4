"""oref0/oref1 ``determine-basal`` as a pure function: glucose, IOB, meal and profile in,
a temp basal (and optionally a micro-bolus) with its reasons out.

Behaviour follows npm ``oref0`` 0.7.1 ``lib/determine-basal/determine-basal.js``
(summarised in AID_REFERENCE.md §2.3), re-expressed here; the parity test
(tests/control/test_oref_parity.py) checks every output field against the package.
Units: glucose mg/dL, deltas mg/dL per 5 min, insulin U, rates U/h, durations and ages
min, times ms since the epoch (UTC). Inputs are the reference's JSON objects; a missing
field behaves as the reference's ``undefined``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from openinfusion.control.aid.oref._js import (
    iso_string,
    jdiv,
    jmax,
    jmin,
    jround,
    js_str,
    num,
    round_to,
    time_clip,
    to_fixed,
    truthy,
    utc_minutes,
)
from openinfusion.control.aid.oref.blend import blend_predictions
from openinfusion.control.aid.oref.carbs import carb_model
from openinfusion.control.aid.oref.cgm_guard import unusable_cgm
from openinfusion.control.aid.oref.predict import Predictions, predict
from openinfusion.control.aid.oref.smb import micro_bolus
from openinfusion.control.aid.oref.targets import adjusted_targets
from openinfusion.control.aid.oref.temp_basal import max_safe_basal, round_basal, set_temp_basal

# Horizon arithmetic of the reference: 24 five-minute steps to bring BG to target in 2 h.
_STEPS_2H = 24


def _bg_text(value: Any, profile: Mapping[str, Any]) -> Any:
    """The reference's ``convert_bg``: mmol/L as text with one decimal, else whole mg/dL."""
    if profile.get("out_units") == "mmol/L":
        return to_fixed(round_to(num(value) / 18, 1), 1)
    return jround(num(value))


def _smb_enabled(
    profile: Mapping[str, Any],
    microbolus_allowed: bool,
    meal: Mapping[str, Any],
    bg: float,
    target_bg: float,
    high_bg: float,
) -> bool:
    """Whether micro-boluses are on: allowed, not blocked by a high temp target or recent
    Bolus-Wizard use, and one of the enableSMB_* preferences applies."""
    if not microbolus_allowed:
        return False
    if (
        not truthy(profile.get("allowSMB_with_high_temptarget"))
        and truthy(profile.get("temptargetSet"))
        and target_bg > 100
    ):
        return False
    if meal.get("bwFound") is True and profile.get("A52_risk_enable") is False:
        return False
    if profile.get("enableSMB_always") is True:
        return True
    if profile.get("enableSMB_with_COB") is True and truthy(meal.get("mealCOB")):
        return True
    if profile.get("enableSMB_after_carbs") is True and truthy(meal.get("carbs")):
        return True
    if (
        profile.get("enableSMB_with_temptarget") is True
        and truthy(profile.get("temptargetSet"))
        and target_bg < 100
    ):
        return True
    return profile.get("enableSMB_high_bg") is True and bg >= high_bg


def _keep_or_neutral(
    result: dict[str, Any],
    basal: float,
    profile: Mapping[str, Any],
    currenttemp: Mapping[str, Any],
) -> dict[str, Any]:
    """Let a running temp at scheduled basal continue, else set scheduled basal for 30 min."""
    running_rate = currenttemp.get("rate")
    if num(currenttemp.get("duration")) > 15 and round_basal(basal, profile) == round_basal(
        num(running_rate), profile
    ):
        result["reason"] += f", temp {js_str(running_rate)} ~ req {js_str(basal)}U/hr. "
        return result
    result["reason"] += f"; setting current basal of {js_str(basal)} as temp. "
    return set_temp_basal(basal, 30, profile, result, currenttemp)


def determine_basal(
    glucose_status: Mapping[str, Any],
    currenttemp: Mapping[str, Any],
    iob_data: Sequence[Mapping[str, Any]],
    profile: Mapping[str, Any],
    autosens_data: Mapping[str, Any] | None,
    meal_data: Mapping[str, Any] | None,
    microbolus_allowed: bool,
    current_time_ms: float,
    reservoir_data: Any = None,
) -> dict[str, Any]:
    """One dosing decision (the reference's ``determine_basal``).

    ``glucose_status`` as from :func:`get_last_glucose`; ``currenttemp`` ``{rate U/h,
    duration min}``; ``iob_data`` the calculate-iob array (the first tick is now, each tick
    with ``iob`` U, ``activity`` U/min and ``iobWithZeroTemp``); ``profile`` the oref0
    profile; ``autosens_data`` ``{ratio}`` or None; ``meal_data`` the meal object or None;
    ``current_time_ms`` the decision time. Returns the reference's fields (``temp``,
    ``bg``, ``tick``, ``eventualBG``, ``insulinReq``, ``reservoir``, ``deliverAt``,
    ``sensitivityRatio``, ``predBGs``, ``COB``, ``IOB``, ``BGI``, ``deviation``, ``ISF``,
    ``CR``, ``target_bg``, ``reason``, ``rate``, ``duration``, ``units``, ``carbsReq``) or
    ``{"error": ...}``. A field the reference leaves undefined is absent.
    """
    meal: Mapping[str, Any] = meal_data if meal_data is not None else {}
    now_ms = time_clip(num(current_time_ms))
    deliver_at = iso_string(now_ms)
    if profile.get("current_basal") is None:
        return {"error": "Error: could not get current basal rate"}
    current_basal = num(profile.get("current_basal"))
    basal = round_basal(current_basal, profile)

    bg_raw = glucose_status.get("glucose")
    bg = num(bg_raw)
    noise = num(glucose_status.get("noise"))
    delta_raw = glucose_status.get("delta")
    delta = num(delta_raw)
    short_avg = num(glucose_status.get("short_avgdelta"))
    long_avg = num(glucose_status.get("long_avgdelta"))
    tick: Any = "+" + js_str(jround(delta)) if delta > -0.5 else jround(delta)
    min_delta = jmin(delta, short_avg)
    min_avg_delta = jmin(short_avg, long_avg)
    max_delta = jmax(delta, short_avg, long_avg)

    unusable = unusable_cgm(glucose_status, currenttemp, basal, now_ms, deliver_at)
    if unusable is not None:
        return unusable

    max_iob_raw = profile.get("max_iob")
    max_iob = num(max_iob_raw)
    targets = adjusted_targets(profile, autosens_data, noise, current_basal)
    if targets is None:
        return {"error": "Error: could not determine target_bg. "}
    min_bg, max_bg, target_bg = targets.min_bg, targets.max_bg, targets.target_bg
    threshold, sens, ratio = targets.threshold, targets.sens, targets.ratio
    basal = targets.basal  # scheduled basal x the sensitivity ratio, rounded for the pump
    high_bg = num(profile.get("enableSMB_high_bg_target"))
    profile_sens = num(profile.get("sens"))

    # --- IOB: the first tick is now; the rest drive the predictions.
    if isinstance(iob_data, Mapping) or len(iob_data) <= 1:
        return {"error": "Error: iob_data missing some property. "}
    iob_now = iob_data[0]
    if iob_now.get("activity") is None or iob_now.get("iob") is None:
        return {"error": "Error: iob_data missing some property. "}
    iob_raw = iob_now.get("iob")
    iob = num(iob_raw)
    last_temp = iob_now.get("lastTemp")
    last_temp_age = (
        round_to((now_ms - num(last_temp.get("date"))) / 60000)
        if isinstance(last_temp, Mapping)
        else 0.0
    )
    result: dict[str, Any] = {"temp": "absolute", "deliverAt": deliver_at}
    running_rate_raw = currenttemp.get("rate")
    running_rate = num(running_rate_raw)
    running_min_raw = currenttemp.get("duration")
    running_min = num(running_min_raw)
    if isinstance(last_temp, Mapping):
        # Safety: the pump's running temp must agree with the pump history.
        history_rate = last_temp.get("rate")
        if (
            microbolus_allowed
            and (history_rate is None or running_rate != num(history_rate))
            and last_temp_age > 10
            and truthy(running_min_raw)
        ):
            result["reason"] = (
                f"Warning: currenttemp rate {js_str(running_rate_raw)} != lastTemp rate "
                f"{js_str(history_rate)} from pumphistory; canceling temp"
            )
            return set_temp_basal(0, 0, profile, result, currenttemp)
        if running_min > 0:
            ended_ago = last_temp_age - num(last_temp.get("duration"))
            if ended_ago > 5 and last_temp_age > 10:
                result["reason"] = (
                    "Warning: currenttemp running but lastTemp from pumphistory ended "
                    f"{js_str(ended_ago)}m ago; canceling temp"
                )
                return set_temp_basal(0, 0, profile, result, currenttemp)

    # --- BGI, deviation, eventual BG.
    bgi = round_to(-num(iob_now.get("activity")) * sens * 5, 2)
    deviation = round_to(6 * (min_delta - bgi))  # 30 min of the current deviation
    if deviation < 0:
        deviation = round_to(6 * (min_avg_delta - bgi))
        if deviation < 0:
            deviation = round_to(6 * (long_avg - bgi))
    if iob > 0:
        naive_eventual_bg = round_to(bg - iob * sens)
    else:  # negative IOB: the smaller ISF is the conservative one
        naive_eventual_bg = round_to(bg - iob * jmin(sens, profile_sens))
    eventual_bg = naive_eventual_bg + deviation
    if math.isnan(eventual_bg):
        result["error"] = "Error: could not calculate eventualBG. "
        return result
    expected_delta = round_to(bgi + (target_bg - eventual_bg) / _STEPS_2H, 1)

    result = {
        "temp": "absolute",
        "bg": bg_raw,
        "tick": tick,
        "eventualBG": eventual_bg,
        "insulinReq": 0,
        "reservoir": reservoir_data,
        "deliverAt": deliver_at,
    }
    if ratio is not None:
        result["sensitivityRatio"] = ratio

    enable_smb = _smb_enabled(profile, microbolus_allowed, meal, bg, target_bg, high_bg)
    enable_uam = truthy(profile.get("enableUAM"))

    carb = carb_model(min_delta, bgi, sens, ratio, profile, meal, now_ms)
    ci, cid, remaining_ci_peak = carb.ci, carb.cid, carb.remaining_ci_peak
    meal_cob_raw = meal.get("mealCOB")
    meal_cob, carbs, csf = carb.meal_cob_g, carb.carbs_g, carb.csf

    carbs_active = truthy(cid) or remaining_ci_peak > 0
    cob_shown = meal_cob > 0 and (ci > 0 or remaining_ci_peak > 0)
    pred: Predictions = predict(
        iob_data,
        bg,
        eventual_bg,
        sens,
        ci,
        carb.uci,
        cid,
        carb.remaining_ca_time_h,
        remaining_ci_peak,
        carb.slope_from_deviations,
        enable_uam,
        carbs_active or cob_shown,
    )
    pred_bgs: dict[str, list[float]] = {}
    result["predBGs"] = pred_bgs
    iob_curve = _clip_round(pred.iob)
    _trim_flat_tail(iob_curve, 12)
    pred_bgs["IOB"] = iob_curve
    last_iob_pred_bg = jround(iob_curve[-1])
    zt_curve = _clip_round(pred.zt)
    # Stop the zero-temp curve once it is rising and above target.
    i = len(zt_curve) - 1
    while i > 6:
        if zt_curve[i - 1] >= zt_curve[i] or zt_curve[i] <= target_bg:
            break
        zt_curve.pop()
        i -= 1
    pred_bgs["ZT"] = zt_curve
    last_cob_pred_bg: float | None = None
    last_uam_pred_bg: float | None = None
    cob_curve: list[float] = []
    if cob_shown:
        cob_curve = _clip_round(pred.cob)
        _trim_flat_tail(cob_curve, 12)
        pred_bgs["COB"] = cob_curve
        last_cob_pred_bg = jround(cob_curve[-1])
        eventual_bg = jmax(eventual_bg, jround(cob_curve[-1]))
    if ci > 0 or remaining_ci_peak > 0:
        if enable_uam:
            uam_curve = _clip_round(pred.uam)
            _trim_flat_tail(uam_curve, 12)
            pred_bgs["UAM"] = uam_curve
            last_uam_pred_bg = jround(uam_curve[-1])
            if truthy(uam_curve[-1]):
                eventual_bg = jmax(eventual_bg, jround(uam_curve[-1]))
        result["eventualBG"] = eventual_bg

    blended = blend_predictions(
        pred,
        bg,
        meal_cob,
        carbs,
        truthy(meal.get("carbs")),
        carbs_active,
        enable_uam,
        threshold,
        target_bg,
    )
    min_pred_bg, min_guard_bg = blended.min_pred_bg, blended.min_guard_bg
    min_iob_pred_bg = blended.min_iob_pred_bg

    if meal_cob_raw is not None:
        result["COB"] = meal_cob_raw
    result["IOB"] = iob_raw
    result["BGI"] = _bg_text(bgi, profile)
    result["deviation"] = _bg_text(deviation, profile)
    result["ISF"] = _bg_text(sens, profile)
    result["CR"] = round_to(num(profile.get("carb_ratio")), 2)
    result["target_bg"] = _bg_text(target_bg, profile)
    reason = (
        f"COB: {js_str(meal_cob_raw)}, Dev: {js_str(result['deviation'])}, "
        f"BGI: {js_str(result['BGI'])}, ISF: {js_str(result['ISF'])}, "
        f"CR: {js_str(result['CR'])}, minPredBG {js_str(_bg_text(min_pred_bg, profile))}, "
        f"minGuardBG {js_str(_bg_text(min_guard_bg, profile))}, "
        f"IOBpredBG {js_str(_bg_text(last_iob_pred_bg, profile))}"
    )
    if last_cob_pred_bg is not None and last_cob_pred_bg > 0:
        reason += f", COBpredBG {js_str(_bg_text(last_cob_pred_bg, profile))}"
    if last_uam_pred_bg is not None and last_uam_pred_bg > 0:
        reason += f", UAMpredBG {js_str(_bg_text(last_uam_pred_bg, profile))}"
    reason += "; "
    result["reason"] = reason

    # --- Carbs needed to avoid a low.
    carbs_req_bg = naive_eventual_bg
    if carbs_req_bg < 40:
        carbs_req_bg = jmin(min_guard_bg, carbs_req_bg)
    bg_undershoot = threshold - carbs_req_bg
    scanned = cob_curve if cob_shown else iob_curve
    minutes_above_threshold = 240
    for k, value in enumerate(scanned):
        if value < threshold:
            minutes_above_threshold = 5 * k
            break
    if enable_smb and min_guard_bg < threshold:
        enable_smb = False
    # A sudden rise (calibration, sensor filter switching) turns SMB off.
    if profile.get("maxDelta_bg_threshold") is None:
        max_delta_fraction = 0.2
    else:
        max_delta_fraction = jmin(num(profile.get("maxDelta_bg_threshold")), 0.3)
    if max_delta > max_delta_fraction * bg:
        result["reason"] += (
            f"maxDelta {js_str(_bg_text(max_delta, profile))} > "
            f"{js_str(100 * max_delta_fraction)}% of BG {js_str(_bg_text(bg, profile))}: "
            "SMB disabled; "
        )
        enable_smb = False
    zero_temp_effect = current_basal * sens * minutes_above_threshold / 60
    cob_for_carbs_req = jmax(0, meal_cob - 0.25 * carbs)
    carbs_req = jround(jdiv(bg_undershoot - zero_temp_effect, csf) - cob_for_carbs_req)
    if meal.get("reason") == "Could not parse clock data":
        pass
    elif carbs_req >= num(profile.get("carbsReqThreshold")) and minutes_above_threshold <= 45:
        result["carbsReq"] = carbs_req
        result["reason"] += f"{js_str(carbs_req)} add'l carbs req w/in {minutes_above_threshold}m; "

    # --- Dosing, first matching rule wins.
    if (
        bg < threshold
        and iob < -current_basal * 20 / 60
        and min_delta > 0
        and min_delta > expected_delta
    ):
        # Very negative IOB and BG rising faster than expected: no suspend.
        result["reason"] += (
            f"IOB {js_str(iob_raw)} < {js_str(round_to(-current_basal * 20 / 60, 2))}"
            f" and minDelta {js_str(_bg_text(min_delta, profile))} > expectedDelta "
            f"{js_str(_bg_text(expected_delta, profile))}; "
        )
    elif bg < threshold or min_guard_bg < threshold:
        # Predictive low-glucose suspend: zero temp for 30-120 min.
        result["reason"] += (
            f"minGuardBG {js_str(_bg_text(min_guard_bg, profile))}<"
            f"{js_str(_bg_text(threshold, profile))}"
        )
        undershoot = target_bg - min_guard_bg
        duration_req = jround(jdiv(60 * jdiv(undershoot, sens), current_basal))
        duration_req = jround(duration_req / 30) * 30
        duration_req = jmin(120, jmax(30, duration_req))
        return set_temp_basal(0, duration_req, profile, result, currenttemp)

    if truthy(profile.get("skip_neutral_temps")) and utc_minutes(now_ms) >= 55:
        result["reason"] += f"; Canceling temp at {js_str(utc_minutes(now_ms))}m past the hour. "
        return set_temp_basal(0, 0, profile, result, currenttemp)

    if eventual_bg < min_bg:
        result["reason"] += (
            f"Eventual BG {js_str(_bg_text(eventual_bg, profile))} < "
            f"{js_str(_bg_text(min_bg, profile))}"
        )
        if min_delta > expected_delta and min_delta > 0 and not truthy(carbs_req):
            if naive_eventual_bg < 40:
                result["reason"] += ", naive_eventualBG < 40. "
                return set_temp_basal(0, 30, profile, result, currenttemp)
            if delta > min_delta:
                result["reason"] += (
                    f", but Delta {js_str(_bg_text(tick, profile))} > expectedDelta "
                    f"{js_str(_bg_text(expected_delta, profile))}"
                )
            else:
                result["reason"] += (
                    f", but Min. Delta {to_fixed(min_delta, 2)} > Exp. Delta "
                    f"{js_str(_bg_text(expected_delta, profile))}"
                )
            return _keep_or_neutral(result, basal, profile, currenttemp)

        # Low temp: twice the insulin shortfall over 30 min.
        insulin_req = round_to(2 * jmin(0, jdiv(eventual_bg - target_bg, sens)), 2)
        naive_insulin_req = round_to(jmin(0, jdiv(naive_eventual_bg - target_bg, sens)), 2)
        if min_delta < 0 and min_delta > expected_delta:
            insulin_req = round_to(insulin_req * (min_delta / expected_delta), 2)
        rate = round_basal(basal + 2 * insulin_req, profile)
        insulin_scheduled = running_min * (running_rate - basal) / 60
        if insulin_scheduled < jmin(insulin_req, naive_insulin_req) - basal * 0.3:
            result["reason"] += (
                f", {js_str(running_min_raw)}m@{to_fixed(running_rate, 2)} is a lot less "
                "than needed. "
            )
            return set_temp_basal(rate, 30, profile, result, currenttemp)
        if running_rate_raw is not None and running_min > 5 and rate >= running_rate * 0.8:
            result["reason"] += f", temp {js_str(running_rate_raw)} ~< req {js_str(rate)}U/hr. "
            return result
        if rate <= 0:
            undershoot = target_bg - naive_eventual_bg
            duration_req = jround(jdiv(60 * jdiv(undershoot, sens), current_basal))
            if duration_req < 0:
                duration_req = 0.0
            else:
                duration_req = jmin(120, jmax(0, jround(duration_req / 30) * 30))
            if duration_req > 0:
                result["reason"] += f", setting {js_str(duration_req)}m zero temp. "
                return set_temp_basal(rate, duration_req, profile, result, currenttemp)
        else:
            result["reason"] += f", setting {js_str(rate)}U/hr. "
        return set_temp_basal(rate, 30, profile, result, currenttemp)

    smb_active = microbolus_allowed and enable_smb
    if min_delta < expected_delta and not smb_active:
        # Eventual BG is fine but BG is falling faster than expected.
        if delta < min_delta:
            result["reason"] += (
                f"Eventual BG {js_str(_bg_text(eventual_bg, profile))} > "
                f"{js_str(_bg_text(min_bg, profile))} but Delta "
                f"{js_str(_bg_text(tick, profile))} < Exp. Delta "
                f"{js_str(_bg_text(expected_delta, profile))}"
            )
        else:
            result["reason"] += (
                f"Eventual BG {js_str(_bg_text(eventual_bg, profile))} > "
                f"{js_str(_bg_text(min_bg, profile))} but Min. Delta {to_fixed(min_delta, 2)}"
                f" < Exp. Delta {js_str(_bg_text(expected_delta, profile))}"
            )
        return _keep_or_neutral(result, basal, profile, currenttemp)
    if jmin(eventual_bg, min_pred_bg) < max_bg and not smb_active:
        result["reason"] += (
            f"{js_str(_bg_text(eventual_bg, profile))}-"
            f"{js_str(_bg_text(min_pred_bg, profile))} in range: no temp required"
        )
        return _keep_or_neutral(result, basal, profile, currenttemp)

    if eventual_bg >= max_bg:
        result["reason"] += (
            f"Eventual BG {js_str(_bg_text(eventual_bg, profile))} >= "
            f"{js_str(_bg_text(max_bg, profile))}, "
        )
    if iob > max_iob:
        result["reason"] += f"IOB {js_str(round_to(iob, 2))} > max_iob {js_str(max_iob_raw)}"
        return _keep_or_neutral(result, basal, profile, currenttemp)

    # High temp: enough extra insulin to bring the lower prediction to target, within max_iob.
    insulin_req = round_to(jdiv(jmin(min_pred_bg, eventual_bg) - target_bg, sens), 2)
    if insulin_req > max_iob - iob:
        result["reason"] += f"max_iob {js_str(max_iob_raw)}, "
        insulin_req = max_iob - iob
    rate = round_basal(basal + 2 * insulin_req, profile)
    insulin_req = round_to(insulin_req, 3)
    result["insulinReq"] = insulin_req
    last_bolus_age_min = round_to((now_ms - num(iob_now.get("lastBolusTime"))) / 60000, 1)

    if (
        microbolus_allowed
        and enable_smb
        and bg > threshold
        and micro_bolus(
            result,
            profile,
            insulin_req,
            iob,
            meal_cob,
            basal,
            target_bg,
            naive_eventual_bg,
            min_iob_pred_bg,
            sens,
            last_bolus_age_min,
        )
    ):
        return result  # the micro-bolus came with a zero/low temp

    cap = max_safe_basal(profile)
    if rate > cap:
        result["reason"] += f"adj. req. rate: {js_str(rate)} to maxSafeBasal: {js_str(cap)}, "
        rate = round_basal(cap, profile)
    insulin_scheduled = running_min * (running_rate - basal) / 60
    if insulin_scheduled >= insulin_req * 2:
        result["reason"] += (
            f"{js_str(running_min_raw)}m@{to_fixed(running_rate, 2)} > 2 * insulinReq. "
            f"Setting temp basal of {js_str(rate)}U/hr. "
        )
        return set_temp_basal(rate, 30, profile, result, currenttemp)
    if running_min_raw is None or running_min == 0:
        result["reason"] += f"no temp, setting {js_str(rate)}U/hr. "
        return set_temp_basal(rate, 30, profile, result, currenttemp)
    if running_min > 5 and round_basal(rate, profile) <= round_basal(running_rate, profile):
        result["reason"] += f"temp {js_str(running_rate_raw)} >~ req {js_str(rate)}U/hr. "
        return result
    result["reason"] += f"temp {js_str(running_rate_raw)}<{js_str(rate)}U/hr. "
    return set_temp_basal(rate, 30, profile, result, currenttemp)


def _clip_round(values: list[float]) -> list[float]:
    """Predicted BGs as displayed: whole mg/dL within 39-401 (halves up; for values in
    that range ``floor(p + 0.5)`` is exactly ``Math.round``)."""
    floor = math.floor
    try:
        return [39.0 if p < 39 else 401.0 if p > 401 else float(floor(p + 0.5)) for p in values]
    except ValueError:  # NaN in the curve: the reference's NaN rules
        return [jround(jmin(401, jmax(39, p))) for p in values]


def _trim_flat_tail(curve: list[float], keep: int) -> None:
    """Drop trailing repeats of the last value, keeping at least ``keep`` + 1 points."""
    i = len(curve) - 1
    while i > keep:
        if curve[i - 1] != curve[i]:
            break
        curve.pop()
        i -= 1
