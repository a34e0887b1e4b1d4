"""A ward bed with an implanted intrathecal pump: baclofen on a day/night flex schedule, with
patient-therapy-manager (PTM) presses from the patient, on the real implant engine
(:class:`openinfusion.pump.intrathecal.IntrathecalPump`; the prescription is parsed and
checked by the same code as an intrathecal scenario file)."""

from __future__ import annotations

import random
from typing import Any

from openinfusion.pump.clock import PumpClock
from openinfusion.pump.intrathecal import IntrathecalPump, implant_battery
from openinfusion.pump.intrathecal_scenario import IntrathecalProgramSpec, prescription_from_spec
from openinfusion.pump.scenario import scenario_from_data
from openinfusion.server.ward.bedside import Bedside
from openinfusion.server.ward.pumps import Action, Profile, SimPump


def baclofen_program(rng: random.Random) -> dict[str, Any]:
    day = rng.choice([500, 600, 700])
    return {
        "pump": {"kind": "implant", "reservoir_ml": 20},
        "duration": "90 days",
        "program": {
            "therapy": "intrathecal",
            "drug": "baclofen",
            "concentration": "2000 mcg/mL",
            "flex": [
                {"start": "06:00", "dose": f"{day} mcg/day"},
                {"start": "22:00", "dose": f"{day // 2} mcg/day"},
            ],
            "ptm": {"dose": "50 mcg", "lockout": "3 h", "max_per_day": 3},
            "max_daily_dose": f"{day + 200} mcg/day",
            "start": "2026-12-03T06:00:00",
            "timezone": "Europe/Paris",
        },
    }


class ImplantBed(SimPump):
    def __init__(self, profile: Profile, serial: str, rng: random.Random) -> None:
        scenario = scenario_from_data(profile.scenario(rng))
        program = scenario.program
        assert isinstance(program, IntrathecalProgramSpec)
        self.implant = IntrathecalPump(
            prescription_from_spec(program, scenario.pump.reservoir_ml),
            clock=PumpClock.at(program.start or "2026-12-03T06:00:00", program.timezone),
            battery=implant_battery(1.0),
            serial=serial,
        )
        bedside = Bedside(self.implant.device, kind=profile.kind)
        bedside.observe = lambda: {
            "drug": "baclofen",
            "reservoir_ml": self.implant.reservoir_ml,
            "last_24h_mcg": self.implant.trailing_amount() * 1000.0,
            "ptm_presses": len(self.implant.ptm_log),
        }
        super().__init__(profile, serial, rng, self.implant.device, bedside)
        self.nurse_resumes = False

    def start(self) -> None:
        self.implant.start()

    def _advance_device(self, t_s: float) -> None:
        if t_s > self.implant.t_s:
            self.implant.advance_to(t_s)


def baclofen_presses(rng: random.Random) -> list[tuple[float, str, Action]]:
    """The patient presses the PTM about four times a day (some presses are denied)."""
    out: list[tuple[float, str, Action]] = []
    t = 0.0
    while t < 7 * 86400:
        t += rng.expovariate(4.0 / 86400)
        out.append((t, "PTM press", _press))
    return out


def _press(bed: SimPump) -> None:
    assert isinstance(bed, ImplantBed)
    bed.implant.ptm()
