"""PID with insulin feedback (IFB), vectorized over N patients.

The Medtronic "external physiologic insulin delivery" (ePID) lineage: Steil et al.,
Diabetes 55:3344-3350 (2006) (PID of glucose, gain set from the total daily insulin);
Steil et al., J Clin Endocrinol Metab 96:1402-1408 (2011) and Palerm, J Diabetes Sci Technol
5:1443 (2011) (insulin feedback: the output is reduced by a model estimate of plasma insulin,
which compensates the subcutaneous delay). The law, with e = CGM - target (mg/dL):

    PID = Kp (e + (1/TI) int e dt + TD dG/dt) + basal             (U/h)
    rate = (1 + gamma) PID - gamma I_hat                          (U/h)

I_hat is delivered insulin (temp basal + boluses, as U/h) through two first-order lags
(tau1 = 50 min, tau2 = 70 min; gamma = 0.5). TI = 450 min and TD = 90 min are the daytime
values reported for the ePID (Weinzimer et al., Diabetes Care 31:934, 2008) (lit., not
re-verified here). Kp is a local choice: Kp = TDI / 3600 U/h per mg/dL, i.e. the "1800
rule" correction (e x TDI / 1800 U) spread over 2 h; Steil 2006 scale the gain with TDI in
the same way but with their own constant. Anti-windup: conditional integration (the integral
does not grow while the supervised output is saturated in the direction of the error) and
the integral is kept within [0, max safe basal].
"""

from __future__ import annotations

import numpy as np

from openinfusion.control.aid.base import AidController
from openinfusion.control.aid.interface import Array, Command, Observation
from openinfusion.control.aid.supervisor import SafetySupervisor


class PidIfbController(AidController):
    """ePID-style PID with insulin feedback; announced meals get a carbs/CR bolus."""

    name = "pid"

    def __init__(
        self,
        tdi_u: Array,
        *,
        ti_min: float = 450.0,
        td_min: float = 90.0,
        gamma: float = 0.5,
        tau1_min: float = 50.0,
        tau2_min: float = 70.0,
        kp_divisor: float = 3600.0,
        sample_min: float = 5.0,
        meal_bolus: bool = True,
        supervisor: SafetySupervisor | None = None,
    ) -> None:
        super().__init__(supervisor)
        self.kp_u_h_per_mg_dl = np.asarray(tdi_u, dtype=float) / kp_divisor
        self.ti_min, self.td_min, self.gamma = ti_min, td_min, gamma
        self.tau1_min, self.tau2_min = tau1_min, tau2_min
        self.sample_min = sample_min
        self.meal_bolus = meal_bolus
        self._integral_u_h: Array | None = None
        self._i1_u_h: Array = np.zeros(0)
        self._i2_u_h: Array = np.zeros(0)
        self._last_error: Array = np.zeros(0)

    def reset(self) -> None:
        """Forget the integral and the insulin estimate (they restart at basal)."""
        self._integral_u_h = None

    def _init(self, obs: Observation) -> Array:
        if self._integral_u_h is None:
            basal = np.asarray(obs.profile.basal_u_h, dtype=float)
            self._integral_u_h = basal.copy()
            self._i1_u_h = basal.copy()
            self._i2_u_h = basal.copy()
        return self._integral_u_h

    def propose(self, obs: Observation) -> Command:
        integral = self._init(obs)
        p = obs.profile
        bg, _ = obs.latest_cgm()
        error = np.nan_to_num(bg - np.asarray(p.target_mg_dl, dtype=float))
        self._last_error = error
        slope = obs.slope_mg_dl_min()
        pid = self.kp_u_h_per_mg_dl * (error + self.td_min * slope) + integral
        rate = (1.0 + self.gamma) * pid - self.gamma * self._i2_u_h
        rate = np.where(np.isnan(bg), np.asarray(p.basal_u_h, dtype=float), rate)
        bolus = np.zeros(p.n)
        if self.meal_bolus:
            carbs = np.asarray(obs.carbs_g, dtype=float)
            t = np.asarray(obs.carbs_t_min, dtype=float)
            new = (t > obs.t_min - self.sample_min) & (t <= obs.t_min)
            bolus = (carbs[:, new].sum(axis=1) if carbs.size else bolus) / np.asarray(
                p.carb_ratio_g_u, dtype=float
            )
        return Command(
            temp_basal_u_h=np.maximum(rate, 0.0),
            duration_min=30.0,
            micro_bolus_u=bolus,
            reasons=tuple("pid" for _ in range(p.n)),
        )

    def delivered(self, obs: Observation, proposed: Command, safe: Command) -> None:
        integral = self._init(obs)
        dt = self.sample_min
        cap = self.supervisor.max_safe_basal_u_h(obs)
        e = self._last_error
        rate = np.asarray(safe.temp_basal_u_h, dtype=float)
        high = (rate >= cap - 1e-9) & (e > 0)
        low = (rate <= 1e-9) & (e < 0)
        grow = ~(high | low)
        ki = self.kp_u_h_per_mg_dl / self.ti_min
        self._integral_u_h = np.clip(np.where(grow, integral + ki * e * dt, integral), 0.0, cap)
        given = rate + safe.bolus_u() * 60.0 / dt  # U/h over the interval
        a1 = 1.0 - np.exp(-dt / self.tau1_min)
        a2 = 1.0 - np.exp(-dt / self.tau2_min)
        self._i1_u_h = self._i1_u_h + a1 * (given - self._i1_u_h)
        self._i2_u_h = self._i2_u_h + a2 * (self._i1_u_h - self._i2_u_h)
