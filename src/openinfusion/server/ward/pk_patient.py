"""A virtual patient behind a ward channel: exact compartment PK fed by what the pump
delivered, with a drug effect where the project has one.

Every ``UPDATE_S`` of pump time the drug amount the channel delivered since the last
update (the engine's own accounting, mg for these drugs) enters the model as a constant
infusion over that interval, and the state is advanced exactly
(:func:`openinfusion.physiology.pk.simulate`). Propofol: Eleveld 2018 PK with its BIS
model; morphine: Sarton 2000 PK, with the PCA trials' post-operative pain model
(:mod:`openinfusion.sim.pca_trial`: unrelieved pain falling over time, relieved by a sigmoid
Emax of Ce) deciding when the patient presses the button.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import numpy as np

from openinfusion.physiology.pk import (
    Covariates,
    PkModel,
    PkState,
    Schedule,
    bis_eleveld,
    morphine_sarton,
    propofol_eleveld,
    simulate,
)
from openinfusion.pump.channel import Channel
from openinfusion.sim.pca_scenario import PainDemand, PainSpec, PcaScenario, RespirationSpec
from openinfusion.sim.pca_trial import Pd, draw_pd

UPDATE_S = 60.0


class PkPatient:
    """One patient on one channel (N = 1)."""

    def __init__(
        self,
        model: PkModel,
        channel: Channel,
        *,
        effect: Callable[[float], dict[str, Any]] | None = None,
        describe: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.channel = channel
        self.effect = effect
        self.describe = describe or {}
        self.state = PkState(0.0, np.zeros((1, 3)), np.zeros(1))
        self.cp = 0.0
        self._amount = channel.drug_amount

    def update(self, t_s: float) -> None:
        """Advance the patient to pump time ``t_s`` (s) on the drug delivered meanwhile."""
        t0 = float(self.state.t_s)
        if t_s <= t0:
            return
        amount = self.channel.drug_amount
        given, self._amount = max(0.0, amount - self._amount), amount
        infusions = [(t0, t_s, np.array([given / (t_s - t0)]))] if given > 0 else []
        result = simulate(self.model, Schedule.build(infusions), [t_s], initial=self.state)
        self.state = result.final
        self.cp = float(result.cp[0, -1])

    def observation(self) -> dict[str, Any]:
        ce = float(self.state.ce[0])
        out = {**self.describe, "cp": self.cp, "ce": ce}
        if self.effect is not None:
            out.update(self.effect(ce))
        return out


def covariates(rng: random.Random, weight_kg: float) -> tuple[Covariates, dict[str, Any]]:
    """Age, height and sex drawn for an adult of ``weight_kg``."""
    age = float(rng.randint(25, 80))
    height = float(rng.randint(155, 192))
    male = rng.random() < 0.5
    cov = Covariates(
        age_years=np.array([age]),
        weight_kg=np.array([weight_kg]),
        height_cm=np.array([height]),
        male=np.array([male]),
    )
    return cov, {"age_years": age, "height_cm": height, "sex": "male" if male else "female"}


def propofol_patient(rng: random.Random, weight_kg: float, channel: Channel) -> PkPatient:
    cov, about = covariates(rng, weight_kg)
    age = about["age_years"]

    def bis(ce: float) -> dict[str, Any]:
        return {"bis": float(bis_eleveld(np.array([ce]), np.array([age]))[0])}

    return PkPatient(
        propofol_eleveld(cov),
        channel,
        effect=bis,
        describe={**about, "model": "Eleveld propofol", "unit": "ug/mL"},
    )


def morphine_patient(rng: random.Random, weight_kg: float, channel: Channel) -> PkPatient:
    cov, about = covariates(rng, weight_kg)
    return PkPatient(
        morphine_sarton(cov),
        channel,
        describe={**about, "model": "Sarton morphine", "unit": "mg/L"},
    )


class PainfulPatient(PkPatient):
    """A post-operative patient on morphine PCA who presses when in pain: a Poisson process
    of ``presses_per_h`` while pain (NRS) is at or above ``threshold_nrs`` (the trials'
    :class:`~openinfusion.sim.pca_scenario.PainDemand` defaults)."""

    def __init__(self, rng: random.Random, weight_kg: float, channel: Channel) -> None:
        cov, about = covariates(rng, weight_kg)
        super().__init__(
            morphine_sarton(cov),
            channel,
            describe={**about, "model": "Sarton morphine", "unit": "mg/L"},
        )
        # Only pain and respiration are read from the scenario: its defaults, no program.
        spec = cast(PcaScenario, SimpleNamespace(pain=PainSpec(), respiration=RespirationSpec()))
        female = np.array([about["sex"] == "female"])
        self.pd: Pd = draw_pd(spec, female, np.random.default_rng(rng.randrange(2**32)))
        self.demand = PainDemand()
        self.rng = rng
        self.pain = float(self.pd.unrelieved_nrs(0.0)[0])

    def update(self, t_s: float) -> None:
        super().update(t_s)
        ce_ng_ml = float(self.state.ce[0]) * 1000.0  # mg/L -> ng/mL
        self.pain = float(self.pd.pain_nrs(t_s / 60.0, np.array([ce_ng_ml]))[0])

    def wants_to_press(self, minutes: float = 1.0) -> bool:
        """Whether the patient presses in the next ``minutes`` (Poisson while in pain)."""
        if self.pain < self.demand.threshold_nrs:
            return False
        return self.rng.random() < 1.0 - math.exp(-self.demand.presses_per_h * minutes / 60.0)

    def observation(self) -> dict[str, Any]:
        return {**super().observation(), "pain_nrs": self.pain}
