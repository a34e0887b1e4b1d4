"""Layer 1: drug libraries, dose error reduction (DERS), signed packages and diffs."""

from openinfusion.library.loading import (
    load_library,
    load_library_bytes,
    sample_library,
    sample_library_bytes,
)
from openinfusion.library.schema import (
    CareArea,
    DrugEntry,
    InfusionType,
    Library,
    Limits,
    Population,
    UnitLimits,
)

__all__ = [
    "CareArea",
    "DrugEntry",
    "InfusionType",
    "Library",
    "Limits",
    "Population",
    "UnitLimits",
    "load_library",
    "load_library_bytes",
    "sample_library",
    "sample_library_bytes",
]
