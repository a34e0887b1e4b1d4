"""An EHR order checked against the drug library the pump runs (DERS, before anything is sent).

The pump checks every program again against its own library (it has the last word), but an
order that cannot pass is refused at intake with a reason the EHR can show (IHE PCD TF-2
PCD-03: the infusion order consumer "may application-reject ... drug not in onboard
library, dose/rate out of device parameters"). Soft-limit crossings are not refused: the
order is pre-populated with the flag shown, and only a clinician at the bedside may
override it with a reason (never remotely).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from openinfusion.errors import InputError
from openinfusion.library import Library
from openinfusion.library.ders import Level, Program, check
from openinfusion.library.loading import library_from_data
from openinfusion.library.schema import CareArea, DrugEntry
from openinfusion.patient import Patient as Covariates
from openinfusion.server.models import Patient, PublishedLibrary, Pump
from openinfusion.units import Dimension, parse_concentration, parse_dose

# HL7 v2 table 0357 (message error condition codes), HL7 v2.6 ch. 2 "ERR-3".
HL7_REQUIRED_MISSING = 101
HL7_DATA_TYPE_ERROR = 102
HL7_TABLE_VALUE_NOT_FOUND = 103
HL7_UNSUPPORTED_MESSAGE_TYPE = 200
HL7_UNKNOWN_KEY = 204
HL7_DUPLICATE_KEY = 205
HL7_APPLICATION_ERROR = 207

# DERS finding parameter -> the order field it judges.
_FIELD = {
    "dose": "dose",
    "dose (from rate)": "rate_ml_h",
    "rate": "rate_ml_h",
    "concentration": "concentration",
    "vtbi": "vtbi_ml",
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason to refuse (the orders module turns it into an ``OrderIssue``)."""

    field: str
    value: Any
    rule: str
    hl7_code: int = HL7_APPLICATION_ERROR


@dataclass(slots=True)
class LibraryCheck:
    """What the library said about the order: the entry, care area and DERS outcome."""

    problems: list[Problem] = field(default_factory=list)
    library_version: str | None = None
    care_area: str | None = None
    drug: str | None = None  # the library entry's drug name (what the pump is sent)
    concentration: str | None = None  # as sent to the pump
    soft_limit: bool = False
    findings: list[dict[str, Any]] = field(default_factory=list)
    rate_ml_h: float | None = None  # the rate the dose needs (computed), mL/h


_LIBRARIES: dict[tuple[str, str], Library] = {}


def _library(session: Session, version: str) -> Library | None:
    """The published library package ``version`` (parsed once per content hash)."""
    row = session.scalars(
        select(PublishedLibrary).where(PublishedLibrary.version == version)
    ).first()
    if row is None:
        return None
    key = (row.version, row.sha256)
    lib = _LIBRARIES.get(key)
    if lib is None:
        signed = row.package.get("signed") if isinstance(row.package, dict) else None
        data = signed.get("library") if isinstance(signed, dict) else None
        lib = library_from_data(data)
        _LIBRARIES[key] = lib
    return lib


def _care_area(lib: Library, pump: Pump, patient: Patient) -> CareArea | None:
    """The care area named by the pump's unit, else by the patient's unit."""
    for unit in (pump.unit, patient.unit):
        if unit:
            try:
                return lib.care_area(unit)
            except InputError:
                continue
    return None


def _entry(lib: Library, area: CareArea, name: str | None, code: str | None) -> DrugEntry | None:
    for key in (name, code):
        if key and key.strip():
            try:
                found = lib.find(area.id, key.strip())
            except InputError:
                return None
            if found is not None:
                return found
    return None


def check_against_library(
    session: Session,
    pump: Pump,
    patient: Patient,
    *,
    drug_name: str | None,
    drug_code: str | None,
    concentration: str | None,
    dose: str | None,
    rate_ml_h: float | None,
    vtbi_ml: float | None,
    weight_kg: float | None,
) -> LibraryCheck:
    """DERS for an order on ``pump``: library version, care area, entry, units, limits."""
    out = LibraryCheck()
    add = out.problems.append
    version = pump.library_version
    if not version:
        add(Problem("pump_serial", pump.serial, "the pump reports no active drug library"))
        return out
    lib = _library(session, version)
    if lib is None:
        add(
            Problem(
                "pump_serial",
                pump.serial,
                f"runs library {version}, which is not published on this server",
            )
        )
        return out
    out.library_version = lib.version
    area = _care_area(lib, pump, patient)
    if area is None:
        units = " or ".join(repr(u) for u in (pump.unit, patient.unit) if u) or "no unit"
        add(
            Problem(
                "pump_serial",
                pump.serial,
                f"its care unit ({units}) names no care area of library {lib.name} {lib.version}",
                HL7_TABLE_VALUE_NOT_FOUND,
            )
        )
        return out
    out.care_area = area.name
    entry = _entry(lib, area, drug_name, drug_code)
    if entry is None:
        add(
            Problem(
                "drug",
                drug_name or drug_code,
                f"is not in drug library {lib.name} {lib.version} for {area.name}",
                HL7_TABLE_VALUE_NOT_FOUND,
            )
        )
        return out
    out.drug = entry.drug
    unit = entry.compiled.unit
    conc = None
    if concentration is not None:
        try:
            conc = parse_concentration(concentration)
        except InputError as exc:
            add(Problem("concentration", concentration, exc.rule, HL7_DATA_TYPE_ERROR))
            return out
        if unit.dimension is not Dimension.VOLUME and conc.dimension is not unit.dimension:
            add(
                Problem(
                    "concentration",
                    concentration,
                    f"is in {conc.dimension.value} but {entry.label} is dosed in "
                    f"{unit.dimension.value} ({entry.dose_unit}) in the library",
                    HL7_TABLE_VALUE_NOT_FOUND,
                )
            )
            return out
        out.concentration = conc.text
    parsed_dose = None
    if dose is not None:
        try:
            parsed_dose = parse_dose(dose)
        except InputError as exc:
            add(Problem("dose", dose, exc.rule, HL7_DATA_TYPE_ERROR))
            return out
    try:
        covariates = Covariates(weight_kg=weight_kg)
        program = Program(
            dose=parsed_dose, rate_ml_h=rate_ml_h, concentration=conc, vtbi_ml=vtbi_ml
        )
        verdict = check(program, entry, covariates, area)
    except InputError as exc:
        add(Problem(_FIELD.get(exc.field, exc.field), exc.value, exc.rule))
        return out
    if conc is None and entry.concentrations and len(entry.concentrations) == 1:
        out.concentration = entry.concentrations[0]
    computed = verdict.computed.get("rate_ml_h")
    if computed is not None and math.isfinite(computed):
        out.rate_ml_h = computed
    where = f" for {verdict.drug} in {verdict.care_area}"
    for finding in verdict.crossed:
        text = finding.message + (where if finding.bound and not finding.note else "")
        shown = {k: v for k, v in finding.as_dict().items() if k != "value"}
        value = finding.value if math.isfinite(finding.value) else None
        out.findings.append({**shown, "value": value, "message": text})
        if finding.level is Level.HARD:
            add(
                Problem(
                    _FIELD.get(finding.parameter, finding.parameter),
                    f"{finding.value:g} {finding.unit}".strip(),
                    text + " (hard limit: blocked)",
                )
            )
    out.soft_limit = verdict.level is Level.SOFT
    return out
