"""The ward's beds: every kind of pump the simulated ward runs, and the bed mix.

| profile | pump | therapy |
|---|---|---|
| icu-vasopressor | 50 mL syringe | norepinephrine or dopamine by mcg/kg/min |
| pca | PCA | morphine; the patient presses while in pain (PCA trials' pain model) |
| lvp | 2-channel LVP | maintenance fluid with VTBI; piperacillin-tazobactam q6h |
| icu-sedation | 50 mL syringe | propofol or dexmedetomidine |
| insulin-aid | insulin patch | closed loop with CGM on a UVA/Padova virtual patient |
| oncology-5fu | ambulatory | 46-h 5-FU 2400 mg/m2 |
| picu | 50 mL syringe | paediatric dopamine |
| intrathecal | implant | baclofen flex schedule with PTM presses |
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from openinfusion.errors import InputError
from openinfusion.server.ward.pumps import Action, Profile, ScenarioPump, SimPump

# ---- happenings ------------------------------------------------------------------------------


def _fault_cycle(
    rng: random.Random, fault: str, clear: str | None, channel: int = 0, **args: Any
) -> list[tuple[float, str, Action]]:
    """A fault some time in the first hours, then a nurse 2–6 min later."""
    t = rng.uniform(10 * 60, 3 * 3600)
    back = t + rng.uniform(120, 360)
    return [
        (t, f"fault {fault}", lambda p: p.fault(channel, fault, **args)),
        (back, f"nurse after {fault}", lambda p: p.nurse_restores(channel, clear)),
    ]


def _battery_cycle(rng: random.Random) -> list[tuple[float, str, Action]]:
    """A worn battery drains fast until someone plugs the pump in."""
    t = rng.uniform(5 * 60, 2 * 3600)
    return [
        (t, "battery wear", lambda p: p.fault(0, "battery_drain", extra_ma=3000.0)),
        (t + rng.uniform(2400, 3000), "plugged in", lambda p: p.device.set_mains(True)),
    ]


def _some_fault(rng: random.Random, channel: int = 0) -> list[tuple[float, str, Action]]:
    roll = rng.random()
    if roll < 0.35:
        return _fault_cycle(rng, "occlusion", "clear_occlusion", channel)
    if roll < 0.55:
        return _fault_cycle(rng, "air", "clear_air", channel, volume_ul=400.0)
    if roll < 0.7:
        return _battery_cycle(rng)
    return []


# ---- profiles --------------------------------------------------------------------------------


def _weight(rng: random.Random, low: float = 55, high: float = 110) -> str:
    return f"{round(rng.uniform(low, high))} kg"


# ICU syringe infusions: drug -> (concentration, doses to choose from, dose unit).
_Choices = dict[str, tuple[str, tuple[float, ...], str]]
_VASOPRESSORS: _Choices = {
    "norepinephrine": ("16 mg/250 mL", (0.05, 0.08, 0.1, 0.15), "mcg/kg/min"),
    "dopamine": ("800 mg/250 mL", (3, 5, 8), "mcg/kg/min"),
}
_SEDATIVES: _Choices = {
    "propofol": ("10 mg/mL", (15, 25, 35), "mcg/kg/min"),
    "dexmedetomidine": ("400 mcg/100 mL", (0.3, 0.5, 0.7), "mcg/kg/h"),
}


def _icu_syringe(rng: random.Random, drugs: _Choices) -> dict[str, Any]:
    drug = rng.choice(list(drugs))
    concentration, doses, unit = drugs[drug]
    program = {"drug": drug, "concentration": concentration, "dose": f"{rng.choice(doses)} {unit}"}
    return {
        "care_area": "Adult ICU",
        "patient": {"weight": _weight(rng)},
        "pump": {"kind": "syringe", "syringe_ml": 50},
        "duration": "72 h",
        "program": {"therapy": "continuous", **program},
    }


def _icu_vasopressor(rng: random.Random) -> dict[str, Any]:
    return _icu_syringe(rng, _VASOPRESSORS)


def _icu_sedation(rng: random.Random) -> dict[str, Any]:
    return _icu_syringe(rng, _SEDATIVES)


def _pca_morphine(rng: random.Random) -> dict[str, Any]:
    return {
        "care_area": "Adult Med-Surg",
        "patient": {"weight": _weight(rng)},
        "pump": {"kind": "pca"},
        "duration": "72 h",
        "program": {
            "therapy": "pca",
            "drug": "morphine",
            "concentration": "1 mg/mL",
            "demand_dose": "1 mg",
            "lockout": "10 min",
            "limit_4h": "10 mg",
        },
    }


def _lvp_fluids(rng: random.Random) -> dict[str, Any]:
    return {
        "override_reason": "maintenance fluid, no drug",
        "care_area": "Adult ICU",
        "patient": {"weight": _weight(rng)},
        "pump": {"kind": "lvp", "channels": 2},
        "duration": "72 h",
        "programs": [
            {
                "channel": 0,
                "program": {
                    "therapy": "continuous",
                    "rate": f"{rng.choice([75, 100, 125])} mL/h",
                    "vtbi": "1000 mL",
                },
            },
            {
                "channel": 1,
                "program": {
                    "therapy": "intermittent",
                    "drug": "piperacillin-tazobactam",
                    "concentration": "4.5 g/100 mL",
                    "dose": "4.5 g",
                    "every": "6 h",
                    "over": "30 min",
                },
            },
        ],
    }


def _oncology_5fu(rng: random.Random) -> dict[str, Any]:
    """mFOLFOX6's 46-hour 5-FU at home on an ambulatory pump (2400 mg/m2, BSA dosing)."""
    return {
        "care_area": "Oncology",
        "patient": {"weight": _weight(rng, 50, 95), "height": f"{round(rng.uniform(155, 190))} cm"},
        "pump": {"kind": "ambulatory", "reservoir_ml": 250},
        "duration": "72 h",
        "program": {
            "therapy": "intermittent",
            "drug": "fluorouracil",
            "therapy_name": "46-hour ambulatory infusion",
            "concentration": "50 mg/mL",
            "dose": "2400 mg/m2",
            "every": "14 d",
            "over": "46 h",
            "doses": 1,
        },
    }


def _picu_dopamine(rng: random.Random) -> dict[str, Any]:
    return {
        "care_area": "PICU",
        "patient": {"weight": _weight(rng, 8, 30)},
        "pump": {"kind": "syringe", "syringe_ml": 50},
        "duration": "72 h",
        "program": {
            "therapy": "continuous",
            "drug": "dopamine",
            "concentration": "1600 mcg/mL",
            "dose": f"{rng.choice([3, 5, 7])} mcg/kg/min",
        },
    }


def _insulin_bed(profile: Profile, serial: str, rng: random.Random) -> SimPump:
    # imported when first needed: the closed loop brings the control and glucose layers
    from openinfusion.server.ward.insulin_bed import InsulinBed

    return InsulinBed(profile, serial, rng)


def _implant_bed(profile: Profile, serial: str, rng: random.Random) -> SimPump:
    from openinfusion.server.ward.implant_bed import ImplantBed

    return ImplantBed(profile, serial, rng)


def _no_scenario(rng: random.Random) -> dict[str, object]:
    return {}


def _implant_happenings(rng: random.Random) -> list[tuple[float, str, Action]]:
    from openinfusion.server.ward.implant_bed import baclofen_presses

    return baclofen_presses(rng)


def _baclofen(rng: random.Random) -> dict[str, object]:
    from openinfusion.server.ward.implant_bed import baclofen_program

    return baclofen_program(rng)


PROFILES: dict[str, Profile] = {
    "icu-vasopressor": Profile(
        "icu-vasopressor", "syringe", "OI-Syringe 50", _icu_vasopressor, _some_fault
    ),
    "pca": Profile("pca", "pca", "OI-PCA", _pca_morphine, _some_fault),
    "lvp": Profile("lvp", "lvp", "OI-LVP 2ch", _lvp_fluids, _some_fault),
    "icu-sedation": Profile("icu-sedation", "syringe", "OI-Syringe 50", _icu_sedation, _some_fault),
    "insulin-aid": Profile(
        "insulin-aid", "insulin_patch", "OI-Patch AID", _no_scenario, factory=_insulin_bed
    ),
    "oncology-5fu": Profile(
        "oncology-5fu", "ambulatory", "OI-Ambulatory", _oncology_5fu, _some_fault
    ),
    "picu": Profile("picu", "syringe", "OI-Syringe 50", _picu_dopamine, _some_fault),
    "intrathecal": Profile(
        "intrathecal",
        "implant",
        "OI-Implant 20",
        _baclofen,
        _implant_happenings,
        factory=_implant_bed,
    ),
}

#: The ward's bed mix, cycled over the number of pumps asked for.
MIX: tuple[str, ...] = tuple(PROFILES)


def plan_ward(n: int, seed: int) -> list[tuple[str, str, random.Random]]:
    """(profile name, serial, RNG) for ``n`` pumps; the same seed gives the same ward."""
    if not 1 <= n <= 500:
        raise InputError("pumps", n, "must be 1 to 500")
    out = []
    for i in range(n):
        name = MIX[i % len(MIX)]
        serial = f"SIM-{seed}-{i + 1:03d}"
        out.append((name, serial, random.Random(f"{seed}:{i}")))
    return out


def build_pump(name: str, serial: str, rng: random.Random, journal: Path | None = None) -> SimPump:
    """Build a bed's pump. ``journal``: crash-safe journal file of a hospital, PCA or
    ambulatory pump (recovered from when it exists); the insulin and implant models keep
    their state in memory only."""
    if name not in PROFILES:
        raise InputError("profile", name, f"must be one of {', '.join(PROFILES)}")
    profile = PROFILES[name]
    if profile.factory is not None:
        return profile.factory(profile, serial, rng)
    return ScenarioPump(profile, serial, rng, journal)
