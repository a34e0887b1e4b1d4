"""Layer 1: drug libraries, dose error reduction (DERS), signed packages and diffs.

Typical use::

    lib = sample_library()
    entry = lib.find("Adult ICU", "dopamine")
    program = Program(dose=parse_dose("5 mcg/kg/min"),
                      concentration=parse_concentration("400 mg/250 mL"))
    verdict = check(program, entry, Patient(weight_kg=70), lib.care_area("Adult ICU"))
    verdict.accept(override_reason=None)  # raises SoftLimitError / HardLimitError
"""

from openinfusion.library.ders import (
    DersError,
    Finding,
    HardLimitError,
    Level,
    Override,
    PcaProgram,
    Program,
    SoftLimitError,
    Verdict,
    check,
    check_basic_infusion,
)
from openinfusion.library.diff import LibraryDiff, diff_libraries
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
from openinfusion.library.signing import (
    SignatureRejected,
    VerifiedLibrary,
    library_sha256,
    package_bytes,
    sign_library,
    verify_package,
    verify_package_file,
)

__all__ = [
    "CareArea",
    "DersError",
    "DrugEntry",
    "Finding",
    "HardLimitError",
    "InfusionType",
    "Level",
    "Library",
    "LibraryDiff",
    "Limits",
    "Override",
    "PcaProgram",
    "Population",
    "Program",
    "SignatureRejected",
    "SoftLimitError",
    "UnitLimits",
    "Verdict",
    "VerifiedLibrary",
    "check",
    "check_basic_infusion",
    "diff_libraries",
    "library_sha256",
    "load_library",
    "load_library_bytes",
    "package_bytes",
    "sample_library",
    "sample_library_bytes",
    "sign_library",
    "verify_package",
    "verify_package_file",
]
