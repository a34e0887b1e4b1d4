"""The ward's beds: every kind of pump the simulated ward runs, and the bed mix.

| profile | pump | therapy |
|---|---|---|
| icu-vasopressor | 50 mL syringe | norepinephrine or dopamine by mcg/kg/min |
| pca | PCA | morphine demands (Poisson) with lockout and 4-h limit |
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

from openinfusion.errors import InputError
from openinfusion.server.ward.pumps import (
    Action,
    Profile,
    ScenarioPump,
    SimPump,
    _icu_sedation,
    _icu_vasopressor,
    _lvp_fluids,
    _oncology_5fu,
    _pca_demands,
    _pca_morphine,
    _picu_dopamine,
    _some_fault,
)


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
    "pca": Profile("pca", "pca", "OI-PCA", _pca_morphine, _pca_demands),
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
