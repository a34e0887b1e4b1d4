"""Model-informed precision dosing: MAP Bayesian estimation and dose recommendations.

See docs/mipd.md for the method, models, sources and limits.
"""

from openinfusion.control.mipd.factor_viii import (
    SCHEDULES,
    ProphylaxisPrediction,
    predict_prophylaxis,
    recommend_factor_viii,
)
from openinfusion.control.mipd.history import (
    DoseEvent,
    Level,
    check_levels_after_first_dose,
    parse_concentration_level,
    parse_doses,
    parse_levels,
)
from openinfusion.control.mipd.map import (
    MapEstimate,
    ParameterEstimate,
    PopulationPk,
    TypicalParameters,
    estimate_map,
    prior_estimate,
)
from openinfusion.control.mipd.priors import (
    BJORKMAN,
    BUELGA,
    GOTI,
    PRIORS,
    PriorModel,
    ResidualError,
    prior_model,
)
from openinfusion.control.mipd.vancomycin import (
    RegimenPrediction,
    infusion_hours,
    predict_regimen,
    recommend_vancomycin,
)

__all__ = [
    "BJORKMAN",
    "BUELGA",
    "GOTI",
    "PRIORS",
    "SCHEDULES",
    "DoseEvent",
    "Level",
    "MapEstimate",
    "ParameterEstimate",
    "PopulationPk",
    "PriorModel",
    "ProphylaxisPrediction",
    "RegimenPrediction",
    "ResidualError",
    "TypicalParameters",
    "check_levels_after_first_dose",
    "estimate_map",
    "infusion_hours",
    "parse_concentration_level",
    "parse_doses",
    "parse_levels",
    "predict_prophylaxis",
    "predict_regimen",
    "prior_estimate",
    "prior_model",
    "recommend_factor_viii",
    "recommend_vancomycin",
]
