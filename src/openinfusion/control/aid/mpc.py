"""A linear model-predictive controller (MPC), vectorized over N patients.

Model (linear in the insulin deviation v from scheduled basal, U/h): glucose over the next
``horizon_min`` is the scheduled-basal prediction of :meth:`Observation.predict_mg_dl`
(CGM, IOB and the oref0 exponential insulin curve, announced carbs, decaying deviation)
minus ISF times the insulin of v that acts by then:

    G(t) = G_free(t) - ISF * sum_j v_j/60 * int_{block j} (1 - iob_fraction(t - s)) ds

v is piecewise constant over ``blocks`` 30-min blocks (the first one is the 30-min temp).
With w = ISF v the step-response matrix S is the same for every patient, so the regularised
least-squares problem  min ||G_free - target - S w||^2 + lam ||w||^2  has one gain matrix
K = (S'S + lam I)^-1 S' for the whole cohort. Constraints 0 <= basal + v <= max_basal:
``solver="clip"`` (default) clips the first move of the unconstrained optimum (closed form
with clipping, receding horizon); ``solver="qp"`` solves the bounded problem per patient
with ``scipy.optimize.lsq_linear`` (a box-constrained QP). Announced meals get a carbs/CR
bolus (hybrid closed loop), and the prediction counts those carbs.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.optimize import lsq_linear  # type: ignore[import-untyped]

from openinfusion.control.aid.base import AidController
from openinfusion.control.aid.interface import Array, Command, Observation, iob_fraction
from openinfusion.control.aid.supervisor import SafetySupervisor


@lru_cache(maxsize=8)
def step_matrix(
    horizon_min: int, step_min: int, block_min: int, blocks: int, dia_h: float, peak_min: float
) -> Array:
    """S (H, blocks): glucose drop (mg/dL per unit ISF) at each prediction point from 1 U/h
    above basal held over each block."""
    pts = np.arange(step_min, horizon_min + 1, step_min, dtype=float)
    s = np.zeros((pts.size, blocks))
    for j in range(blocks):
        starts = np.arange(j * block_min, (j + 1) * block_min, dtype=float)
        for k, t in enumerate(pts):
            given = starts[starts < t]
            s[k, j] = np.sum(1.0 - iob_fraction(t - given - 0.5, dia_h, peak_min)) / 60.0
    s.setflags(write=False)
    return s


class MpcController(AidController):
    """Linear MPC on temp basals, horizon 3 h (see the module notes)."""

    name = "mpc"

    def __init__(
        self,
        *,
        horizon_min: int = 180,
        step_min: int = 5,
        block_min: int = 30,
        blocks: int = 6,
        move_penalty: float = 4.0,
        solver: str = "clip",
        meal_bolus: bool = True,
        sample_min: int = 5,
        supervisor: SafetySupervisor | None = None,
    ) -> None:
        super().__init__(supervisor)
        if solver not in ("clip", "qp"):
            raise ValueError(f"solver {solver!r} must be clip or qp")
        self.horizon_min, self.step_min = horizon_min, step_min
        self.block_min, self.blocks = block_min, blocks
        self.move_penalty = move_penalty
        self.solver = solver
        self.meal_bolus = meal_bolus
        self.sample_min = sample_min

    def _matrix(self, obs: Observation) -> Array:
        p = obs.profile
        return step_matrix(
            self.horizon_min, self.step_min, self.block_min, self.blocks, p.dia_h, p.peak_min
        )

    def plan_u_h(self, obs: Observation, bolus_u: Array) -> Array:
        """Optimal temp-basal deviations (N, blocks) in U/h from scheduled basal."""
        p = obs.profile
        s = self._matrix(obs)
        pts = np.arange(self.step_min, self.horizon_min + 1, self.step_min, dtype=float)
        isf = np.asarray(p.isf_mg_dl_u, dtype=float)
        free = obs.predict_mg_dl(pts)
        # a bolus given now acts like insulin already on board
        bolus_drop = (
            isf[:, None] * bolus_u[:, None] * (1.0 - iob_fraction(pts, p.dia_h, p.peak_min))
        )
        err = free - bolus_drop - np.asarray(p.target_mg_dl, dtype=float)[:, None]
        err = np.nan_to_num(err)
        lam = self.move_penalty
        basal = np.asarray(p.basal_u_h, dtype=float)
        if self.solver == "clip":
            k = np.linalg.solve(s.T @ s + lam * np.eye(self.blocks), s.T)
            w = err @ k.T  # (N, blocks), mg/dL-scaled
            return np.asarray(w / isf[:, None])
        hi = np.asarray(p.max_basal_u_h, dtype=float) - basal
        a = np.vstack([s, np.sqrt(lam) * np.eye(self.blocks)])
        out = np.zeros((p.n, self.blocks))
        for i in range(p.n):
            b = np.concatenate([err[i], np.zeros(self.blocks)])
            lo_i, hi_i = -basal[i] * isf[i], max(hi[i], 0.0) * isf[i]
            res = lsq_linear(a, b, bounds=(lo_i, hi_i + 1e-12))
            out[i] = res.x / isf[i]
        return out

    def propose(self, obs: Observation) -> Command:
        p = obs.profile
        bolus = np.zeros(p.n)
        if self.meal_bolus:
            carbs = np.asarray(obs.carbs_g, dtype=float)
            t = np.asarray(obs.carbs_t_min, dtype=float)
            new = (t > obs.t_min - self.sample_min) & (t <= obs.t_min)
            if carbs.size:
                bolus = carbs[:, new].sum(axis=1) / np.asarray(p.carb_ratio_g_u, dtype=float)
        v = self.plan_u_h(obs, bolus)[:, 0]
        basal = np.asarray(p.basal_u_h, dtype=float)
        rate = np.clip(basal + v, 0.0, np.asarray(p.max_basal_u_h, dtype=float))
        bg, _ = obs.latest_cgm()
        rate = np.where(np.isnan(bg), basal, rate)
        return Command(
            temp_basal_u_h=np.asarray(rate),
            duration_min=float(self.block_min),
            micro_bolus_u=bolus,
            reasons=tuple("mpc" for _ in range(p.n)),
        )
