"""Shared builders of records and messages for the HL7 tests."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from openinfusion.interop.records import AlarmReport, ChannelObservation, PatientRef

CORPUS = Path(__file__).parent / "corpus"
NOW = datetime(2026, 3, 1, 8, 30, 0, tzinfo=UTC)
PATIENT = PatientRef("MRN-0042", "Nightingale", "Florence", date(1960, 5, 12), "female")


def observation(**changes: object) -> ChannelObservation:
    base: dict[str, object] = {
        "pump_id": "pump-7",
        "pump_serial": "OI-SYR-0007",
        "pump_model": "OI-Syringe 50",
        "pump_kind": "syringe",
        "channel": 1,
        "observed_at": datetime(2026, 3, 1, 8, 29, 55, tzinfo=UTC),
        "state": "running",
        "drug": "Noradrenaline 4 mg/50 mL",
        "dose": 0.1,
        "dose_unit": "mcg/kg/min",
        "rate_ml_h": 5.25,
        "volume_infused_ml": 12.5,
        "vtbi_remaining_ml": 37.5,
        "time_remaining_min": 428.6,
        "patient": PATIENT,
        "placer_order_id": "ORD-1001",
        "event": None,
        "pump_seq": 311,
    }
    base.update(changes)
    return ChannelObservation(**base)  # type: ignore[arg-type]


def alarm(**changes: object) -> AlarmReport:
    base: dict[str, object] = {
        "alarm_id": 91,
        "pump_id": "pump-3",
        "pump_serial": "OI-LVP-0003",
        "pump_model": "OI-LVP 2ch",
        "pump_kind": "lvp",
        "channel": 2,
        "code": "occlusion_downstream",
        "priority": "high",
        "message": "Downstream occlusion | check line",
        "raised_at": datetime(2026, 3, 1, 8, 10, 0, tzinfo=UTC),
        "state": "active",
        "changed_at": datetime(2026, 3, 1, 8, 10, 0, tzinfo=UTC),
        "patient": PATIENT,
        "placer_order_id": "ORD-1002",
    }
    base.update(changes)
    return AlarmReport(**base)  # type: ignore[arg-type]


def corpus_bytes(name: str) -> bytes:
    return (CORPUS / name).read_bytes()
