"""Layer 1: virtual patients. Compartment PK/PD (:mod:`openinfusion.physiology.pk`)."""

from openinfusion.physiology.pk import (
    Covariates,
    ModelOptions,
    ModelSpec,
    PkModel,
    PkResult,
    PkState,
    Schedule,
    bis_eleveld,
    build_model,
    model_spec,
    simulate,
    simulate_ventilation,
)

__all__ = [
    "Covariates",
    "ModelOptions",
    "ModelSpec",
    "PkModel",
    "PkResult",
    "PkState",
    "Schedule",
    "bis_eleveld",
    "build_model",
    "model_spec",
    "simulate",
    "simulate_ventilation",
]
