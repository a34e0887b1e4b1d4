"""Code systems, codes and identifier systems of the FHIR face.

IEEE 11073-10101 (MDC) term codes are the 32-bit context-free codes (partition × 65536 +
term) as used by the IHE PCD Technical Framework Vol. 2 (Rev. 9) infusion pump examples and
tables; FHIR writes them in the system ``urn:iso:std:iso:11073:10101`` (HL7 PoCD IG,
"Terminology": Device.type and DeviceMetric.type shall use MDC codes where one exists).
Units of values are UCUM (http://unitsofmeasure.org), as Quantity requires; DeviceMetric.unit
carries the MDC dimension code (PoCD Numeric DeviceMetric profile).
"""

from __future__ import annotations

from dataclasses import dataclass

MDC = "urn:iso:std:iso:11073:10101"
UCUM = "http://unitsofmeasure.org"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"  # identifier types (PLAC, MR, SNO)
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"

# This server's identifier systems and extensions (its own canonical base).
BASE = "http://openinfusion.org/fhir"
PUMP_SERIAL_SYSTEM = "urn:openinfusion:pump-serial"
MRN_SYSTEM = "urn:openinfusion:mrn"
EXT_TARGET_DEVICE = f"{BASE}/StructureDefinition/target-device"
EXT_TARGET_CHANNEL = f"{BASE}/StructureDefinition/target-channel"
EXT_CONCENTRATION = f"{BASE}/StructureDefinition/concentration"
EXT_BEDSIDE = f"{BASE}/StructureDefinition/awaiting-bedside-confirmation"
EXT_ORDER_STATUS = f"{BASE}/StructureDefinition/order-status"

# PoCD profiles the resources follow (HL7 PoCD IG, 0.3.0 on R4).
POCD = "http://hl7.org/fhir/uv/pocd/StructureDefinition"
PROFILE_MDS = f"{POCD}/MdsDevice"
PROFILE_VMD = f"{POCD}/VmdDevice"
PROFILE_NUMERIC_METRIC = f"{POCD}/NumericDeviceMetric"
PROFILE_NUMERIC_OBSERVATION = f"{POCD}/NumericObservation"


@dataclass(frozen=True, slots=True)
class MdcCode:
    code: str
    name: str


# Devices (IHE PCD TF-2 Rev 9: the pump MDS, and the VMD an order targets in PCD-03 OBX).
MDC_DEV_PUMP_INFUS_MDS = MdcCode("69985", "MDC_DEV_PUMP_INFUS_MDS")
MDC_DEV_PUMP_INFUS_VMD = MdcCode("69986", "MDC_DEV_PUMP_INFUS_VMD")

# Dimensions (units) in MDC.
MDC_DIM_MILLI_L = MdcCode("263762", "MDC_DIM_MILLI_L")
MDC_DIM_MILLI_L_PER_HR = MdcCode("265266", "MDC_DIM_MILLI_L_PER_HR")


@dataclass(frozen=True, slots=True)
class Metric:
    """A numeric channel metric: its short key (in resource ids), MDC code and units."""

    key: str
    code: MdcCode
    mdc_unit: MdcCode
    ucum: str  # UCUM code of the value
    column: str  # the Channel attribute (and status-body field) holding the value
    category: str  # DeviceMetric.category: measurement | setting | calculation
    label: str


# Pump channel metrics (IHE PCD TF-2 Rev 9 infusion pump model).
METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric(
            "rate",
            MdcCode("157784", "MDC_FLOW_FLUID_PUMP"),
            MDC_DIM_MILLI_L_PER_HR,
            "mL/h",
            "rate_ml_h",
            "setting",
            "programmed rate",
        ),
        Metric(
            "vol",
            MdcCode("157993", "MDC_VOL_FLUID_DELIV_TOTAL"),
            MDC_DIM_MILLI_L,
            "mL",
            "volume_infused_ml",
            "measurement",
            "volume infused",
        ),
        Metric(
            "vtbi",
            MdcCode("157872", "MDC_VOL_FLUID_TBI_REMAIN"),
            MDC_DIM_MILLI_L,
            "mL",
            "vtbi_remaining_ml",
            "calculation",
            "volume to be infused remaining",
        ),
    )
}
METRIC_BY_CODE = {m.code.code: m for m in METRICS.values()}
