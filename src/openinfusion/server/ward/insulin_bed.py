"""A ward bed on closed-loop insulin: patch pump, CGM and a virtual type 1 patient.

The patient is a UVA/Padova 2008 subject (:mod:`openinfusion.physiology.glucose`) fed each
minute with the insulin the pump's engine actually delivered that minute; a Dexcom-like CGM
(:class:`~openinfusion.physiology.sensors.CgmSensor`, seeded) reads its subcutaneous
glucose; every 5 min the PID-with-insulin-feedback controller behind its safety
supervisor (:mod:`openinfusion.control.aid`) decides a rate, which the pump runs as a
30-min temp basal (so the schedule takes over by itself if the loop stops, RELIABILITY
F-12), or a suspend when it asks for less than one pulse an hour. Meals (g of carbohydrate)
come with a bolus from the pump's own bolus wizard. Profile values follow
``control.aid.trial_adapter.profile_for``.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import numpy as np

from openinfusion.control.aid.trial_adapter import TrialAid, pid_controller
from openinfusion.physiology.glucose import GlucosePatients
from openinfusion.physiology.sensors import CgmSensor
from openinfusion.pump.channel import State
from openinfusion.pump.clock import PumpClock
from openinfusion.pump.insulin import InsulinPump, InsulinSettings, floor_to
from openinfusion.server.ward.bedside import Bedside
from openinfusion.server.ward.pumps import Profile, SimPump

SUBJECTS = tuple(f"adult#{i:03d}" for i in range(1, 11)) + tuple(
    f"adolescent#{i:03d}" for i in range(1, 11)
)
LOOP_MIN = 5
#: Meals as (hour of the day, carbohydrate g): breakfast, lunch, dinner.
MEALS = ((7.5, 45.0), (12.5, 70.0), (19.0, 80.0))


class InsulinBed(SimPump):
    """An insulin patch pump on closed loop with a virtual patient."""

    def __init__(self, profile: Profile, serial: str, rng: random.Random) -> None:
        self.subject = rng.choice(SUBJECTS)
        self.patient = GlucosePatients.from_names([self.subject])
        params = self.patient.parameters
        basal = floor_to(float(self.patient.steady_state_basal_u_per_h[0]), 0.05)
        tdi = float(params.total_daily_insulin_u[0])
        self.settings = InsulinSettings(
            basal=[("00:00", basal)],
            carb_ratio_g_per_unit=round(float(params.carb_ratio_g_per_u[0]), 1),
            isf_mg_dl_per_unit=round(float(params.correction_factor_mg_dl_per_u[0]), 1),
            target_low_mg_dl=100.0,
            target_high_mg_dl=120.0,
            max_basal_units_h=floor_to(4.0 * basal, 0.05),
            max_bolus_units=15.0,
            max_iob_units=round(tdi / 3.0, 1),
        )
        self.insulin = InsulinPump(reservoir_units=300.0)
        self.start_utc = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
        self.cgm = CgmSensor("Dexcom", seed=rng.randrange(2**31))
        self.loop: TrialAid = pid_controller()
        self.loop.reset(self.patient, self.patient.steady_state_basal_u_per_min)
        self._delivered_u = 0.0
        self._carbs_since_loop = 0.0
        self._carbs_pending = 0.0
        self.cgm_mg_dl: float | None = None
        self.t_min = 0
        bedside = Bedside(self.insulin.device, kind=profile.kind)
        bedside.observe = self.observation
        super().__init__(profile, serial, rng, self.insulin.device, bedside)
        self.nurse_resumes = False  # a suspend is the loop's decision, not an alarm
        self.at(60.0, "glucose minute", _minute)
        for day in range(4):
            for hour, grams in MEALS:
                t = (day * 24 + hour - 6.0) * 3600.0 + rng.uniform(-1800, 1800)
                if t > 0:
                    self.at(t, f"meal {grams:g} g", _meal(grams * rng.uniform(0.8, 1.2)))

    def start(self) -> None:
        self.insulin.start(self.settings, PumpClock(start_utc=self.start_utc))

    def _advance_device(self, t_s: float) -> None:
        if t_s > self.insulin.now:
            self.insulin.advance_to(t_s)

    def observation(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "cgm_mg_dl": self.cgm_mg_dl,
            "bg_mg_dl": float(self.patient.bg_mg_dl[0]),
            "iob_u": self.insulin.iob() if self.insulin.settings is not None else None,
            "insulin_u": self.insulin.delivered_units,
            "loop": "closed",
        }


def _minute(bed: SimPump) -> None:
    """One minute of the patient on the insulin delivered in it; the loop every 5 min."""
    assert isinstance(bed, InsulinBed)
    delivered = bed.insulin.delivered_units
    units, bed._delivered_u = delivered - bed._delivered_u, delivered
    carbs, bed._carbs_pending = bed._carbs_pending, 0.0
    bed.patient.step(carbs, max(units, 0.0))
    bed.t_min += 1
    reading = bed.cgm.measure(float(bed.t_min), bed.patient.subcutaneous_glucose_mg_dl)
    bed.at(bed.device.t_s + 60.0, "glucose minute", _minute)
    if bed.t_min % LOOP_MIN:
        return
    value = float(reading[0])
    bed.cgm_mg_dl = value if np.isfinite(value) else None
    per_min = bed.loop.decide(bed.t_min, reading, np.array([bed._carbs_since_loop]))
    bed._carbs_since_loop = 0.0
    if 0 in bed.bedside.held:  # paused from the central station: the loop waits
        return
    rate = min(floor_to(float(per_min[0]) * 60.0, 0.05), bed.settings.max_basal_units_h)
    ch = bed.insulin.channel
    if rate < 0.05:
        if ch.state is State.RUNNING:
            bed.insulin.suspend()
        return
    if ch.state is State.PAUSED:
        bed.insulin.resume()
    if ch.state is State.RUNNING:
        bed.insulin.temp_basal(minutes=30, units_h=rate)


def _meal(grams: float) -> Any:
    def eat(bed: SimPump) -> None:
        assert isinstance(bed, InsulinBed)
        bed._carbs_pending += grams  # eaten from the next minute on
        bed._carbs_since_loop += grams
        if bed.cgm_mg_dl is not None and bed.insulin.channel.state is State.RUNNING:
            advice = bed.insulin.recommend(bed.cgm_mg_dl, grams)
            if advice.units >= 0.05:
                bed.insulin.bolus(advice.units)

    return eat
