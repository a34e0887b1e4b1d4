"""Seeded generator of determine-basal cases in the reference's native JSON shapes.

Each case holds newest-first CGM records, a calculate-iob array (48 five-minute ticks
with ``iobWithZeroTemp``), the current temp, an oref0 profile, autosens, meal data, the
micro-bolus flag and the decision time. The mix spans falling/rising/flat/noisy glucose,
carbs on board, high and negative IOB, low and high targets, temp targets, autosens
below and above 1, stale and future-dated CGM, SMB on and off, temps that do or do not
match the pump history, max_iob 0 or missing, low glucose, mmol/L output and x23/x54
pump rounding.
"""

from __future__ import annotations

import math
import random
from typing import Any

T0_MS = 1_764_748_800_000  # 2025-12-03 08:00 UTC, a fixed reference time
DIA_MIN = 300.0
PEAK_MIN = 75.0


def _curve(t_min: float) -> tuple[float, float]:
    """Exponential insulin curve (IOB fraction, activity per U per min), DIA 5 h, peak 75
    min (the formula in AID_REFERENCE.md §2.3)."""
    if t_min < 0 or t_min >= DIA_MIN:
        return 0.0, 0.0
    td, tp = DIA_MIN, PEAK_MIN
    tau = tp * (1 - tp / td) / (1 - 2 * tp / td)
    a = 2 * tau / td
    s = 1 / (1 - a + (1 + a) * math.exp(-td / tau))
    activity = (s / tau**2) * t_min * (1 - t_min / td) * math.exp(-t_min / tau)
    iob = 1 - s * (1 - a) * (
        (t_min**2 / (tau * td * (1 - a)) - t_min / tau - 1) * math.exp(-t_min / tau) + 1
    )
    return iob, activity


def _iob_array(rng: random.Random, basal: float, now_ms: int, style: str) -> list[dict[str, Any]]:
    doses: list[tuple[float, float]] = []  # (minutes ago, units net of scheduled basal)
    if style in ("bolus", "high"):
        doses.append((rng.uniform(5, 200), rng.uniform(1, 10 if style == "high" else 5)))
    if style == "mild":
        doses.append((rng.uniform(20, 150), rng.uniform(0.2, 1.5)))
    if style == "negative":
        for k in range(rng.randint(6, 30)):
            doses.append((5.0 * k + 2.5, -basal / 12))
    elif style != "none":
        for k in range(36):
            doses.append((5.0 * k + 2.5, rng.choice([-1.0, 0.0, 0.0, 1.0, 2.0]) * basal / 12))
    last_bolus_ago = rng.choice([rng.uniform(0.5, 10), rng.uniform(10, 300)])
    ticks: list[dict[str, Any]] = []
    for k in range(48):
        t = 5.0 * k
        iob = act = zt_iob = zt_act = 0.0
        for ago, units in doses:
            f, a = _curve(ago + t)
            iob += units * f
            act += units * a
        zt_iob, zt_act = iob, act
        for j in range(k + 1):  # zero temp from now: scheduled basal withheld
            f, a = _curve(t - 5.0 * j)
            zt_iob -= basal / 12 * f
            zt_act -= basal / 12 * a
        tick: dict[str, Any] = {
            "iob": round(iob, 3),
            "activity": round(act, 4),
            "basaliob": round(iob * 0.4, 3),
            "bolusiob": round(iob * 0.6, 3),
            "netbasalinsulin": round(rng.uniform(-1, 1), 2),
            "bolusinsulin": 0,
            "time": _iso(now_ms + int(t * 60000)),
            "iobWithZeroTemp": {
                "iob": round(zt_iob, 3),
                "activity": round(zt_act, 4),
                "basaliob": round(zt_iob * 0.4, 3),
                "bolusiob": round(zt_iob * 0.6, 3),
                "netbasalinsulin": 0,
                "bolusinsulin": 0,
                "time": _iso(now_ms + int(t * 60000)),
            },
        }
        ticks.append(tick)
    ticks[0]["lastBolusTime"] = now_ms - int(last_bolus_ago * 60000)
    return ticks


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _glucose(rng: random.Random, now_ms: int, kind: str) -> list[dict[str, Any]]:
    bg = rng.choice(
        [rng.uniform(40, 80), rng.uniform(85, 150), rng.uniform(85, 150), rng.uniform(150, 380)]
    )
    slope = {
        "falling": rng.uniform(-9, -1),
        "rising": rng.uniform(1, 12),
        "flat": 0.0,
        "noisy": rng.uniform(-3, 3),
        "steady": rng.uniform(-3, 3),
    }[kind]
    age_min = rng.uniform(0, 4)
    if rng.random() < 0.04:
        age_min = rng.uniform(12.5, 40)  # stale
    elif rng.random() < 0.03:
        age_min = -rng.uniform(5.5, 15)  # dated in the future
    device = rng.choice(["share2", "xdripjs://RigName", "openaps://medtronic"])
    records = []
    for k in range(rng.randint(6, 12) if rng.random() < 0.3 else 13):
        if k > 0 and rng.random() < 0.06:
            continue  # missed reading
        value = bg - slope * k
        if kind == "noisy":
            value += rng.gauss(0, 8)
        if kind == "flat":
            value = bg
        records.append(
            {
                "date": now_ms - int((age_min + 5 * k + rng.uniform(-0.3, 0.3)) * 60000),
                "glucose": round(min(400, max(39, value))),
                "device": device,
                "type": "sgv",
                "noise": 1,
            }
        )
    if rng.random() < 0.05:  # a second reading within the same 2.5 min
        first = dict(records[0])
        first["date"] = first["date"] - 60000
        first["glucose"] = first["glucose"] + rng.randint(-4, 4)
        records.insert(1, first)
    if kind == "noisy":
        records[0]["noise"] = rng.choice([1, 2, 2, 2, 3])
    if rng.random() < 0.02:
        records[0]["glucose"] = 38  # sensor error code
    if rng.random() < 0.03:
        records[0]["glucose"] = rng.randint(2, 10)
    return records


def _profile(rng: random.Random) -> dict[str, Any]:
    basal = rng.choice([0.3, 0.45, 0.65, 0.8, 1.0, 1.15, 1.35, 1.6, 2.2])
    min_bg = rng.choice([80, 90, 100, 100, 110, 120])
    max_bg = min_bg + rng.choice([0, 0, 10, 20, 40])
    profile: dict[str, Any] = {
        "max_iob": rng.choice([0, 1, 2, 3, 5, 8]),
        "type": "current",
        "dia": 5,
        "current_basal": basal,
        "max_daily_basal": round(basal * rng.uniform(0.9, 1.5), 3),
        "max_basal": rng.choice([1.5, 2.5, 3.5, 6]),
        "min_bg": min_bg,
        "max_bg": max_bg,
        "sens": rng.choice([25, 40, 45.5, 60, 90, 110]),
        "carb_ratio": rng.choice([5, 8, 10.5, 12, 15, 20]),
        "autosens_max": 1.2,
        "autosens_min": 0.7,
        "max_daily_safety_multiplier": 3,
        "current_basal_safety_multiplier": 4,
        "skip_neutral_temps": rng.random() < 0.3,
        "temptargetSet": False,
        "high_temptarget_raises_sensitivity": rng.random() < 0.5,
        "low_temptarget_lowers_sensitivity": rng.random() < 0.5,
        "sensitivity_raises_target": rng.random() < 0.7,
        "resistance_lowers_target": rng.random() < 0.5,
        "exercise_mode": False,
        "half_basal_exercise_target": rng.choice([160, 160, 130, 200]),
        "maxCOB": 120,
        "enableUAM": rng.random() < 0.8,
        "A52_risk_enable": False,
        "allowSMB_with_high_temptarget": rng.random() < 0.2,
        "enableSMB_always": rng.random() < 0.3,
        "enableSMB_with_COB": rng.random() < 0.5,
        "enableSMB_after_carbs": rng.random() < 0.3,
        "enableSMB_with_temptarget": rng.random() < 0.5,
        "enableSMB_high_bg": rng.random() < 0.3,
        "enableSMB_high_bg_target": 150,
        "maxSMBBasalMinutes": rng.choice([30, 30, 60, 90]),
        "maxUAMSMBBasalMinutes": rng.choice([30, 45]),
        "SMBInterval": rng.choice([3, 3, 1, 5, 12]),
        "bolus_increment": rng.choice([0.1, 0.1, 0.05]),
        "curve": "rapid-acting",
        "insulinPeakTime": 75,
        "noisyCGMTargetMultiplier": 1.3,
        "maxRaw": 200,
        "carbsReqThreshold": rng.choice([1, 1, 5, 20]),
        "remainingCarbsCap": 90,
        "remainingCarbsFraction": rng.choice([1, 1, 0.8]),
        "model": rng.choice(["522", "554", "723", "x"]),
    }
    if rng.random() < 0.25:  # temp target, low or high
        target = rng.choice([80, 85, 90, 120, 140, 160, 190])
        profile["temptargetSet"] = True
        profile["min_bg"] = profile["max_bg"] = target
    if rng.random() < 0.1:
        del profile["max_iob"]
    if rng.random() < 0.1:
        profile["out_units"] = "mmol/L"
    if rng.random() < 0.1:
        profile["maxDelta_bg_threshold"] = rng.choice([0.1, 0.25, 0.4])
    if rng.random() < 0.05:
        del profile["maxSMBBasalMinutes"]
    if rng.random() < 0.05:
        profile["exercise_mode"] = True
    return profile


def _meal(rng: random.Random, now_ms: int) -> dict[str, Any] | None:
    roll = rng.random()
    if roll < 0.1:
        return None
    if roll < 0.45:  # no recent carbs
        carbs = cob = 0.0
        last_carb = 0
    else:
        carbs = float(rng.choice([10, 25, 40, 60, 90, 130]))
        cob = round(carbs * rng.uniform(0, 1), 1)
        last_carb = now_ms - int(rng.uniform(5, 300) * 60000)
    return {
        "carbs": carbs,
        "nsCarbs": carbs,
        "bwCarbs": 0,
        "journalCarbs": 0,
        "mealCOB": cob,
        "currentDeviation": round(rng.uniform(-5, 10), 2),
        "maxDeviation": round(rng.uniform(0, 12), 2),
        "minDeviation": round(rng.uniform(-6, 2), 2),
        "slopeFromMaxDeviation": round(rng.uniform(-3, 0), 3),
        "slopeFromMinDeviation": round(rng.uniform(0, 3), 3),
        "allDeviations": [],
        "lastCarbTime": last_carb,
        "bwFound": rng.random() < 0.1,
    }


def make_case(rng: random.Random) -> dict[str, Any]:
    """One random case (native reference JSON shapes)."""
    now_ms = T0_MS + rng.randint(0, 3 * 24 * 60) * 60000 + rng.randint(0, 59999)
    profile = _profile(rng)
    basal = float(profile["current_basal"])
    kind = rng.choice(
        ["falling", "falling", "rising", "rising", "flat", "noisy", "steady", "steady"]
    )
    iob = _iob_array(
        rng, basal, now_ms, rng.choice(["none", "bolus", "high", "negative", "mix", "mild", "mild"])
    )
    temp_roll = rng.random()
    if temp_roll < 0.35:
        currenttemp: dict[str, Any] = {"duration": 0, "rate": 0, "temp": "absolute"}
    elif temp_roll < 0.5:
        currenttemp = {"duration": rng.choice([5, 20, 60, 90, 120]), "rate": 0, "temp": "absolute"}
    else:
        currenttemp = {
            "duration": rng.choice([3, 10, 16, 25, 29, 30]),
            "rate": round(rng.choice([0.5, 0.9, 1.0, 1.1, 1.5, 2.5]) * basal, 2),
            "temp": "absolute",
        }
    if rng.random() < 0.7:
        age = rng.choice([rng.uniform(0, 10), rng.uniform(10, 60)])
        mismatched = rng.random() < 0.2
        iob[0]["lastTemp"] = {
            "rate": currenttemp["rate"] + (0.3 if mismatched else 0.0),
            "timestamp": _iso(now_ms - int(age * 60000)),
            "started_at": _iso(now_ms - int(age * 60000)),
            "date": now_ms - int(age * 60000),
            "duration": rng.choice([round(age + currenttemp["duration"], 2), 30, 30, 5]),
        }
    autosens = None if rng.random() < 0.3 else {"ratio": rng.choice([0.7, 0.8, 0.9, 1, 1.1, 1.2])}
    case = {
        "glucose": _glucose(rng, now_ms, kind),
        "currenttemp": currenttemp,
        "iob": iob,
        "profile": profile,
        "autosens": autosens,
        "meal": _meal(rng, now_ms),
        "microbolus": rng.random() < 0.6,
        "currentTime": now_ms,
        "reservoir": None if rng.random() < 0.8 else "123.4",
    }
    if rng.random() < 0.06:
        _edge(rng, case)
    return case


def _edge(rng: random.Random, case: dict[str, Any]) -> None:
    """Inputs the reference tolerates in its own way: missing fields, short IOB arrays,
    Nightscout-style records."""
    which = rng.randrange(9)
    if which == 0:
        del case["profile"]["current_basal"]
    elif which == 1:
        del case["profile"]["min_bg"]
    elif which == 2:
        case["iob"] = case["iob"][:1]
    elif which == 3:  # IOB curve ends early: the predictions stop there
        for tick in case["iob"][rng.randint(1, 40) :]:
            del tick["iobWithZeroTemp"]
    elif which == 4:
        case["meal"] = {"carbs": 30, "lastCarbTime": case["currentTime"] - 3_600_000}
    elif which == 5:
        case["autosens"] = {}
    elif which == 6:  # Nightscout entries: sgv and dateString
        for record in case["glucose"]:
            record["sgv"] = record.pop("glucose")
            record["dateString"] = _iso(record.pop("date"))
    elif which == 7:
        case["meal"] = {"mealCOB": 20, "carbs": 40, "reason": "Could not parse clock data"}
    else:
        case["iob"][0].pop("lastBolusTime", None)


def make_cases(n: int, seed: int = 20251203) -> list[dict[str, Any]]:
    """``n`` cases from ``seed`` (same seed, same cases)."""
    rng = random.Random(seed)
    return [make_case(rng) for _ in range(n)]
