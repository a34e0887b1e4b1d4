"""The safety supervisor every AID command passes through.

Rules, applied in this order to each patient (sources: AID_REFERENCE.md §2.3, OpenAPS oref0
0.7.1 ``lib/determine-basal/determine-basal.js``; §3.2 for commercial low-glucose suspend):

1. Malformed request: a NaN rate becomes the scheduled basal, negative amounts become 0,
   the duration is clipped to (0, 30] min (oref0 and AAPS issue 30-min temp basals, so the
   pump falls back to the schedule within 30 min if the controller stops).
2. Max safe basal = min(max_basal, 3 x max daily basal, 4 x current basal) (oref0
   ``max_daily_safety_multiplier`` 3, ``current_basal_safety_multiplier`` 4).
3. Unusable CGM: none, NaN, older than 12 min, more than 5 min in the future, outside the
   sensor range 39-400 mg/dL, or flat (identical readings over the last 45 min; oref0's
   "CGM too flat" rule is delta 0 with |short and long avgdelta| < 1): no insulin above
   the scheduled basal and no bolus (oref0 cancels high temps on bad data; low temps stay).
4. Max IOB: with net IOB >= max_iob no insulin above basal; otherwise the extra insulin of
   the command (bolus + (rate - basal) x duration) may not exceed max_iob - IOB (oref0 caps
   insulinReq at max_iob - IOB and gives it as a 30-min temp of basal + 2 x insulinReq).
5. Predicted glucose in 30 min below target: no insulin above basal and no bolus (oref0
   runs a neutral or low temp when eventualBG < min_bg; SMB is off when minGuardBG is low).
6. Predictive low-glucose suspend: CGM or predicted glucose in 30 min below the threshold
   (80 mg/dL default, Loop's Glucose Safety Limit default) gives a zero temp, no bolus.

Each intervention appends a reason. The prediction is oref0-like: CGM + net insulin effect
(IOB now minus IOB in 30 min, times ISF) + the deviation (CGM slope minus insulin-driven
slope) decaying linearly to 0 over 60 min + announced carbs absorbed linearly over 3 h
(:meth:`Observation.predict_mg_dl`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from openinfusion.control.aid.interface import Array, Command, Observation


@dataclass(frozen=True)
class SupervisorSettings:
    """Limits of the supervisor (mg/dL, min and oref0 multipliers)."""

    lgs_threshold_mg_dl: float = 80.0
    horizon_min: float = 30.0
    stale_min: float = 12.0
    future_min: float = 5.0
    flat_min: float = 45.0
    cgm_low_mg_dl: float = 39.0
    cgm_high_mg_dl: float = 400.0
    max_duration_min: float = 30.0
    max_daily_safety_multiplier: float = 3.0
    current_basal_safety_multiplier: float = 4.0


class SafetySupervisor:
    """Clamps any command to the rules above; the only way a command reaches a pump."""

    def __init__(self, settings: SupervisorSettings | None = None) -> None:
        self.settings = settings or SupervisorSettings()

    def max_safe_basal_u_h(self, obs: Observation) -> Array:
        """min(max_basal, 3 x max daily basal, 4 x current basal) (U/h), oref0 maxSafeBasal."""
        p, s = obs.profile, self.settings
        return np.asarray(
            np.minimum.reduce(
                [
                    np.asarray(p.max_basal_u_h, dtype=float),
                    s.max_daily_safety_multiplier * np.asarray(p.max_daily_basal_u_h, float),
                    s.current_basal_safety_multiplier * np.asarray(p.basal_u_h, dtype=float),
                ]
            )
        )

    def cgm_problem(self, obs: Observation) -> list[str]:
        """Why each patient's CGM is unusable ("" when it is usable)."""
        s = self.settings
        value, age = obs.latest_cgm()
        cgm = np.atleast_2d(np.asarray(obs.cgm_mg_dl, dtype=float))
        t = np.asarray(obs.cgm_t_min, dtype=float)
        out: list[str] = []
        recent = (t >= obs.t_min - s.flat_min) & (t <= obs.t_min)
        span = (t[recent].max() - t[recent].min()) if recent.sum() >= 2 else 0.0
        for i in range(value.shape[0]):
            v = float(value[i])
            if np.isnan(v) or np.isinf(age[i]):
                out.append("no CGM reading")
            elif age[i] > s.stale_min:
                out.append(f"CGM {age[i]:.0f} min old (> {s.stale_min:g})")
            elif age[i] < -s.future_min:
                out.append(f"CGM {-age[i]:.0f} min in the future (> {s.future_min:g})")
            elif v < s.cgm_low_mg_dl or v > s.cgm_high_mg_dl:
                out.append(f"CGM {v:.0f} mg/dL outside {s.cgm_low_mg_dl:g}-{s.cgm_high_mg_dl:g}")
            else:
                row = cgm[i, recent]
                flat = (
                    span >= s.flat_min - 5.0
                    and not np.isnan(row).any()
                    and bool(np.all(row == row[0]))
                )
                out.append(f"CGM flat for {span:.0f} min" if flat else "")
        return out

    def predict_mg_dl(self, obs: Observation) -> Array:
        """Predicted glucose ``horizon_min`` ahead (mg/dL), NaN where CGM is unusable."""
        pred = obs.predict_mg_dl(np.array([self.settings.horizon_min]))[:, 0]
        ok = np.array([r == "" for r in self.cgm_problem(obs)])
        return np.asarray(np.where(ok, pred, np.nan))

    def check(self, obs: Observation, cmd: Command) -> Command:
        """The command made safe; every change is explained in ``reasons``."""
        s, p = self.settings, obs.profile
        n = p.n
        basal = np.asarray(p.basal_u_h, dtype=float)
        reasons: list[list[str]] = [[r] if r else [] for r in (cmd.reasons or ("",) * n)]
        rate = np.array(cmd.temp_basal_u_h, dtype=float, copy=True)
        bolus = np.array(cmd.bolus_u(), dtype=float, copy=True)
        dur = float(cmd.duration_min)
        if not (np.isfinite(dur) and 0 < dur <= s.max_duration_min):
            dur = s.max_duration_min

        def note(mask: Array | np.ndarray, text: str) -> None:
            for i in np.flatnonzero(mask):
                reasons[i].append(text)

        bad = np.isnan(rate)
        note(bad, "invalid rate: scheduled basal")
        rate = np.where(bad, basal, rate)
        note(rate < 0, "negative rate: 0")
        rate = np.maximum(rate, 0.0)
        bolus = np.where(np.isfinite(bolus), np.maximum(bolus, 0.0), 0.0)

        cap = self.max_safe_basal_u_h(obs)
        note(rate > cap, "capped at max safe basal")
        rate = np.minimum(rate, cap)

        problems = self.cgm_problem(obs)
        stale = np.array([pr != "" for pr in problems])
        for i in np.flatnonzero(stale & ((rate > basal) | (bolus > 0))):
            reasons[i].append(f"{problems[i]}: no insulin above basal")
        rate = np.where(stale, np.minimum(rate, basal), rate)
        bolus = np.where(stale, 0.0, bolus)

        iob_now = obs.iob_u()
        room = np.maximum(np.asarray(p.max_iob_u, dtype=float) - iob_now, 0.0)
        over = bolus > room
        note(over, "bolus limited by max IOB")
        bolus = np.minimum(bolus, room)
        rate_cap = basal + (room - bolus) * 60.0 / dur
        note(rate > rate_cap + 1e-12, "temp limited by max IOB")
        rate = np.minimum(rate, np.maximum(rate_cap, basal))
        rate = np.where(room <= 0, np.minimum(rate, basal), rate)

        pred = self.predict_mg_dl(obs)
        target = np.asarray(p.target_mg_dl, dtype=float)
        low = ~stale & (pred < target)
        note(low & ((rate > basal) | (bolus > 0)), "predicted below target: no extra insulin")
        rate = np.where(low, np.minimum(rate, basal), rate)
        bolus = np.where(low, 0.0, bolus)

        bg, _ = obs.latest_cgm()
        thr = s.lgs_threshold_mg_dl
        suspend = ~stale & ((pred < thr) | (bg < thr))
        note(suspend & ((rate > 0) | (bolus > 0)), f"predicted below {thr:g} mg/dL: suspend")
        rate = np.where(suspend, 0.0, rate)
        bolus = np.where(suspend, 0.0, bolus)

        return replace(
            cmd,
            temp_basal_u_h=np.asarray(rate),
            duration_min=dur,
            micro_bolus_u=np.asarray(bolus),
            reasons=tuple("; ".join(r) for r in reasons),
        )
