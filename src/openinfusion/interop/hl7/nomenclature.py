"""IEEE 11073-10101 terms used in the infusion-pump messages, with their sources.

A term's code is the 32-bit context-free code (partition x 65536 + term code); in HL7
OBX-3 and OBX-6 it is written ``code^REFID^MDC``. Sources, abbreviated in ``source``:

- ``IPEC``: IHE PCD TF Supplement "Infusion Pump Event Communication" Rev 1.5
  (2015-11-25), X.1.2.2 sample message: the ISO/IEEE 11073-10101b infusion pump model
  (MDS/VMD/delivery-info/source containment, metrics and units).
- ``TF8``: IHE PCD TF-2 Rev 8.0 (2018-10-23): PCD-03 examples (E.2.3), ACM examples
  (E.3.1, E.3.2), OBX-4 containment (B.8).
- ``TF9``: IHE PCD TF-2 Rev 9.0 Appendix M.1.2.2 (IPEC terms whose codes were "pending"
  in Rev 1.5 of the supplement), as tabulated in HOSPITAL_REFERENCE.md section 4.3.
- ``10101``: derived from a verified base unit by the decimal-prefix rule of
  ISO/IEEE 11073-10101 (unit code = base code + prefix offset; milli 18, micro 19,
  kilo 3), e.g. mL/h 265266 = L/h 265248 + 18.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Term:
    """One nomenclature term: numeric code, reference ID, a human label, its source."""

    code: int
    refid: str
    label: str
    source: str

    def cwe(self) -> tuple[str, str, str]:
        """The three CWE components of HL7 OBX-3: identifier, text, coding system."""
        return (str(self.code), self.refid, "MDC")


@dataclass(frozen=True, slots=True)
class Unit:
    """A unit as UCUM and, when known, as an MDC_DIM term (for OBX-6)."""

    ucum: str
    mdc: Term | None

    def cwe(self) -> tuple[str, ...]:
        """OBX-6 as the PCD samples write it: MDC triple first, then UCUM alternate."""
        if self.mdc is None:
            return (self.ucum, self.ucum, "UCUM")
        return (*self.mdc.cwe(), self.ucum, self.ucum, "UCUM")


def _t(code: int, refid: str, label: str, source: str) -> Term:
    return Term(code, refid, label, source)


# Devices (containment tree) -----------------------------------------------------------
PUMP_MDS = _t(69985, "MDC_DEV_PUMP_INFUS_MDS", "infusion pump (system)", "TF8")
PUMP_VMD = _t(69986, "MDC_DEV_PUMP_INFUS_VMD", "infusion pump (virtual device)", "TF8")
LVP_MDS = _t(70049, "MDC_DEV_PUMP_INFUS_LVP_MDS", "large-volume pump (system)", "IPEC")
LVP_VMD = _t(70050, "MDC_DEV_PUMP_INFUS_LVP_VMD", "large-volume pump (virtual device)", "IPEC")
SYRINGE_MDS = _t(70053, "MDC_DEV_PUMP_INFUS_SYRINGE_MDS", "syringe pump (system)", "TF9")
SYRINGE_VMD = _t(70054, "MDC_DEV_PUMP_INFUS_SYRINGE_VMD", "syringe pump (virtual device)", "TF9")
DELIVERY_INFO = _t(70067, "MDC_DEV_PUMP_DELIVERY_INFO", "pump delivery information", "TF9")
SOURCE_PRIMARY = _t(70071, "MDC_DEV_PUMP_INFUSATE_SOURCE_PRIMARY", "primary infusate source", "TF9")

# Metrics ----------------------------------------------------------------------------
INFUSING_STATUS = _t(184519, "MDC_PUMP_INFUSING_STATUS", "infusing status", "IPEC")
FLOW_CURRENT = _t(158014, "MDC_FLOW_FLUID_PUMP_CURRENT", "current pump flow", "TF9")
DELIVERY_STATUS = _t(
    158005, "MDC_DEV_PUMP_CURRENT_DELIVERY_STATUS", "current delivery status", "TF9"
)
DELIVERY_MODE = _t(158008, "MDC_DEV_PUMP_PROGRAM_DELIVERY_MODE", "program delivery mode", "TF9")
CHANNEL_LABEL = _t(158012, "MDC_DEV_PUMP_SOURCE_CHANNEL_LABEL", "source channel label", "TF9")
ACTIVE_SOURCES = _t(158016, "MDC_DEV_PUMP_ACTIVE_SOURCES", "active sources", "TF9")
FLOW_RATE = _t(157784, "MDC_FLOW_FLUID_PUMP", "rate (programmed)", "IPEC")
DOSE_RATE = _t(157924, "MDC_RATE_DOSE", "dose rate", "IPEC")
VTBI = _t(157884, "MDC_VOL_FLUID_TBI", "volume to be infused", "IPEC")
VOLUME_DELIVERED = _t(157993, "MDC_VOL_FLUID_DELIV_TOTAL", "cumulative volume delivered", "IPEC")
VTBI_REMAINING = _t(157872, "MDC_VOL_FLUID_TBI_REMAIN", "volume remaining", "IPEC")
TIME_REMAINING = _t(157916, "MDC_TIME_PD_REMAIN", "time remaining", "IPEC")
DRUG_NAME = _t(184514, "MDC_DRUG_NAME_LABEL", "drug name", "IPEC")
DRUG_CONCENTRATION = _t(157760, "MDC_CONC_DRUG", "drug concentration", "IPEC")
CARE_AREA = _t(184516, "MDC_PUMP_DRUG_LIBRARY_CARE_AREA", "drug library care area", "IPEC")
LIBRARY_VERSION = _t(184517, "MDC_PUMP_DRUG_LIBRARY_VERSION", "drug library version", "IPEC")
PATIENT_WEIGHT = _t(68063, "MDC_ATTR_PT_WEIGHT", "patient weight", "TF8")
EVENT_CONDITION = _t(68487, "MDC_ATTR_EVT_COND", "event condition", "TF9")
EVENT_SOURCE = _t(68488, "MDC_ATTR_EVT_SOURCE", "event source", "TF9")

# Alerts (ACM, PCD-04) ---------------------------------------------------------------
EVT_ALARM = _t(196616, "MDC_EVT_ALARM", "alarm", "TF8")
ALERT_SOURCE = _t(68480, "MDC_ATTR_ALERT_SOURCE", "alert source", "TF8")
EVENT_PHASE = _t(68481, "MDC_ATTR_EVENT_PHASE", "alert phase", "TF8")
ALARM_STATE = _t(68482, "MDC_ATTR_ALARM_STATE", "alert state", "TF8")
INACTIVATION_STATE = _t(
    68483, "MDC_ATTR_ALARM_INACTIVATION_STATE", "alert inactivation state", "TF8"
)
ALARM_PRIORITY = _t(68484, "MDC_ATTR_ALARM_PRIORITY", "alert priority", "TF9")
ALERT_TYPE = _t(68485, "MDC_ATTR_ALERT_TYPE", "alert type", "TF9")
EVT_OCCLUSION = _t(196940, "MDC_EVT_FLUID_LINE_OCCL", "fluid line occlusion", "TF8")
EVT_SYRINGE_CAPTURE = _t(
    197218,
    "MDC_EVT_SYRINGE_BARREL_CAPTURE_FAULT",
    "syringe barrel capture fault",
    "TF9 (vendor-generated B. Braun sample)",
)
EVT_DELIVERY_START = _t(197288, "MDC_EVT_PUMP_DELIV_START", "delivery started", "IPEC")
EVT_DELIVERY_COMPLETE = _t(
    197292, "MDC_EVT_PUMP_DELIV_COMP", "delivery complete", "TF9 (captured samples)"
)
EVT_NEAR_COMPLETE = _t(
    197334, "MDC_EVT_VOL_INFUS_NEAR_COMP", "volume infused near complete", "TF9 (captured samples)"
)

# Units ------------------------------------------------------------------------------
DIM_ML = _t(263762, "MDC_DIM_MILLI_L", "mL", "IPEC")
DIM_ML_PER_H = _t(265266, "MDC_DIM_MILLI_L_PER_HR", "mL/h", "IPEC")
DIM_MIN = _t(264352, "MDC_DIM_MIN", "min", "IPEC")
DIM_KG = _t(263875, "MDC_DIM_KILO_G", "kg", "IPEC")
DIM_G = _t(263872, "MDC_DIM_X_G", "g", "TF9")
DIM_MG = _t(263890, "MDC_DIM_MILLI_G", "mg", "TF8")
DIM_MCG = _t(263891, "MDC_DIM_MICRO_G", "mcg", "10101")
DIM_MG_PER_ML = _t(264306, "MDC_DIM_MILLI_G_PER_ML", "mg/mL", "IPEC")
DIM_MCG_PER_KG_PER_MIN = _t(265619, "MDC_DIM_MICRO_G_PER_KG_PER_MIN", "mcg/kg/min", "IPEC")
DIM_MG_PER_KG_PER_MIN = _t(265618, "MDC_DIM_MILLI_G_PER_KG_PER_MIN", "mg/kg/min", "10101")
DIM_MG_PER_H = _t(265522, "MDC_DIM_MILLI_G_PER_HR", "mg/h", "TF9")
DIM_MCG_PER_H = _t(265523, "MDC_DIM_MICRO_G_PER_HR", "mcg/h", "10101")

ML: Final = Unit("mL", DIM_ML)
ML_PER_H: Final = Unit("mL/h", DIM_ML_PER_H)
MIN: Final = Unit("min", DIM_MIN)
KG: Final = Unit("kg", DIM_KG)

# Dose units as the pump writes them -> UCUM (+ MDC where a code is known). A dose unit not
# listed here is sent as UCUM only when it is already valid UCUM text, else refused.
DOSE_UNITS: Final[dict[str, Unit]] = {
    "mcg/kg/min": Unit("ug/kg/min", DIM_MCG_PER_KG_PER_MIN),
    "mg/kg/min": Unit("mg/kg/min", DIM_MG_PER_KG_PER_MIN),
    "mg/h": Unit("mg/h", DIM_MG_PER_H),
    "mcg/h": Unit("ug/h", DIM_MCG_PER_H),
    "mcg/kg/h": Unit("ug/kg/h", None),
    "mg/kg/h": Unit("mg/kg/h", None),
    "mcg/min": Unit("ug/min", None),
    "mg/min": Unit("mg/min", None),
    "ng/kg/min": Unit("ng/kg/min", None),
    "units/h": Unit("[iU]/h", None),
    "units/kg/h": Unit("[iU]/kg/h", None),
    "units/min": Unit("[iU]/min", None),
    "mmol/h": Unit("mmol/h", None),
    "mEq/h": Unit("meq/h", None),
    "g/h": Unit("g/h", None),
    "mL/h": Unit("mL/h", DIM_ML_PER_H),
    "mg/m2/h": Unit("mg/m2/h", None),
}

# Pump kinds (openinfusion.pump) -> (MDS, VMD) device terms.
DEVICE_TERMS: Final[dict[str, tuple[Term, Term]]] = {
    "lvp": (LVP_MDS, LVP_VMD),
    "large_volume": (LVP_MDS, LVP_VMD),
    "syringe": (SYRINGE_MDS, SYRINGE_VMD),
}
DEFAULT_DEVICE_TERMS: Final = (PUMP_MDS, PUMP_VMD)

TERMS: Final[dict[int, Term]] = {
    t.code: t
    for t in (
        PUMP_MDS,
        PUMP_VMD,
        LVP_MDS,
        LVP_VMD,
        SYRINGE_MDS,
        SYRINGE_VMD,
        DELIVERY_INFO,
        SOURCE_PRIMARY,
        INFUSING_STATUS,
        FLOW_CURRENT,
        DELIVERY_STATUS,
        DELIVERY_MODE,
        CHANNEL_LABEL,
        ACTIVE_SOURCES,
        FLOW_RATE,
        DOSE_RATE,
        VTBI,
        VOLUME_DELIVERED,
        VTBI_REMAINING,
        TIME_REMAINING,
        DRUG_NAME,
        DRUG_CONCENTRATION,
        CARE_AREA,
        LIBRARY_VERSION,
        PATIENT_WEIGHT,
        EVENT_CONDITION,
        EVENT_SOURCE,
        EVT_ALARM,
        ALERT_SOURCE,
        EVENT_PHASE,
        ALARM_STATE,
        INACTIVATION_STATE,
        ALARM_PRIORITY,
        ALERT_TYPE,
        EVT_OCCLUSION,
        EVT_SYRINGE_CAPTURE,
        EVT_DELIVERY_START,
        EVT_DELIVERY_COMPLETE,
        EVT_NEAR_COMPLETE,
        DIM_ML,
        DIM_ML_PER_H,
        DIM_MIN,
        DIM_KG,
        DIM_G,
        DIM_MG,
        DIM_MCG,
        DIM_MG_PER_ML,
        DIM_MCG_PER_KG_PER_MIN,
        DIM_MG_PER_KG_PER_MIN,
        DIM_MG_PER_H,
        DIM_MCG_PER_H,
    )
}
BY_REFID: Final[dict[str, Term]] = {t.refid: t for t in TERMS.values()}


def lookup(code: str, refid: str = "") -> Term | None:
    """The term for an OBX-3 identifier (numeric code, else reference ID), if known."""
    if (code.isascii() and code.isdigit()) and int(code) in TERMS:
        term = TERMS[int(code)]
        if not refid or refid == term.refid:
            return term
    return BY_REFID.get(refid)


def dose_unit(text: str) -> Unit:
    """The UCUM/MDC unit for a pump dose unit such as ``mcg/kg/min``."""
    unit = DOSE_UNITS.get(text)
    if unit is None:
        raise ValueError(
            f"dose_unit {text!r}: not a known dose unit ({', '.join(sorted(DOSE_UNITS))})"
        )
    return unit
