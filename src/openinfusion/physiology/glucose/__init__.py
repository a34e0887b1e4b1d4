"""UVA/Padova 2008 type 1 diabetes glucose-insulin model, vectorized over virtual subjects.

Model: Dalla Man, Rizza, Cobelli, IEEE TBME 2007 (meal model); Dalla Man et al., JDST 2014
(simulator). Parameters of the 30 virtual subjects: simglucose 0.2.11 ``vpatient_params.csv``.
See docs/glucose-model.md.
"""

from openinfusion.physiology.glucose._model import State
from openinfusion.physiology.glucose._parameters import GlucoseParameters, subject_names
from openinfusion.physiology.glucose._patients import (
    EAT_RATE_G_PER_MIN,
    GlucosePatients,
    simulate,
)

__all__ = [
    "EAT_RATE_G_PER_MIN",
    "GlucoseParameters",
    "GlucosePatients",
    "State",
    "simulate",
    "subject_names",
]
