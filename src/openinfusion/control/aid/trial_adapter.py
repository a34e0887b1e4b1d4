"""Run AID controllers in the glucose trial engine (``openinfusion.sim.glucose_trial``).

:class:`TrialAid` satisfies the trial's ``Controller`` protocol (``name``, ``sample_min``,
``reset``, ``decide``) structurally, without importing layer 4. It keeps the last hour of
CGM, a DIA-long per-minute history of the insulin it asked for (for IOB) and 6 h of meal
announcements, builds an :class:`Observation` and returns the supervised command as U/min.

Profile of a virtual subject (local choices): basal = the subject's steady-state basal,
ISF = its correction factor, CR = its carb ratio, target 120 mg/dL, max basal = 4 x basal
(Trio's "about 4 x the highest basal", AID_REFERENCE.md §3.1), max IOB = TDI / 3 (room for
the largest meal bolus of the cohort; AAPS hard limits for adults are 7 U (AMA) and 22 U
(SMB), §3.1).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from openinfusion.control.aid.base import AidController
from openinfusion.control.aid.interface import Array, Command, Observation, Profile
from openinfusion.control.aid.mpc import MpcController
from openinfusion.control.aid.oref_controller import OrefController
from openinfusion.control.aid.pid import PidIfbController
from openinfusion.physiology.glucose import GlucosePatients

CGM_KEEP_MIN = 60
CARBS_KEEP_MIN = 360


def profile_for(
    patients: GlucosePatients, basal_u_min: Array, *, target_mg_dl: float = 120.0
) -> Profile:
    """Therapy profile of the virtual subjects (see the module notes)."""
    p = patients.parameters
    basal = np.asarray(basal_u_min, dtype=float) * 60.0
    n = basal.shape[0]
    return Profile(
        basal_u_h=basal,
        isf_mg_dl_u=np.asarray(p.correction_factor_mg_dl_per_u, dtype=float),
        carb_ratio_g_u=np.asarray(p.carb_ratio_g_per_u, dtype=float),
        target_mg_dl=np.full(n, target_mg_dl),
        max_basal_u_h=4.0 * basal,
        max_iob_u=np.asarray(p.total_daily_insulin_u, dtype=float) / 3.0,
        max_daily_basal_u_h=basal.copy(),
    )


Factory = Callable[[GlucosePatients, Profile], AidController]


class TrialAid:
    """A trial ``Controller`` around an :class:`AidController` built by ``factory``."""

    def __init__(self, name: str, factory: Factory, *, sample_min: int = 5) -> None:
        self.name = name
        self.sample_min = sample_min
        self._factory = factory
        self.controller: AidController | None = None
        self.last_command: Command | None = None

    def reset(self, patients: GlucosePatients, basal_u_min: Array) -> None:
        """Start a run: a fresh controller and empty histories (insulin = basal so far)."""
        self.profile = profile_for(patients, basal_u_min)
        self.controller = self._factory(patients, self.profile)
        n = self.profile.n
        self._dia = round(self.profile.dia_h * 60)
        self._cgm_t: list[float] = []
        self._cgm: list[Array] = []
        self._ins = np.repeat(np.asarray(basal_u_min, dtype=float)[:, None], self._dia, axis=1)
        self._carb_t: list[float] = []
        self._carbs: list[Array] = []
        self._n = n

    def decide(self, t_min: int, cgm_mg_dl: Array, carbs_g: Array) -> Array:
        """Insulin (U/min, (N,)) for the next ``sample_min`` minutes."""
        if self.controller is None:
            raise RuntimeError("reset() must be called before decide()")
        self._cgm_t.append(float(t_min))
        self._cgm.append(np.asarray(cgm_mg_dl, dtype=float))
        while self._cgm_t and self._cgm_t[0] < t_min - CGM_KEEP_MIN:
            self._cgm_t.pop(0)
            self._cgm.pop(0)
        carbs = np.asarray(carbs_g, dtype=float)
        if np.any(carbs > 0):
            self._carb_t.append(float(t_min))
            self._carbs.append(carbs)
        while self._carb_t and self._carb_t[0] < t_min - CARBS_KEEP_MIN:
            self._carb_t.pop(0)
            self._carbs.pop(0)
        obs = Observation(
            t_min=float(t_min),
            cgm_t_min=np.array(self._cgm_t),
            cgm_mg_dl=np.stack(self._cgm, axis=1),
            insulin_t_min=np.arange(t_min - self._dia, t_min, dtype=float),
            insulin_u=self._ins,
            carbs_t_min=np.array(self._carb_t),
            carbs_g=np.stack(self._carbs, axis=1) if self._carbs else np.zeros((self._n, 0)),
            profile=self.profile,
        )
        cmd = self.controller.step(obs)
        self.last_command = cmd
        s = self.sample_min
        per_min = np.asarray(cmd.temp_basal_u_h) / 60.0
        new = np.repeat(per_min[:, None], s, axis=1)
        new[:, 0] += cmd.bolus_u()
        self._ins = np.concatenate([self._ins[:, s:], new], axis=1)
        return np.asarray(per_min + cmd.bolus_u() / s)


def pid_controller() -> TrialAid:
    """Factory for the trial: PID with insulin feedback (register as "pid")."""
    return TrialAid(
        "pid",
        lambda pts, prof: PidIfbController(
            np.asarray(pts.parameters.total_daily_insulin_u, dtype=float)
        ),
    )


def mpc_controller() -> TrialAid:
    """Factory for the trial: linear MPC (register as "mpc")."""
    return TrialAid("mpc", lambda pts, prof: MpcController())


def oref_controller() -> TrialAid:
    """Factory for the trial: oref determine-basal, temp basals only (register as "oref")."""
    return TrialAid("oref", lambda pts, prof: OrefController())


def oref_smb_controller() -> TrialAid:
    """Factory for the trial: oref1 with super-micro-boluses (register as "oref-smb")."""
    return TrialAid("oref-smb", lambda pts, prof: OrefController(smb=True))
