"""The oref determine-basal algorithm as a closed-loop controller for N virtual patients.

:class:`OrefController` turns an :class:`Observation` into the reference algorithm's own
inputs for each patient (the CGM record list, the 48-tick calculate-iob array as delivered
and with a zero temp, the running temp, the meal data and an oref0 profile), decides for all
patients in one call of :func:`~openinfusion.control.aid.oref.batch.determine_basal_batch`
(the same numbers as the scalar ``determine_basal``), and returns the decisions as one
:class:`Command`, which the :class:`SafetySupervisor` then checks like any other. The
Command's reasons name the rule that decided ("oref: high temp"); the full reason text of a
patient is built on request (:meth:`OrefController.decision`, ``last_decisions``).

What the adapter supplies, and how it differs from a rig running the whole oref0 pipeline
(`oref0-calculate-iob`, `oref0-meal`, `oref0-detect-sensitivity`):
- IOB ticks (now + 5k min, k = 0..47) from the insulin history in the observation, net of
  the scheduled basal, with delivery truncated at now (scheduled basal afterwards), and the
  zero-temp ticks with basal withheld from now on; curve: the oref0 exponential curve of the
  profile (``dia_h``, ``peak_min``).
- Carbs on board are absorbed as oref0's meal module infers it (lib/determine-basal/cob.js,
  AID_REFERENCE.md §2.3): each 5-min step absorbs max(carb impact, min_5m_carbimpact)/CSF
  grams, where the carb impact is the observed 5-min glucose change minus the insulin effect
  BGI = -activity x ISF x 5, and CSF = ISF/CR. A fixed absorption time would leave carbs "on
  board" that the UVA/Padova gut has already absorbed, and the oref1 micro-boluses would dose
  them. Simplifications: COB is a running total (not re-derived from 6 h of history), the
  deviation slopes of the meal data are 0 (the UAM curve decays by its 3-hour bound only),
  and the autosens ratio is 1.
- A temp the algorithm leaves unchanged ("temp ... ~ req ...", no ``rate`` in the result)
  keeps running until it expires; then the scheduled basal runs.
- Announced meals get a carbs/CR bolus at announcement (the user's meal bolus, as a pump's
  bolus wizard gives it; the same rule the PID and MPC adapters use), which oref then sees
  as insulin on board. With ``smb=True`` the oref1 super-micro-bolus is enabled with carbs
  and after carbs, and unannounced-meal (UAM) handling stays on (the oref0 default).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openinfusion.control.aid.base import AidController
from openinfusion.control.aid.interface import (
    Array,
    Command,
    Observation,
    activity_fraction,
    iob_fraction,
)
from openinfusion.control.aid.oref import (
    current_temp,
    get_last_glucose,
    glucose_records,
    meal_data,
    oref_profile,
)
from openinfusion.control.aid.oref.batch import BatchResult, Branch, determine_basal_batch
from openinfusion.control.aid.oref.batch_glucose import glucose_status_batch, status_dict
from openinfusion.control.aid.oref.batch_inputs import ScalarCase, TickArrays, batch_inputs
from openinfusion.control.aid.supervisor import SafetySupervisor

TICKS = 48  # calculate-iob gives 4 h of 5-min ticks
TICK_MIN = 5.0
MEAL_WINDOW_MIN = 360.0  # oref0 meal data counts carbs of the last 6 h
EPOCH_MS = 1_767_225_600_000.0  # trial minute 0 = 2026-01-01T00:00Z (any fixed instant works)
TEMP_MAX_MIN = 30.0  # the supervisor clips every temp to 30 min
MIN_5M_CARBIMPACT = 8.0  # mg/dL per 5 min, oref0 profile default (AID_REFERENCE.md §2.3)
MAX_COB_G = 120.0  # oref0 maxCOB default
GLUCOSE_DEVICE = "openinfusion"  # the device glucose_records names by default


def minute_ms(t_min: float) -> float:
    """Trial minute as milliseconds since the Unix epoch."""
    return EPOCH_MS + t_min * 60_000.0


class OrefController(AidController):
    """oref0/oref1 determine-basal for each patient, behind the safety supervisor."""

    def __init__(
        self,
        *,
        smb: bool = False,
        meal_bolus: bool = True,
        supervisor: SafetySupervisor | None = None,
    ) -> None:
        super().__init__(supervisor)
        self.name = "oref-smb" if smb else "oref"
        self.smb = smb
        self.meal_bolus = meal_bolus
        self._temp_u_h: Array = np.zeros(0)
        self._temp_end_min: Array = np.zeros(0)
        self._new_temp: NDArray[np.bool_] = np.zeros(0, dtype=bool)
        self._proposed_u_h: Array = np.zeros(0)
        self._last_bolus_min: Array = np.zeros(0)
        self._cob_g: Array = np.zeros(0)
        self._cob_t_min = -math.inf
        self._result: BatchResult | None = None
        self._profiles: dict[tuple[float, ...], dict[str, Any]] = {}
        self._rows: NDArray[np.intp] = np.zeros(0, dtype=np.intp)

    def _init(self, n: int) -> None:
        if self._temp_u_h.shape != (n,):
            self._temp_u_h = np.zeros(n)
            self._temp_end_min = np.full(n, -math.inf)
            self._last_bolus_min = np.full(n, -math.inf)
            self._cob_g = np.zeros(n)
            self._cob_t_min = -math.inf

    def _ticks(self, obs: Observation) -> tuple[Array, Array, Array, Array]:
        """IOB (U) and activity (U/min), as delivered and with a zero temp, shape (N, 48)."""
        p = obs.profile
        ahead = np.arange(TICKS, dtype=float) * TICK_MIN
        lag = obs.t_min + ahead[None, :] - np.asarray(obs.insulin_t_min, dtype=float)[:, None]
        basal_u_min = np.asarray(p.basal_u_h, dtype=float) / 60.0
        net = np.asarray(obs.insulin_u, dtype=float) - basal_u_min[:, None]
        iob = net @ iob_fraction(lag, p.dia_h, p.peak_min)
        act = net @ activity_fraction(lag, p.dia_h, p.peak_min)
        # A zero temp from now withholds basal_u_min in every minute m in [0, ahead): its
        # effect at a tick is -basal x the sum of the kernel over lags 1..ahead.
        lags = np.arange(1, int(ahead[-1]) + 1, dtype=float)
        cum_iob = np.concatenate([[0.0], np.cumsum(iob_fraction(lags, p.dia_h, p.peak_min))])
        cum_act = np.concatenate([[0.0], np.cumsum(activity_fraction(lags, p.dia_h, p.peak_min))])
        k = ahead.astype(int)
        zt_iob = iob - basal_u_min[:, None] * cum_iob[k][None, :]
        zt_act = act - basal_u_min[:, None] * cum_act[k][None, :]
        return iob, act, zt_iob, zt_act

    def _profile(self, obs: Observation, i: int) -> dict[str, Any]:
        """Patient i's oref0 profile; made (and checked) once per distinct set of therapy
        settings, then reused (the algorithm only reads it)."""
        p = obs.profile
        key = (
            float(p.basal_u_h[i]),
            float(p.isf_mg_dl_u[i]),
            float(p.carb_ratio_g_u[i]),
            float(p.target_mg_dl[i]),
            float(p.max_iob_u[i]),
            float(p.max_basal_u_h[i]),
            float(p.max_daily_basal_u_h[i]),
            float(p.dia_h),
            float(p.peak_min),
        )
        cached = self._profiles.get(key)
        if cached is not None:
            return cached
        basal, isf, ratio, target, max_iob, max_basal, max_daily = key[:7]
        extra: dict[str, Any] = {"dia": p.dia_h, "insulinPeakTime": p.peak_min}
        if self.smb:
            extra |= {"enableSMB_with_COB": True, "enableSMB_after_carbs": True}
        made = oref_profile(
            basal,
            isf,
            ratio,
            target,
            target,
            max_iob_u=max_iob,
            max_basal_u_h=max_basal,
            max_daily_basal_u_h=max_daily,
            **extra,
        )
        self._profiles[key] = made
        return made

    def _carbs_on_board(self, obs: Observation, activity_u_min: Array) -> Array:
        """Advance the deviation-based COB (g) to ``obs.t_min`` and add new announcements."""
        p = obs.profile
        isf = np.asarray(p.isf_mg_dl_u, dtype=float)
        csf = isf / np.asarray(p.carb_ratio_g_u, dtype=float)  # mg/dL per g
        steps = (obs.t_min - self._cob_t_min) / TICK_MIN
        if math.isfinite(steps) and steps > 0:
            delta = obs.slope_mg_dl_min(window_min=TICK_MIN) * TICK_MIN
            bgi = -activity_u_min * isf * TICK_MIN
            impact = np.maximum(np.nan_to_num(delta - bgi), MIN_5M_CARBIMPACT)
            self._cob_g = np.maximum(self._cob_g - impact / csf * steps, 0.0)
        self._cob_t_min = obs.t_min
        carbs_t = np.asarray(obs.carbs_t_min, dtype=float)
        new = (carbs_t > obs.t_min - TICK_MIN) & (carbs_t <= obs.t_min)
        if new.any():
            carbs = np.asarray(obs.carbs_g, dtype=float).reshape(p.n, -1)
            self._cob_g = self._cob_g + carbs[:, new].sum(axis=1)
        self._cob_g = np.minimum(self._cob_g, MAX_COB_G)
        return self._cob_g.copy()

    def propose(self, obs: Observation) -> Command:
        p = obs.profile
        n = p.n
        self._init(n)
        now_ms = minute_ms(obs.t_min)
        iob, act, zt_iob, zt_act = self._ticks(obs)
        cob = self._carbs_on_board(obs, act[:, 0])
        carbs_t = np.asarray(obs.carbs_t_min, dtype=float)
        carbs = np.asarray(obs.carbs_g, dtype=float).reshape(n, -1)
        recent = (carbs_t > obs.t_min - MEAL_WINDOW_MIN) & (carbs_t <= obs.t_min)
        cgm = np.atleast_2d(np.asarray(obs.cgm_mg_dl, dtype=float))
        cgm_ms = [minute_ms(float(t)) for t in np.asarray(obs.cgm_t_min, dtype=float)]
        basal = np.asarray(p.basal_u_h, dtype=float)

        # The meal bolus goes first, as a wizard bolus would: the algorithm then sees it
        # on board (and the SMB interval counts from it) instead of dosing the carbs twice.
        bolus = np.zeros(n)
        if self.meal_bolus and carbs.size:
            new = (carbs_t > obs.t_min - TICK_MIN) & (carbs_t <= obs.t_min)
            bolus = carbs[:, new].sum(axis=1) / np.asarray(p.carb_ratio_g_u, dtype=float)
            ahead = np.arange(TICKS, dtype=float) * TICK_MIN
            iob = iob + bolus[:, None] * iob_fraction(ahead, p.dia_h, p.peak_min)[None, :]
            act = act + bolus[:, None] * activity_fraction(ahead, p.dia_h, p.peak_min)[None, :]
            zt_iob = zt_iob + bolus[:, None] * iob_fraction(ahead, p.dia_h, p.peak_min)[None, :]
            zt_act = (
                zt_act + bolus[:, None] * activity_fraction(ahead, p.dia_h, p.peak_min)[None, :]
            )
        last_bolus_min = np.where(bolus > 0, obs.t_min, self._last_bolus_min)
        rate = basal.copy()
        new_temp = np.zeros(n, dtype=bool)
        running = self._temp_end_min > obs.t_min
        remaining = np.where(running, self._temp_end_min - obs.t_min, 0.0)
        held = np.where(running, self._temp_u_h, basal)
        have = ~np.isnan(cgm)
        patients = [i for i in range(n) if have[i].any()]
        cases: list[ScalarCase] = []
        status = glucose_status_batch(np.asarray(cgm_ms), cgm)
        for i in patients:
            if status.exact[i]:
                glucose = status_dict(status, i, GLUCOSE_DEVICE)
            else:
                times = [t for t, ok in zip(cgm_ms, have[i], strict=True) if ok]
                glucose = get_last_glucose(glucose_records(times, cgm[i][have[i]].tolist()))
            mine = carbs[i, recent] if carbs.size else np.zeros(0)
            eaten = mine > 0
            last_carb_ms = minute_ms(float(carbs_t[recent][eaten].max())) if eaten.any() else 0.0
            ticks = TickArrays(
                iob[i],
                act[i],
                zt_iob[i],
                zt_act[i],
                last_bolus_time_ms=(
                    minute_ms(float(last_bolus_min[i]))
                    if math.isfinite(last_bolus_min[i])
                    else None
                ),
            )
            cases.append(
                ScalarCase(
                    glucose,
                    current_temp(self._temp_u_h[i] if running[i] else 0.0, float(remaining[i])),
                    ticks,
                    self._profile(obs, i),
                    None,
                    meal_data(float(mine.sum()), float(cob[i]), last_carb_ms),
                    self.smb,
                    now_ms,
                )
            )
        # One batch decision for every patient with a reading; reasons are materialised
        # only when asked for (:meth:`decision`, :attr:`last_decisions`).
        self._result = None
        self._rows = np.full(n, -1, dtype=np.intp)
        reasons = ["oref: no CGM reading"] * n
        rate[:] = held
        if patients:
            result = determine_basal_batch(batch_inputs(cases))
            self._result = result
            rows = np.asarray(patients)
            self._rows[rows] = np.arange(len(patients))
            decided = result.present["rate"]
            rate[rows] = np.where(decided, result.values["rate"], held[rows])
            new_temp[rows] = decided
            smb_u = result.values["units"]
            given = result.present["units"] & (smb_u > 0)
            bolus[rows] += np.where(given, smb_u, 0.0)
            for row, i in enumerate(patients):
                branch = Branch(int(result.branch[row]))
                reasons[i] = f"oref: {branch.name.lower().replace('_', ' ')}"

        self._new_temp = new_temp
        self._proposed_u_h = rate.copy()
        return Command(
            temp_basal_u_h=rate,
            duration_min=TEMP_MAX_MIN,
            micro_bolus_u=bolus,
            reasons=tuple(reasons),
        )

    def decision(self, i: int) -> dict[str, Any]:
        """Patient i's full decision of the last step (the reference's fields, with the
        ``reason`` text), materialised from the batch result on demand."""
        row = int(self._rows[i])
        if row < 0 or self._result is None:
            return {"error": "no CGM reading"}
        return self._result.decision(row)

    @property
    def last_result(self) -> BatchResult | None:
        """The last step's batch result (rows: the patients with a CGM reading, in order),
        None when no patient had one."""
        return self._result

    @property
    def last_decisions(self) -> list[dict[str, Any]]:
        """Every patient's full decision of the last step (reason texts built now)."""
        return [self.decision(i) for i in range(len(self._rows))]

    def delivered(self, obs: Observation, proposed: Command, safe: Command) -> None:
        """Remember the temp the pump now runs: a new or supervisor-changed rate starts a
        fresh 30-min temp; an unchanged decision lets the running temp go on."""
        safe_rate = np.asarray(safe.temp_basal_u_h, dtype=float)
        changed = np.abs(safe_rate - self._proposed_u_h) > 1e-9
        restart = self._new_temp | changed
        self._temp_u_h = np.where(restart, safe_rate, self._temp_u_h)
        self._temp_end_min = np.where(
            restart, obs.t_min + min(safe.duration_min, TEMP_MAX_MIN), self._temp_end_min
        )
        given = safe.bolus_u() > 0
        self._last_bolus_min = np.where(given, obs.t_min, self._last_bolus_min)
