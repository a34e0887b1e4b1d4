"""FHIR R4 resources built from the server's rows (the R4B models of fhir.resources).

R4B is wire-compatible with R4 (4.0.1) for every resource built here: Device, DeviceMetric,
Observation, MedicationAdministration, MedicationRequest, Patient, Bundle, OperationOutcome
and CapabilityStatement did not change between them. Every builder validates its output
with the model, so a response is never a resource the model would refuse.

Device modelling follows the HL7 Point-of-Care Device IG: the pump is the MDS Device
(type MDC_DEV_PUMP_INFUS_MDS), each of its channels a Device (type MDC_DEV_PUMP_INFUS_VMD,
as a channel module is the VMD an order targets in IHE PCD-03) with ``parent`` to the pump;
a channel metric is a DeviceMetric with ``source`` the MDS and ``parent`` the channel; an
Observation's ``device`` is the DeviceMetric that produced it and its ``subject`` the patient
the channel was associated with at that moment (else the pump's MDS Device, as PoCD allows).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fhir.resources.R4B.device import Device
from fhir.resources.R4B.devicemetric import DeviceMetric
from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.resource import Resource

from openinfusion.interop.fhir.codes import (
    EXT_BEDSIDE,
    EXT_CONCENTRATION,
    EXT_ORDER_STATUS,
    EXT_TARGET_CHANNEL,
    EXT_TARGET_DEVICE,
    MDC,
    MDC_DEV_PUMP_INFUS_MDS,
    MDC_DEV_PUMP_INFUS_VMD,
    MRN_SYSTEM,
    PROFILE_MDS,
    PROFILE_NUMERIC_METRIC,
    PROFILE_NUMERIC_OBSERVATION,
    PROFILE_VMD,
    PUMP_SERIAL_SYSTEM,
    UCUM,
    V2_0203,
    MdcCode,
    Metric,
)
from openinfusion.interop.fhir.ids import channel_id, metric_id, observation_id
from openinfusion.interop.fhir.ucum import dose_quantity
from openinfusion.interop.order_tables import InfusionOrder
from openinfusion.server.clock import iso
from openinfusion.server.derive import IN_PROGRESS
from openinfusion.server.models import Infusion, Patient, Pump

# MDC_PUMP_DRUG_LIBRARY_VERSION (IHE PCD TF-2 Rev 9).
_LIBRARY_VERSION = MdcCode("184517", "MDC_PUMP_DRUG_LIBRARY_VERSION")
_COMPLETED = frozenset({"complete", "completed", "infusion_completed", "vtbi_complete"})
BEDSIDE_NOTE = (
    "Pre-populated on the pump, awaiting confirmation by a clinician at the bedside; "
    "never started remotely."
)
# Order status on the pump (openinfusion.interop.orders_status) -> MedicationRequest.status.
ORDER_STATUS = {
    "unconfirmed": "active",
    "pre-populated": "active",
    "confirmed": "active",
    "running": "active",
    "completed": "completed",
    "stopped": "stopped",
    "rejected": "cancelled",
    "expired": "cancelled",
}
AWAITING_BEDSIDE = frozenset({"unconfirmed", "pre-populated"})


def _dump(model: type[Resource], data: dict[str, Any]) -> dict[str, Any]:
    resource = model.model_validate(data)
    out: dict[str, Any] = resource.model_dump(mode="json", exclude_none=True)
    return out


def _coding(code: MdcCode, text: str | None = None) -> dict[str, Any]:
    concept: dict[str, Any] = {"coding": [{"system": MDC, "code": code.code, "display": code.name}]}
    if text:
        concept["text"] = text
    return concept


def quantity(value: float, ucum: str) -> dict[str, Any]:
    return {"value": value, "unit": ucum, "system": UCUM, "code": ucum}


def ref(kind: str, ident: object, display: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"reference": f"{kind}/{ident}"}
    if display:
        out["display"] = display
    return out


def pump_serial(pump: Pump) -> str:
    return pump.decommissioned_serial or pump.serial


def pump_device(pump: Pump, patient_id: int | None) -> dict[str, Any]:
    """The pump as the PoCD MDS Device; ``patient_id``: the one patient all its open
    channel associations name, if they name exactly one."""
    data: dict[str, Any] = {
        "resourceType": "Device",
        "id": pump.id,
        "meta": {"profile": [PROFILE_MDS]},
        "identifier": [
            {
                "type": {"coding": [{"system": V2_0203, "code": "SNO"}]},
                "system": PUMP_SERIAL_SYSTEM,
                "value": pump_serial(pump),
            }
        ],
        "status": "inactive" if pump.decommissioned_at is not None else "active",
        "serialNumber": pump_serial(pump),
        "deviceName": [{"name": pump.model, "type": "model-name"}],
        "modelNumber": pump.model,
        "type": _coding(MDC_DEV_PUMP_INFUS_MDS, f"{pump.kind} infusion pump"),
    }
    if pump.library_version:
        data["version"] = [
            {"type": _coding(_LIBRARY_VERSION, "drug library"), "value": pump.library_version}
        ]
    if pump.unit:
        data["note"] = [{"text": f"care unit {pump.unit}"}]
    if patient_id is not None:
        data["patient"] = ref("Patient", patient_id)
    return _dump(Device, data)


def channel_device(pump: Pump, channel: int, patient_id: int | None) -> dict[str, Any]:
    """Channel ``channel`` of the pump as a Device whose ``parent`` is the pump."""
    data: dict[str, Any] = {
        "resourceType": "Device",
        "id": channel_id(pump.id, channel),
        "meta": {"profile": [PROFILE_VMD]},
        "status": "inactive" if pump.decommissioned_at is not None else "active",
        "deviceName": [{"name": f"channel {channel}", "type": "user-friendly-name"}],
        "type": _coding(MDC_DEV_PUMP_INFUS_VMD, f"infusion channel {channel}"),
        "parent": ref("Device", pump.id),
    }
    if patient_id is not None:
        data["patient"] = ref("Patient", patient_id)
    return _dump(Device, data)


def device_metric(pump: Pump, channel: int, metric: Metric, state: str | None) -> dict[str, Any]:
    """A numeric channel metric; ``state``: the channel's state (None: never reported)."""
    if pump.decommissioned_at is not None or state is None:
        status = "off"
    else:
        status = "on" if state in IN_PROGRESS else "standby"
    return _dump(
        DeviceMetric,
        {
            "resourceType": "DeviceMetric",
            "id": metric_id(pump.id, channel, metric.key),
            "meta": {"profile": [PROFILE_NUMERIC_METRIC]},
            "type": _coding(metric.code, metric.label),
            "unit": _coding(metric.mdc_unit, metric.ucum),
            "source": ref("Device", pump.id),
            "parent": ref("Device", channel_id(pump.id, channel)),
            "operationalStatus": status,
            "category": metric.category,
        },
    )


def observation(
    pump_id: str,
    channel: int,
    metric: Metric,
    seq: int,
    value: float,
    at: datetime,
    patient_id: int | None,
) -> dict[str, Any]:
    """One metric value from the pump's status message ``seq``, received at ``at``."""
    subject = ref("Patient", patient_id) if patient_id is not None else ref("Device", pump_id)
    return _dump(
        Observation,
        {
            "resourceType": "Observation",
            "id": observation_id(pump_id, channel, metric.key, seq),
            "meta": {"profile": [PROFILE_NUMERIC_OBSERVATION]},
            "status": "final",
            "code": _coding(metric.code, metric.label),
            "subject": subject,
            "effectiveDateTime": iso(at),
            "valueQuantity": quantity(value, metric.ucum),
            "device": ref("DeviceMetric", metric_id(pump_id, channel, metric.key)),
        },
    )


def infusion_status(inf: Infusion) -> str:
    if inf.ended_at is None:
        return "in-progress"
    return "completed" if (inf.end_reason or "") in _COMPLETED else "stopped"


def medication_administration(
    inf: Infusion, patient_id: int | None, order_id: int | None
) -> dict[str, Any]:
    """What the pump infused on one channel, from the infusion the server derived from the
    pump's journal: drug, rate (mL/h), volume infused (mL), start and end."""
    status = infusion_status(inf)
    dosage: dict[str, Any] = {"dose": quantity(round(inf.volume_infused_ml, 6), "mL")}
    if inf.rate_ml_h is not None:
        dosage["rateQuantity"] = quantity(inf.rate_ml_h, "mL/h")
    if inf.dose is not None and inf.dose_unit:
        dosage["text"] = f"{inf.dose:g} {inf.dose_unit} as programmed on the pump"
    period: dict[str, Any] = {"start": iso(inf.started_at)}
    if inf.ended_at is not None:
        period["end"] = iso(inf.ended_at)
    data: dict[str, Any] = {
        "resourceType": "MedicationAdministration",
        "id": str(inf.id),
        "status": status,
        "medicationCodeableConcept": {"text": inf.drug or "unknown (not reported by the pump)"},
        "subject": ref("Patient", patient_id)
        if patient_id is not None
        else {"display": "no patient associated with the pump channel"},
        "effectivePeriod": period,
        "device": [ref("Device", channel_id(inf.pump_id, inf.channel))],
        "dosage": dosage,
    }
    if status == "stopped" and inf.end_reason:
        data["statusReason"] = [{"text": inf.end_reason}]
    if inf.dose_delivered is not None:
        data["note"] = [
            {"text": f"dose delivered {inf.dose_delivered:g} {inf.dose_delivered_unit or ''}"}
        ]
    if order_id is not None:
        data["request"] = ref("MedicationRequest", order_id)
    return _dump(MedicationAdministration, data)


def fhir_patient(p: Patient) -> dict[str, Any]:
    return _dump(
        FhirPatient,
        {
            "resourceType": "Patient",
            "id": str(p.id),
            "identifier": [
                {
                    "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
                    "system": MRN_SYSTEM,
                    "value": p.mrn,
                }
            ],
            "active": True,
            "name": [{"family": p.family_name, "given": [p.given_name]}],
            "gender": p.sex,
            "birthDate": p.birth_date.isoformat(),
        },
    )


def _dose_and_rate(order: InfusionOrder) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {}
    if order.dose:
        q = dose_quantity(order.dose)
        if q is not None:
            entry["rateQuantity" if q.is_rate else "doseQuantity"] = quantity(q.value, q.ucum)
    if order.rate_ml_h is not None and "rateQuantity" not in entry:
        entry["rateQuantity"] = quantity(order.rate_ml_h, "mL/h")
    if order.vtbi_ml is not None and "doseQuantity" not in entry:
        entry["doseQuantity"] = quantity(order.vtbi_ml, "mL")
    return [entry] if entry else []


def medication_request(order: InfusionOrder, live: str) -> dict[str, Any]:
    """An EHR order as stored at intake, with ``live`` its status on the pump now."""
    status = ORDER_STATUS.get(live, "unknown")
    medication: dict[str, Any] = {"text": order.drug or order.drug_code or "unknown"}
    if order.drug_code:
        medication["coding"] = [{"code": order.drug_code, "display": order.drug}]
    subject: dict[str, Any] = {
        "identifier": {"system": MRN_SYSTEM, "value": order.patient_mrn},
    }
    if order.patient_id is not None:
        subject["reference"] = f"Patient/{order.patient_id}"
    extension: list[dict[str, Any]] = [{"url": EXT_ORDER_STATUS, "valueCode": live}]
    if order.pump_id is not None:
        target = channel_id(order.pump_id, order.channel) if order.channel else order.pump_id
        extension.append({"url": EXT_TARGET_DEVICE, "valueReference": ref("Device", target)})
    elif order.pump_serial:
        extension.append(
            {
                "url": EXT_TARGET_DEVICE,
                "valueReference": {
                    "identifier": {"system": PUMP_SERIAL_SYSTEM, "value": order.pump_serial}
                },
            }
        )
    if order.channel is not None:
        extension.append({"url": EXT_TARGET_CHANNEL, "valuePositiveInt": order.channel})
    if order.concentration:
        extension.append({"url": EXT_CONCENTRATION, "valueString": order.concentration})
    awaiting = live in AWAITING_BEDSIDE
    extension.append({"url": EXT_BEDSIDE, "valueBoolean": awaiting})
    data: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": str(order.id),
        "extension": extension,
        "identifier": [
            {
                "type": {"coding": [{"system": V2_0203, "code": "PLAC"}]},
                "value": order.placer_order_id,
            }
        ],
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": medication,
        "subject": subject,
        "authoredOn": iso(order.created_at),
    }
    dose_and_rate = _dose_and_rate(order)
    if dose_and_rate:
        data["dosageInstruction"] = [{"doseAndRate": dose_and_rate}]
    if order.ordered_by:
        data["requester"] = {"display": order.ordered_by}
    if status == "cancelled" and order.reason:
        data["statusReason"] = {"text": order.reason[:500]}
    if awaiting:
        data["note"] = [{"text": BEDSIDE_NOTE}]
    return _dump(MedicationRequest, data)
