"""JSON views of stored rows (one place that decides what the API shows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from openinfusion.server.clock import iso
from openinfusion.server.gaps import as_display, missing_count
from openinfusion.server.models import (
    Alarm,
    Association,
    Channel,
    Command,
    Infusion,
    Patient,
    Pump,
    PumpMessage,
)


def online(pump: Pump, now: datetime, window_s: float) -> bool:
    return pump.last_seen is not None and (now - pump.last_seen).total_seconds() <= window_s


def infusion_view(inf: Infusion) -> dict[str, Any]:
    return {
        "id": inf.id,
        "pump_id": inf.pump_id,
        "channel": inf.channel,
        "drug": inf.drug,
        "dose": inf.dose,
        "dose_unit": inf.dose_unit,
        "rate_ml_h": inf.rate_ml_h,
        "volume_infused_ml": inf.volume_infused_ml,
        "dose_delivered": inf.dose_delivered,
        "dose_delivered_unit": inf.dose_delivered_unit,
        "started_at": iso(inf.started_at),
        "ended_at": iso(inf.ended_at),
        "end_reason": inf.end_reason,
        "active": inf.ended_at is None,
    }


def channel_patients(
    session: Session, pump_ids: list[str]
) -> dict[tuple[str, int], dict[str, Any]]:
    """(pump id, channel) → the patient its open association names."""
    rows = session.execute(
        select(Association, Patient)
        .join(Patient, Patient.id == Association.patient_id)
        .where(Association.pump_id.in_(pump_ids), Association.ended_at.is_(None))
    )
    return {
        (a.pump_id, a.channel): {
            "id": p.id,
            "mrn": p.mrn,
            "family_name": p.family_name,
            "given_name": p.given_name,
            "association_id": a.id,
            "associated_at": iso(a.associated_at),
        }
        for a, p in rows
    }


def channel_view(
    ch: Channel, infusion: Infusion | None, patient: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "channel": ch.channel,
        "state": ch.state,
        "drug": ch.drug,
        "dose": ch.dose,
        "dose_unit": ch.dose_unit,
        "rate_ml_h": ch.rate_ml_h,
        "volume_infused_ml": ch.volume_infused_ml,
        "vtbi_remaining_ml": ch.vtbi_remaining_ml,
        "time_remaining_min": ch.time_remaining_min,
        "updated_at": iso(ch.updated_at),
        "infusion": infusion_view(infusion) if infusion is not None else None,
        "patient": patient,
    }


def pump_view(
    pump: Pump,
    channels: list[Channel],
    infusions: dict[int, Infusion],
    now: datetime,
    window_s: float,
    patients: dict[tuple[str, int], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    gaps = pump.gaps or []
    patients = patients or {}
    return {
        "id": pump.id,
        "serial": pump.decommissioned_serial or pump.serial,
        "decommissioned_at": iso(pump.decommissioned_at),
        "model": pump.model,
        "kind": pump.kind,
        "unit": pump.unit,
        "online": online(pump, now, window_s),
        "last_seen": iso(pump.last_seen),
        "last_seq": pump.last_seq,
        "gaps": as_display(gaps),
        "missing": missing_count(gaps),
        "library_version": pump.library_version,
        "enrolled_at": iso(pump.enrolled_at),
        "key_id": pump.key_id,
        "power": pump.power,
        "channels": [
            channel_view(
                ch,
                infusions.get(ch.infusion_id) if ch.infusion_id else None,
                patients.get((pump.id, ch.channel)),
            )
            for ch in sorted(channels, key=lambda c: c.channel)
        ],
    }


def message_view(m: PumpMessage) -> dict[str, Any]:
    return {
        "seq": m.seq,
        "type": m.type,
        "sent_at": m.sent_at,
        "received_at": iso(m.received_at),
        "body": m.body,
        "signature": m.signature,
    }


def alarm_view(a: Alarm) -> dict[str, Any]:
    return {
        "id": a.id,
        "pump_id": a.pump_id,
        "channel": a.channel,
        "code": a.code,
        "priority": a.priority,
        "message": a.message,
        "raised_at": iso(a.raised_at),
        "cleared_at": iso(a.cleared_at),
        "acknowledged_at": iso(a.acknowledged_at),
        "acknowledged_by": a.acknowledged_by,
        "active": a.cleared_at is None,
    }


def command_view(c: Command) -> dict[str, Any]:
    return {
        "id": c.id,
        "pump_id": c.pump_id,
        "channel": c.channel,
        "action": c.action,
        "params": {k: v for k, v in c.params.items() if k != "package"},  # packages are large
        "issued_by": c.issued_by,
        "issued_at": iso(c.issued_at),
        "expires_at": iso(c.expires_at),
        "status": c.status,
        "reason": c.reason,
        "result_at": iso(c.result_at),
        "delivered_at": iso(c.delivered_at),
        "bedside_confirmation_required": c.action in {"program", "start", "bolus"},
    }
