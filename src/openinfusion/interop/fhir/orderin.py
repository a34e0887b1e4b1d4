"""A posted MedicationRequest -> the order intake's :class:`OrderRequest` (source ``fhir``).

The mapping (docs/fhir.md):

| MedicationRequest | OrderRequest |
| --- | --- |
| ``identifier[0].value`` | ``placer_order_id`` |
| ``subject`` (``Patient/{id}``, or an identifier in the MRN system) | ``patient_mrn`` |
| ``medicationCodeableConcept`` ``coding[0].code`` / ``text`` | ``drug_code`` / ``drug_name`` |
| extension ``target-device`` (``Device/{pump}``, ``Device/{pump}-ch{n}``, or an identifier in the pump-serial system) | ``pump_serial`` (and ``channel``) |
| extension ``target-channel`` (positiveInt) | ``channel`` |
| extension ``concentration`` (string ``"4 mg/50 mL"`` or Ratio) | ``concentration`` |
| ``dosageInstruction[0].doseAndRate[0].rateQuantity`` in mL/h | ``rate_ml_h`` |
| ``…rateQuantity`` in a dose rate (``ug/kg/min``, ``[iU]/h`` …) or ``rateRatio`` | ``dose`` |
| ``…doseQuantity`` in mL | ``vtbi_ml``; in an amount (``mg`` …): ``dose`` |
| ``requester`` (display, identifier or reference) | ``ordered_by`` |

Anything else the resource may hold is refused (422, ``not-supported``): an order is never
pre-populated with part of what the prescriber wrote silently dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from fhir.resources.R4B.medicationrequest import MedicationRequest
from pydantic import ValidationError

from openinfusion.interop.fhir.codes import (
    EXT_CONCENTRATION,
    EXT_TARGET_CHANNEL,
    EXT_TARGET_DEVICE,
    MRN_SYSTEM,
    PUMP_SERIAL_SYSTEM,
    UCUM,
)
from openinfusion.interop.fhir.ids import parse_device_id, parse_number_id
from openinfusion.interop.fhir.outcome import FhirError, Issue
from openinfusion.interop.fhir.ucum import TIMES, VOLUMES, from_ucum
from openinfusion.interop.records import OrderRequest

R = "MedicationRequest"
ALLOWED = frozenset(
    {
        "resourceType",
        "id",
        "meta",
        "text",
        "extension",
        "identifier",
        "status",
        "intent",
        "medicationCodeableConcept",
        "subject",
        "requester",
        "dosageInstruction",
    }
)
_DOSAGE_ALLOWED = frozenset({"doseAndRate"})
_DOSE_AND_RATE_ALLOWED = frozenset({"doseQuantity", "rateQuantity", "rateRatio"})
_HOURS = {"h": 1.0, "min": 1.0 / 60.0, "d": 24.0}
MAX_ISSUES = 20

# Looks a patient id up (unit-scoped) and returns its MRN, or None.
PatientLookup = Callable[[int], str | None]
# Looks a pump id up (unit-scoped) and returns its serial, or None.
PumpLookup = Callable[[str], str | None]


@dataclass
class Mapped:
    """The order and, for every OrderRequest field, the FHIR path it came from."""

    order: OrderRequest
    paths: dict[str, str] = field(default_factory=dict)

    def path_of(self, order_field: str) -> str:
        return self.paths.get(order_field, R)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = R
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def validate_model(data: Any) -> MedicationRequest:
    """Structure and types by the R4B model (400 with one issue per problem)."""
    if not isinstance(data, dict):
        raise FhirError(400, [Issue(R, type(data).__name__, "the body must be a JSON object")])
    kind = data.get("resourceType")
    if kind != R:
        raise FhirError(
            400, [Issue(f"{R}.resourceType", kind, f"must be {R} at this endpoint", "invalid")]
        )
    extra = sorted(k for k in data if k not in ALLOWED)
    if extra:
        raise FhirError(
            422,
            [
                Issue(
                    f"{R}.{k}",
                    None,
                    "is not supported by this server; the order is refused rather than "
                    "pre-populated without it",
                    "not-supported",
                )
                for k in extra[:MAX_ISSUES]
            ],
        )
    _json_numbers(data)
    try:
        return MedicationRequest.model_validate(data)
    except ValidationError as exc:
        issues = []
        for err in exc.errors()[:MAX_ISSUES]:
            loc = tuple(p for p in err.get("loc", ()) if not str(p).startswith("function-"))
            shown = err.get("input")
            value = shown if isinstance(shown, str | int | float | bool | None) else None
            issues.append(Issue(_loc(loc), value, str(err.get("msg", "is invalid")), "structure"))
        raise FhirError(400, issues) from exc
    except (RecursionError, ValueError, TypeError) as exc:
        raise FhirError(400, [Issue(R, None, f"is not a valid resource: {exc}"[:200])]) from exc


_QUANTITY_KEYS = frozenset({"unit", "code", "comparator"})  # not Identifier (system, value)
_NUMBER_KEYS = frozenset({"valueDecimal", "valueInteger", "valuePositiveInt", "valueUnsignedInt"})


def _json_numbers(data: dict[str, Any]) -> None:
    """FHIR JSON writes decimals and integers as JSON numbers, never as strings (FHIR R4
    §2.6.2 JSON representation): a Quantity ``value`` or a numeric extension value given as
    text (``"5"``, ``"NaN"``) is refused, although the models would coerce it."""
    issues: list[Issue] = []
    stack: list[tuple[Any, str]] = [(data, R)]
    while stack and len(issues) < MAX_ISSUES:
        node, path = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                where = f"{path}.{key}"
                quantity = key == "value" and _QUANTITY_KEYS & node.keys()
                if (quantity or key in _NUMBER_KEYS) and (
                    isinstance(value, bool) or not isinstance(value, int | float)
                ):
                    shown = value if isinstance(value, str | int | float | bool | None) else None
                    issues.append(Issue(where, shown, "must be a JSON number", "structure"))
                else:
                    stack.append((value, where))
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(node))
    if issues:
        raise FhirError(400, issues)


class _Issues:
    def __init__(self) -> None:
        self.items: list[Issue] = []

    def add(self, path: str, value: Any, rule: str, code: str | None = None) -> None:
        self.items.append(Issue(path, value, rule, code))


def _positive(value: Decimal | None, path: str, issues: _Issues) -> float | None:
    if value is None:
        issues.add(path, None, "is required")
        return None
    if value.is_signed() or value.is_zero():
        issues.add(path, str(value), "must be above 0 (negative zero is refused too)")
        return None
    number = float(value)
    if not math.isfinite(number):
        issues.add(path, str(value)[:40], "must be a finite number")
        return None
    return number


def _units(q: Any, path: str, issues: _Issues) -> list[str] | None:
    if q.system != UCUM or not q.code:
        issues.add(f"{path}.system", q.system, f"a quantity needs a UCUM code (system {UCUM})")
        return None
    tokens = from_ucum(q.code)
    if tokens is None:
        issues.add(f"{path}.code", q.code, "is not a UCUM unit of infusion doses accepted here")
    return tokens


def _fmt(value: float) -> str:
    return f"{value:.10g}"


def to_order(
    resource: MedicationRequest, patient_mrn: PatientLookup, pump_serial: PumpLookup
) -> Mapped:
    """Map a validated MedicationRequest, or raise FhirError 422 with every problem."""
    issues = _Issues()
    paths: dict[str, str] = {}
    r = resource
    if r.status != "active":
        issues.add(f"{R}.status", r.status, "must be 'active': only an active order is sent")
    if r.intent not in ("order", "original-order", "instance-order"):
        issues.add(f"{R}.intent", r.intent, "must be 'order' (or original-/instance-order)")

    placer = None
    if not r.identifier or not r.identifier[0].value:
        issues.add(f"{R}.identifier", None, "the placer order number is required")
    else:
        placer = r.identifier[0].value
        paths["placer_order_id"] = f"{R}.identifier[0].value"

    mrn = _subject(r, patient_mrn, issues)
    paths["patient_mrn"] = f"{R}.subject"

    drug_code = drug_name = None
    med = r.medicationCodeableConcept
    if med is None:
        issues.add(f"{R}.medicationCodeableConcept", None, "the drug is required")
    else:
        drug_name = med.text or (med.coding[0].display if med.coding else None)
        drug_code = med.coding[0].code if med.coding else None
        for name in ("drug", "drug_name", "drug_code"):
            paths[name] = f"{R}.medicationCodeableConcept"

    serial, channel, concentration = _extensions(r, pump_serial, issues, paths)

    dose, rate, vtbi = _dosage(r, issues, paths)

    ordered_by = None
    if r.requester is not None:
        q = r.requester
        ordered_by = q.display or (q.identifier.value if q.identifier else None) or q.reference
    if issues.items:
        raise FhirError(422, issues.items[:MAX_ISSUES])
    assert placer is not None and mrn is not None
    order = OrderRequest(
        source="fhir",
        placer_order_id=placer,
        patient_mrn=mrn,
        pump_serial=serial,
        channel=channel,
        drug_code=drug_code,
        drug_name=drug_name,
        concentration=concentration,
        dose=dose,
        rate_ml_h=rate,
        vtbi_ml=vtbi,
        ordered_by=ordered_by[:120] if ordered_by else None,
    )
    return Mapped(order, paths)


def _subject(r: MedicationRequest, patient_mrn: PatientLookup, issues: _Issues) -> str | None:
    s = r.subject
    path = f"{R}.subject"
    if s.reference:
        kind, _, ident = s.reference.partition("/")
        number = parse_number_id(ident) if kind == "Patient" else None
        mrn = patient_mrn(number) if number is not None else None
        if mrn is None:
            issues.add(f"{path}.reference", s.reference, "names no known Patient")
            return None
        if s.identifier is not None and s.identifier.value not in (None, mrn):
            issues.add(f"{path}.identifier", s.identifier.value, "is not that Patient's MRN")
            return None
        return mrn
    if s.identifier is not None and s.identifier.value:
        if s.identifier.system not in (None, MRN_SYSTEM):
            issues.add(
                f"{path}.identifier.system",
                s.identifier.system,
                f"must be {MRN_SYSTEM} (the MRN this server knows patients by)",
            )
            return None
        return s.identifier.value
    issues.add(path, None, "needs a Patient reference or an MRN identifier")
    return None


def _extensions(
    r: MedicationRequest, pump_serial: PumpLookup, issues: _Issues, paths: dict[str, str]
) -> tuple[str | None, int | None, str | None]:
    serial: str | None = None
    channel: int | None = None
    concentration: str | None = None
    seen: set[str] = set()
    for i, ext in enumerate(r.extension or []):
        path = f"{R}.extension[{i}]"
        url = ext.url or ""
        if url in seen:
            issues.add(path, url, "appears twice")
            continue
        seen.add(url)
        if ext.url == EXT_TARGET_DEVICE:
            paths["pump_serial"] = path
            serial, from_device = _target(ext.valueReference, path, pump_serial, issues)
            if from_device is not None:
                if channel is not None and channel != from_device:
                    issues.add(path, from_device, "names another channel than target-channel")
                channel = from_device
                paths["channel"] = path
        elif ext.url == EXT_TARGET_CHANNEL:
            value = ext.valuePositiveInt
            if value is None:
                issues.add(f"{path}.valuePositiveInt", None, "the channel number is required")
            elif channel is not None and channel != value:
                issues.add(path, value, "names another channel than target-device")
            else:
                channel = int(value)
                paths["channel"] = path
        elif ext.url == EXT_CONCENTRATION:
            paths["concentration"] = path
            concentration = _concentration(ext, path, issues)
        else:
            issues.add(
                f"{path}.url", ext.url, "is not an extension this server knows", "not-supported"
            )
    if serial is None and EXT_TARGET_DEVICE not in seen:
        issues.add(
            f"{R}.extension",
            None,
            f"the target pump is required (extension {EXT_TARGET_DEVICE})",
        )
    return serial, channel, concentration


def _target(
    reference: Any, path: str, pump_serial: PumpLookup, issues: _Issues
) -> tuple[str | None, int | None]:
    if reference is None:
        issues.add(f"{path}.valueReference", None, "a Device reference is required")
        return None, None
    if reference.reference:
        kind, _, ident = reference.reference.partition("/")
        device = parse_device_id(ident) if kind == "Device" else None
        serial = pump_serial(device.pump_id) if device is not None else None
        if device is None or serial is None:
            issues.add(f"{path}.valueReference", reference.reference, "names no known Device")
            return None, None
        return serial, device.channel
    ident = reference.identifier
    if ident is not None and ident.value:
        if ident.system != PUMP_SERIAL_SYSTEM:
            issues.add(
                f"{path}.valueReference.identifier.system",
                ident.system,
                f"must be {PUMP_SERIAL_SYSTEM}",
            )
            return None, None
        return str(ident.value), None
    issues.add(f"{path}.valueReference", None, "needs a reference or a pump serial identifier")
    return None, None


def _concentration(ext: Any, path: str, issues: _Issues) -> str | None:
    if ext.valueString:
        return str(ext.valueString)
    ratio = ext.valueRatio
    if ratio is None or ratio.numerator is None or ratio.denominator is None:
        issues.add(path, None, "give valueString ('4 mg/50 mL') or valueRatio")
        return None
    num = _positive(ratio.numerator.value, f"{path}.valueRatio.numerator.value", issues)
    den = _positive(ratio.denominator.value, f"{path}.valueRatio.denominator.value", issues)
    n_units = _units(ratio.numerator, f"{path}.valueRatio.numerator", issues)
    d_units = _units(ratio.denominator, f"{path}.valueRatio.denominator", issues)
    if None in (num, den) or n_units is None or d_units is None:
        return None
    if d_units != ["mL"]:
        issues.add(f"{path}.valueRatio.denominator.code", ratio.denominator.code, "must be mL")
        return None
    assert num is not None and den is not None
    return f"{_fmt(num)} {'/'.join(n_units)}/{_fmt(den)} mL"


def _dosage(
    r: MedicationRequest, issues: _Issues, paths: dict[str, str]
) -> tuple[str | None, float | None, float | None]:
    instructions = r.dosageInstruction or []
    if len(instructions) != 1:
        issues.add(f"{R}.dosageInstruction", len(instructions), "exactly one is required")
        return None, None, None
    di = instructions[0]
    base = f"{R}.dosageInstruction[0]"
    given = {k for k in di.model_fields_set if getattr(di, k) is not None}
    for k in sorted(given - _DOSAGE_ALLOWED):
        issues.add(f"{base}.{k}", None, "is not supported by this server", "not-supported")
    entries = di.doseAndRate or []
    if len(entries) != 1:
        issues.add(f"{base}.doseAndRate", len(entries), "exactly one is required")
        return None, None, None
    dr = entries[0]
    base = f"{base}.doseAndRate[0]"
    given = {k for k in dr.model_fields_set if getattr(dr, k) is not None}
    for k in sorted(given - _DOSE_AND_RATE_ALLOWED):
        issues.add(f"{base}.{k}", None, "is not supported by this server", "not-supported")
    dose: str | None = None
    rate: float | None = None
    vtbi: float | None = None
    if dr.doseQuantity is not None:
        path = f"{base}.doseQuantity"
        value = _positive(dr.doseQuantity.value, f"{path}.value", issues)
        units = _units(dr.doseQuantity, path, issues)
        if value is not None and units is not None:
            if units[-1] in TIMES:
                issues.add(f"{path}.code", dr.doseQuantity.code, "is a rate: use rateQuantity")
            elif units == ["mL"]:
                vtbi, paths["vtbi_ml"] = value, f"{path}.value"
            else:
                dose, paths["dose"] = f"{_fmt(value)} {'/'.join(units)}", path
    if dr.rateQuantity is not None and dr.rateRatio is not None:
        issues.add(base, None, "give rateQuantity or rateRatio, not both")
    elif dr.rateQuantity is not None:
        path = f"{base}.rateQuantity"
        value = _positive(dr.rateQuantity.value, f"{path}.value", issues)
        units = _units(dr.rateQuantity, path, issues)
        if value is not None and units is not None:
            dose, rate = _rate_quantity(value, units, path, dose, issues, paths)
    elif dr.rateRatio is not None:
        path = f"{base}.rateRatio"
        num_q, den_q = dr.rateRatio.numerator, dr.rateRatio.denominator
        if num_q is None or den_q is None:
            issues.add(path, None, "needs a numerator and a denominator")
        else:
            num = _positive(num_q.value, f"{path}.numerator.value", issues)
            den = _positive(den_q.value, f"{path}.denominator.value", issues)
            n_units = _units(num_q, f"{path}.numerator", issues)
            d_units = _units(den_q, f"{path}.denominator", issues)
            if None not in (num, den) and n_units is not None and d_units is not None:
                assert num is not None and den is not None
                if len(d_units) != 1 or d_units[0] not in TIMES:
                    issues.add(f"{path}.denominator.code", den_q.code, "must be a time (h, min, d)")
                else:
                    dose, rate = _as_rate(num, n_units, den, d_units[0], path, dose, issues, paths)
    return dose, rate, vtbi


def _rate_quantity(
    value: float,
    units: list[str],
    path: str,
    dose: str | None,
    issues: _Issues,
    paths: dict[str, str],
) -> tuple[str | None, float | None]:
    """A rateQuantity: its unit ends in the time (``mL/h``, ``ug/kg/min``)."""
    if len(units) < 2 or units[-1] not in TIMES:
        issues.add(f"{path}.code", "/".join(units), "a rate needs a time unit (e.g. mL/h)")
        return dose, None
    return _as_rate(value, units[:-1], 1.0, units[-1], path, dose, issues, paths)


def _as_rate(
    value: float,
    amount: list[str],
    per: float,
    time: str,
    path: str,
    dose: str | None,
    issues: _Issues,
    paths: dict[str, str],
) -> tuple[str | None, float | None]:
    """(dose, rate_ml_h) for ``value amount`` per ``per time``."""
    if any(u in TIMES for u in amount):
        issues.add(path, "/".join(amount), "the time goes in the denominator only once")
        return dose, None
    if len(amount) == 1 and amount[0] in VOLUMES:
        rate = value / (per * _HOURS[time])
        if not (math.isfinite(rate) and rate > 0):
            issues.add(path, _fmt(value), "must be a finite rate above 0")
            return dose, None
        paths["rate_ml_h"] = path
        return dose, rate
    if dose is not None:
        issues.add(path, None, "an order gives one dose: doseQuantity or a dose rate, not both")
        return dose, None
    per_value = value / per
    if not (math.isfinite(per_value) and per_value > 0):
        issues.add(path, _fmt(value), "must be a finite dose rate above 0")
        return dose, None
    paths["dose"] = path
    return f"{_fmt(per_value)} {'/'.join(amount)}/{time}", None
