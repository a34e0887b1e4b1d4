"""DERS situations at the ward's bedsides: dose changes that cross the drug library's limits.

A continuous drug infusion by dose (vasopressor, sedation, paediatric dopamine) may have
its dose changed once, 6 to 20 hours after it started. What the nurse types decides what DERS does:

| draw | what is typed | DERS | what follows |
|---|---|---|---|
| 40 % | a dose within the soft limits | ok | the new program runs |
| 25 % | a dose above the soft maximum, below the hard maximum | soft alert | overridden with a reason |
| 12 % | a tenfold dose (decimal slip) above the hard maximum | hard block (``ders_alert``) | reprogrammed at the intended dose |
| 10 % | a dose above the soft maximum | soft alert | not overridden (``ders_alert``), reprogrammed within limits |
| 13 % | nothing | | |

Reported DERS overrides in real fleets are frequent (most soft alerts are overridden,
Melton et al. 2019, docs/analytics.md); this mix only makes every outcome appear. Draws come
from an RNG of their own per pump (``serial:ders``) so the rest of the ward's draws, and
what a seed does, are unchanged.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, cast

from openinfusion.library import DersError
from openinfusion.pump import therapies as T
from openinfusion.pump.channel import State
from openinfusion.pump.ders_log import refusal_record

if TYPE_CHECKING:
    from openinfusion.server.ward.pumps import ScenarioPump

OVERRIDE_REASONS = (
    "titrating to MAP goal per physician order",
    "patient condition requires higher dose",
    "sedation target not reached",
    "dose confirmed with prescriber",
)


def _sig(value: float) -> float:
    """Two significant figures, as typed on a keypad."""
    return float(f"{value:.2g}")


def schedule(pump: ScenarioPump) -> None:
    """Add at most one DERS dose change to a pump whose channel 1 runs a drug by dose."""
    first = pump.run.programmed.get(0)
    if (
        first is None
        or first.entry is None
        or first.concentration is None
        or first.dose_unit is None
        or first.plan.pca is not None
        or first.plan.therapy != "continuous"
    ):
        return
    limits = first.entry.limits.dose
    current = first.summary.get("dose")
    if limits.soft_max is None or limits.hard_max is None or not isinstance(current, float | int):
        return
    rng = random.Random(f"{pump.serial}:ders")
    t = rng.uniform(6 * 3600, 20 * 3600)  # after the first shift's settled running
    roll = rng.random()
    tries: list[tuple[float, str | None]]
    soft, hard = float(limits.soft_max), float(limits.hard_max)
    lo = float(limits.soft_min) if limits.soft_min is not None else 0.0
    within = _sig(min(max(float(current) * rng.uniform(0.7, 1.3), lo), soft))
    above = _sig(soft + (hard - soft) * rng.uniform(0.1, 0.8))
    if roll < 0.40:
        tries = [(within, None)]
    elif roll < 0.65:
        tries = [(above, rng.choice(OVERRIDE_REASONS))]
    elif roll < 0.77:
        tenfold = float(current) * 10
        typed = tenfold if tenfold > hard else _sig(hard * 1.5)
        tries = [(typed, None), (float(current), None)]
    elif roll < 0.87:
        tries = [(above, None), (within, None)]
    else:
        return
    pump.at(t, "dose change", lambda p: _try_doses(cast("ScenarioPump", p), tries))


def _try_doses(pump: ScenarioPump, tries: list[tuple[float, str | None]]) -> None:
    """Type each dose in turn until DERS lets one start (or the list ends). Only a running
    infusion has its dose changed: a stopped or alarming channel is left as it is."""
    if pump.device.channels[0].state is not State.RUNNING:
        return
    for dose, reason in tries:
        if _reprogram(pump, dose, reason):
            return


def _reprogram(pump: ScenarioPump, dose: float, reason: str | None) -> bool:
    """Program channel 1 at ``dose`` (the entry's dose unit); a refusal is reported as a
    ``ders_alert`` and changes nothing. True when the new program runs."""
    current = pump.bedside.programmed.get(0) or pump.run.programmed[0]
    entry, conc, unit = current.entry, current.concentration, current.dose_unit
    assert entry is not None and conc is not None and unit is not None
    typed = f"{dose:g} {unit.text}"
    try:
        programmed = T.continuous(
            pump.run.ctx,
            drug=entry.drug,
            therapy=entry.therapy,
            concentration=conc.text,
            dose=typed,
            override_reason=reason,
        )
    except DersError as exc:
        pump.device.ders_alert(
            0, refusal_record(exc.verdict, entry, {"dose": dose, "dose_unit": unit.text})
        )
        return False
    device = pump.device
    device.pause(0)
    device.program(0, programmed.plan, **programmed.journal_info())
    device.start(0)
    pump.bedside.programmed[0] = programmed
    return True


__all__ = ["OVERRIDE_REASONS", "schedule"]
