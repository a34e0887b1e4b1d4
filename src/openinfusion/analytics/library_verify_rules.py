"""What library verification judges against: therapeutic windows and which model to use.

A drug entry is verifiable when its drug has a population model in
:mod:`openinfusion.physiology` that is valid for the care area's population, and a
therapeutic window for the care area's indication. Every window below names its source;
the decision rule that turns shares of a population into a verdict is
:class:`VerificationPolicy` (a local choice, configurable).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from openinfusion.errors import InputError
from openinfusion.library.schema import DrugEntry, InfusionType, Population
from openinfusion.physiology.pk import models as pkm
from openinfusion.physiology.pk.pd import eleveld_ce_for_bis

Array = NDArray[np.float64]
# Per-patient window bounds from the patients' ages (years): (low (N,), high (N,)).
AgeBounds = Callable[[Array], tuple[Array, Array]]


@dataclass(frozen=True, slots=True)
class Window:
    """A therapeutic window for one metric: ``low``..``high`` in ``unit``.

    ``metric``: ``ce`` (effect-site peak over the horizon), ``cp`` (plasma peak),
    ``auc24`` (AUC over the last 24 h, mg·h/L), ``glucose`` (consensus CGM targets).
    ``by_age`` replaces the fixed bounds with per-patient bounds (e.g. from a BIS model).
    """

    indication: str
    metric: str
    unit: str
    low: float
    high: float
    citation: str
    by_age: AgeBounds | None = None

    def bounds(self, age_years: Array) -> tuple[Array, Array]:
        """(low, high) per patient, shape (N,)."""
        if self.by_age is not None:
            return self.by_age(age_years)
        n = age_years.shape[0]
        return np.full(n, self.low), np.full(n, self.high)

    def as_dict(self) -> dict[str, object]:
        return {
            "indication": self.indication,
            "metric": self.metric,
            "unit": self.unit,
            "low": self.low,
            "high": self.high,
            "per_patient": self.by_age is not None,
            "citation": self.citation,
        }


def _bis_bounds(age_years: Array) -> tuple[Array, Array]:
    """Propofol Ce (µg/mL) giving BIS 60 (low) and BIS 40 (high) at each age (Eleveld 2018)."""
    return eleveld_ce_for_bis(60.0, age_years), eleveld_ce_for_bis(40.0, age_years)


# ---- windows ------------------------------------------------------------------------------

# ICU sedation: Casati A et al., Can J Anaesth 1999;46:235-9 (propofol TCI, OAA/S): lethargic
# response to name at 1.3 µg/mL (5th-95th percentile 1.0-1.8), no response to trapezius
# squeeze at 2.8 µg/mL; the window runs from the lower percentile of light sedation to the
# loss of response to pain (general anaesthesia, beyond sedation).
PROPOFOL_SEDATION = Window(
    "sedation",
    "ce",
    "mcg/mL",
    1.0,
    2.8,
    "Casati 1999 Can J Anaesth 46:235 (OAA/S sedation levels vs propofol concentration)",
)
# General anaesthesia: BIS 40-60 (the range the BIS monitor's maker recommends for general
# anaesthesia, used in the trials reviewed by Punjasawadwong Y et al., Cochrane Database
# Syst Rev 2014;CD003843), turned into Ce per patient with the Eleveld 2018 BIS model
# (Br J Anaesth 120:942; age-dependent Ce50). Shown bounds: the 35-year-old reference.
PROPOFOL_ANAESTHESIA = Window(
    "general anaesthesia (BIS 40-60)",
    "ce",
    "mcg/mL",
    float(eleveld_ce_for_bis(60.0, 35.0)),
    float(eleveld_ce_for_bis(40.0, 35.0)),
    "BIS 40-60 (Punjasawadwong 2014 Cochrane CD003843) via Eleveld 2018 BIS model",
    _bis_bounds,
)
# Remifentanil with propofol: Ce50 blunting the response to skin incision 2.1 ng/mL and to
# tracheal intubation 5.0 ng/mL (Albertin A et al., Anesth Analg 2005;101:125-30); EC95 for
# intubation without relaxant 6.85-7.43 ng/mL (J Int Med Res 2011;39:1816-23). Window: from
# the incision Ce50 to just above the intubation EC95, the most stimulating routine event.
REMIFENTANIL_ANAESTHESIA = Window(
    "general anaesthesia with propofol",
    "ce",
    "ng/mL",
    2.0,
    8.0,
    "Albertin 2005 Anesth Analg 101:125 (Ce50 incision 2.1, intubation 5.0 ng/mL); "
    "J Int Med Res 2011;39:1816 (intubation EC95 6.9-7.4 ng/mL)",
)
# Unfractionated heparin: anti-Xa 0.3-0.7 IU/mL (Garcia DA et al., Parenteral anticoagulants,
# CHEST 2012;141(2 Suppl):e24S-e43S; the aPTT range of the Raschke nomogram is calibrated
# to it). The heparin models predict plasma heparin activity (IU/mL).
HEPARIN_ANTICOAGULATION = Window(
    "therapeutic anticoagulation",
    "cp",
    "units/mL",
    0.3,
    0.7,
    "Garcia 2012 CHEST 141:e24S (anti-Xa 0.3-0.7 IU/mL)",
)
# Vancomycin: AUC24/MIC 400-600 mg·h/L with MIC 1 mg/L (Rybak MJ et al., Am J Health-Syst
# Pharm 2020;77:835-64), judged on the last 24 h of a q12h regimen (near steady state).
VANCOMYCIN_AUC = Window(
    "serious MRSA infection (AUC24/MIC, MIC 1 mg/L)",
    "auc24",
    "mg*h/L",
    400.0,
    600.0,
    "Rybak 2020 Am J Health-Syst Pharm 77:835 (AUC24 400-600 mg*h/L)",
)
# Factor VIII: peak levels from 40-60 IU/dL (joint and muscle bleeds) to 80-100 IU/dL (life-
# threatening bleeds, major surgery) (Srivastava A et al., WFH Guidelines for the Management
# of Hemophilia, 3rd ed., Haemophilia 2020;26 Suppl 6:1-158, replacement-therapy tables).
FACTOR_VIII_PEAK = Window(
    "bleeding treatment (peak FVIII)",
    "cp",
    "units/dL",
    40.0,
    100.0,
    "Srivastava 2020 WFH guidelines, Haemophilia 26 Suppl 6 (peak 40-100 IU/dL)",
)
# Insulin: international consensus CGM targets (Battelino T et al., Diabetes Care
# 2019;42:1593-603): time in range 70-180 mg/dL > 70 %, below 70 < 4 %, below 54 < 1 %.
INSULIN_CONSENSUS = Window(
    "glycaemic control (consensus CGM targets)",
    "glucose",
    "mg/dL",
    70.0,
    180.0,
    "Battelino 2019 Diabetes Care 42:1593 (TIR > 70 %, TBR < 4 %, < 54 mg/dL < 1 %)",
)
# Morphine has a model (Sarton 2000) but no consensus concentration window: the minimum
# effective analgesic concentration varies several-fold between patients and its use has
# been questioned (Owen H et al., Anaesthesia 1990;45:619-22).
MORPHINE_NO_WINDOW = (
    "no consensus concentration window for morphine (minimum effective analgesic "
    "concentration questioned: Owen 1990 Anaesthesia 45:619)"
)


# ---- model choice -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """A parameter set (``drug``, ``model`` as in :data:`pkm.MODEL_SPECS`) and its validity."""

    drug: str
    model: str
    age_years: tuple[float, float]
    weight_kg: tuple[float, float]
    bmi: tuple[float, float] = (5.0, 150.0)
    opioid: bool = False
    needs_creatinine: bool = False


# James lean body mass (Minto) is refused above BMI 36.1 (women) / 43 (men): keep <= 35.
_JAMES_BMI = (5.0, 35.0)

_ADULT_MODELS: dict[str, ModelChoice] = {
    "propofol": ModelChoice(
        "propofol", "eleveld", pkm.ELEVELD_PROPOFOL_AGE, pkm.ELEVELD_PROPOFOL_WEIGHT
    ),
    "remifentanil": ModelChoice("remifentanil", "minto", pkm.MINTO_AGE, (30.0, 200.0), _JAMES_BMI),
    "morphine": ModelChoice("morphine", "sarton", pkm.SARTON_AGE, pkm.SARTON_WEIGHT),
    "heparin": ModelChoice("heparin", "jia", pkm.JIA_HEPARIN_AGE, pkm.JIA_HEPARIN_WEIGHT),
    "vancomycin": ModelChoice(
        "vancomycin", "goti", pkm.GOTI_AGE, pkm.GOTI_WEIGHT, needs_creatinine=True
    ),
    "factor_viii": ModelChoice("factor_viii", "bjorkman", pkm.BJORKMAN_AGE, pkm.BJORKMAN_WEIGHT),
}
_PAEDIATRIC_MODELS: dict[str, ModelChoice] = {
    "propofol": _ADULT_MODELS["propofol"],
    "heparin": ModelChoice(
        "heparin", "al-sallami", pkm.AL_SALLAMI_HEPARIN_AGE, pkm.AL_SALLAMI_HEPARIN_WEIGHT
    ),
    "factor_viii": _ADULT_MODELS["factor_viii"],
}

# Library names (drug, display name or alias, case-folded) of drugs with a model.
DRUG_NAMES: dict[str, str] = {
    "propofol": "propofol",
    "remifentanil": "remifentanil",
    "morphine": "morphine",
    "heparin": "heparin",
    "unfractionated heparin": "heparin",
    "vancomycin": "vancomycin",
    "factor viii": "factor_viii",
    "antihemophilic factor (recombinant)": "factor_viii",
    "insulin regular": "insulin",
    "insulin": "insulin",
}


def model_drug(entry: DrugEntry) -> str | None:
    """The modelled drug an entry gives (``propofol``, ``insulin`` ...), or None."""
    for name in (entry.drug, entry.display_name, *entry.aliases):
        key = DRUG_NAMES.get(name.strip().casefold())
        if key is not None:
            return key
    return None


def choose_model(drug: str, population: Population) -> ModelChoice | None:
    """The PK parameter set for ``drug`` in a care area of ``population``; None when no
    model was built on (or validated for) that population."""
    if population is Population.ADULT:
        return _ADULT_MODELS.get(drug)
    if population is Population.PAEDIATRIC:
        return _PAEDIATRIC_MODELS.get(drug)
    return None


def window_for(drug: str, area_id: str, therapy: str | None) -> Window | None:
    """The window for ``drug`` given in care area ``area_id`` (its indication), or None."""
    if drug == "propofol":
        anaesthesia = "anaesth" in area_id or "anaesth" in (therapy or "").casefold()
        return PROPOFOL_ANAESTHESIA if anaesthesia else PROPOFOL_SEDATION
    return {
        "remifentanil": REMIFENTANIL_ANAESTHESIA,
        "heparin": HEPARIN_ANTICOAGULATION,
        "vancomycin": VANCOMYCIN_AUC,
        "factor_viii": FACTOR_VIII_PEAK,
        "insulin": INSULIN_CONSENSUS,
    }.get(drug)


# ---- decision rule ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerificationPolicy:
    """How shares of a virtual population become a verdict (local choice, configurable).

    Soft limits bound the usual range, so a soft limit "leads outside the window" when more
    than ``soft_share`` of the patients at that limit are above the window (the median
    patient at the top of the usual range is already over it). Hard limits exist to block
    gross errors and sit above usual dosing by design, so a hard limit is flagged when more
    than ``hard_share`` of the patients exceed ``hard_margin`` times the window's top.
    Lower limits are judged the same way (a minimum that already overshoots); patients below
    the window at a lower limit are reported, not flagged, since titration starts there.
    Insulin: soft limits are judged on missing a hypoglycaemia target (< 70 mg/dL >= 4 % or
    < 54 mg/dL >= 1 %), hard limits on level 2 hypoglycaemia (< 54 mg/dL >= 1 %; Battelino
    2019 calls it clinically significant).
    """

    soft_share: float = 0.5
    hard_share: float = 0.5
    hard_margin: float = 2.0

    def __post_init__(self) -> None:
        for name in ("soft_share", "hard_share"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (
                isinstance(value, int | float) and 0.0 < value < 1.0
            ):
                raise InputError(name, value, "must be a share between 0 and 1 (exclusive)")
        margin = self.hard_margin
        if isinstance(margin, bool) or not (
            isinstance(margin, int | float) and 1.0 <= margin <= 100
        ):
            raise InputError("hard_margin", margin, "must be a factor from 1 to 100")

    @staticmethod
    def is_hard(bound: str) -> bool:
        return bound.startswith("hard")

    def share(self, bound: str) -> float:
        """The share of patients over the ceiling that flags a limit of kind ``bound``."""
        return self.hard_share if self.is_hard(bound) else self.soft_share

    def margin(self, bound: str) -> float:
        """The ceiling of a limit of kind ``bound``, as a multiple of the window's top."""
        return self.hard_margin if self.is_hard(bound) else 1.0

    def as_dict(self) -> dict[str, object]:
        return {
            "soft_share": self.soft_share,
            "hard_share": self.hard_share,
            "hard_margin": self.hard_margin,
            "rule": "a soft limit is flagged when more than soft_share of the patients at it "
            "are above the window; a hard limit when more than hard_share exceed hard_margin "
            "x the window's top (insulin: level 2 hypoglycaemia)",
        }


# Dose modes simulated per infusion type (the entry's dose limits are in that mode).
SIMULATED_MODES = {
    InfusionType.CONTINUOUS: "continuous dose rate",
    InfusionType.INTERMITTENT: "intermittent dose",
    InfusionType.BOLUS: "bolus",
    InfusionType.PCA: "continuous (basal) dose rate",
}

__all__ = [
    "DRUG_NAMES",
    "FACTOR_VIII_PEAK",
    "HEPARIN_ANTICOAGULATION",
    "INSULIN_CONSENSUS",
    "MORPHINE_NO_WINDOW",
    "PROPOFOL_ANAESTHESIA",
    "PROPOFOL_SEDATION",
    "REMIFENTANIL_ANAESTHESIA",
    "SIMULATED_MODES",
    "VANCOMYCIN_AUC",
    "ModelChoice",
    "VerificationPolicy",
    "Window",
    "choose_model",
    "model_drug",
    "window_for",
]
