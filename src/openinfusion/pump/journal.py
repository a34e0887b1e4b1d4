"""Crash-safe journal and recovery (RELIABILITY F-01, F-03, F-07; HOSPITAL_REFERENCE §6.4).

The journal is SQLite in WAL mode with ``synchronous=FULL``: a commit returns only once it
is on disk. Two tables:

- ``records``: append-only, every command (committed *before* it takes effect) and every
  event, each with a sequence number and a CRC-32 of its body;
- ``checkpoint``: one row, replaced in the same transaction as the records it follows: a
  full snapshot of the device with, per channel, a *reservation*: the displacement the
  channel may reach before the next commit (current volume + rate x time to the next
  event or checkpoint). The device never delivers past a reservation without committing.

:func:`recover` rebuilds the device from the last checkpoint and takes each channel's
reservation as delivered (the real volume lies between the checkpoint's and the
reservation; assuming the larger can only under-deliver later, never over-deliver). It
never restarts delivery: every channel that was running comes back in ALARM with
``crash_recovered`` (high priority) and needs a clinician to confirm and resume. An
interrupted bolus is cancelled, never re-delivered; a loading dose in progress counts as
given. Commands journaled after the checkpoint did not take effect and are reported.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openinfusion.errors import InputError
from openinfusion.pump.alarms import ActiveAlarm, AlarmBoard
from openinfusion.pump.battery import Battery
from openinfusion.pump.channel import Channel, ChannelSettings, Line, PcaRecord, State, _Timers
from openinfusion.pump.codes import Alarm, Event, Priority
from openinfusion.pump.mechanics import Mechanism, PumpKind
from openinfusion.pump.plan import (
    DrugInfo,
    Envelope,
    Overlay,
    OverlayKind,
    PcaSettings,
    Plan,
    Step,
    StepKind,
)
from openinfusion.pump.window import WindowMeter

if TYPE_CHECKING:
    from openinfusion.pump.device import Device, Record

SNAPSHOT_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY, t_s REAL NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL,
    crc INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, t_s REAL NOT NULL,
    body TEXT NOT NULL, crc INTEGER NOT NULL);
"""


def _crc(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True)


class SqliteJournal:
    """Durable journal of one device (implements ``device.JournalSink``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def command(self, record: Record) -> None:
        body = _dumps(record.data)
        with self.conn:
            self.conn.execute(
                "INSERT INTO records VALUES (?, ?, ?, ?, ?)",
                (record.seq, record.t_s, record.kind, body, _crc(body)),
            )

    def commit(self, records: Sequence[Record], snapshot: dict[str, Any] | None) -> None:
        rows = []
        for r in records:
            body = _dumps(r.data)
            rows.append((r.seq, r.t_s, r.kind, body, _crc(body)))
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            if rows:
                self.conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?)", rows)
            if snapshot is not None:
                body = _dumps(snapshot)
                self.conn.execute(
                    "INSERT OR REPLACE INTO checkpoint VALUES (1, ?, ?, ?, ?)",
                    (snapshot["seq"], snapshot["t_s"], body, _crc(body)),
                )

    def records(self) -> list[dict[str, Any]]:
        """Every record, CRC-checked, in sequence order."""
        out = []
        for seq, t_s, kind, body, crc in self.conn.execute(
            "SELECT seq, t_s, kind, body, crc FROM records ORDER BY seq"
        ):
            if _crc(body) != crc:
                raise InputError("journal", f"record {seq}", "failed its CRC check (corrupt)")
            out.append({"seq": seq, "t_s": t_s, "kind": kind, **json.loads(body)})
        return out

    def checkpoint(self) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT body, crc FROM checkpoint WHERE id = 1").fetchone()
        if row is None:
            return None
        body, crc = row
        if _crc(body) != crc:
            raise InputError("journal", "checkpoint", "failed its CRC check (corrupt)")
        snap: dict[str, Any] = json.loads(body)
        return snap


# ---- snapshots ---------------------------------------------------------------------------------


def _plan_dict(plan: Plan) -> dict[str, Any]:
    return dataclasses.asdict(plan)


def _plan_from(data: dict[str, Any]) -> Plan:
    pca = data.get("pca")
    return Plan(
        therapy=data["therapy"],
        steps=[
            Step(StepKind(s["kind"]), s["rate_ml_h"], s["volume_ml"], s["duration_s"], s["label"])
            for s in data["steps"]
        ],
        vtbi_ml=data["vtbi_ml"],
        kvo_at_end=data["kvo_at_end"],
        kvo_rate_ml_h=data["kvo_rate_ml_h"],
        repeat_from=data["repeat_from"],
        drug=DrugInfo(**data["drug"]) if data.get("drug") else None,
        envelope=Envelope(**data["envelope"]),
        pca=PcaSettings(**{**pca, "limits": tuple(tuple(x) for x in pca["limits"])})
        if pca
        else None,
        label=data["label"],
    )


def _meter_dict(meter: WindowMeter | None) -> dict[str, Any] | None:
    if meter is None:
        return None
    return {"window_s": meter.window_s, "segments": [list(s) for s in meter._segments]}


def _meter_from(data: dict[str, Any] | None) -> WindowMeter | None:
    if data is None:
        return None
    meter = WindowMeter(data["window_s"])
    for t0, t1, rate in data["segments"]:
        meter.record(t0, t1, rate)
    return meter


def reservation_ml(ch: Channel, horizon_s: float) -> float:
    """Upper bound of the channel's displacement until ``horizon_s`` (rate is constant
    until the next event, and every event or command commits a new checkpoint)."""
    until = min(ch.next_event_s(), horizon_s)
    return ch.ideal_ml + ch.rate_ml_h * max(0.0, until - ch.t_s) / 3600.0


def channel_snapshot(ch: Channel, horizon_s: float) -> dict[str, Any]:
    return {
        "index": ch.index,
        "state": ch.state.value,
        "mechanism": {**dataclasses.asdict(ch.mech), "kind": ch.mech.kind.value},
        "settings": dataclasses.asdict(ch.settings),
        "plan": _plan_dict(ch.plan) if ch.plan else None,
        "step_i": ch.step_i,
        "step_started_s": ch.step_started_s,
        "step_ml": ch.step_ml,
        "overlays": [{**dataclasses.asdict(o), "kind": o.kind.value} for o in ch.overlays],
        "overlay_seq": ch._overlay_seq,
        "ideal_ml": ch.ideal_ml,
        "program_ml": ch.program_ml,
        "kvo_ml": ch.kvo_ml,
        "secondary_ml": ch.secondary_ml,
        "patient_ml": ch.patient_ml,
        "lost_ml": ch.lost_ml,
        "slack_ml": ch.slack_ml,
        "reservoir_ml": ch.reservoir_ml,
        "line": ch.line.value,
        "pressure_mmhg": ch.pressure_mmhg,
        "pressure_stuck": ch.pressure_stuck,
        "upstream_occluded": ch.upstream_occluded,
        "door_open": ch.door_open,
        "loading_given": ch.loading_given,
        "meter": _meter_dict(ch.meter),
        "pca_meters": [[_meter_dict(m), limit] for m, limit in ch.pca_meters],
        "pca_history": [[r.t_s, r.granted, r.reason] for r in ch.pca_history],
        "last_grant_s": ch.last_grant_s,
        "timers": {
            "paused_at": ch.timers.paused_at,
            "disconnect_detect": ch.timers.disconnect_detect,
            "sensor_detect": ch.timers.sensor_detect,
            "air": ch.timers.air,
        },
        "rate_ml_h": ch.rate_ml_h,
        "reserve_ml": reservation_ml(ch, horizon_s),
    }


def device_snapshot(device: Device) -> dict[str, Any]:
    horizon = device.t_s + (device.checkpoint_s if device.checkpoint_s is not None else math.inf)
    return {
        "version": SNAPSHOT_VERSION,
        "serial": device.serial,
        "t_s": device.t_s,
        "seq": device.seq,
        "powered": device.powered,
        "battery": dataclasses.asdict(device.battery),
        "alarms": [
            {
                "code": a.alarm.name,
                "channel": a.channel,
                "raised_s": a.raised_s,
                "priority": a.priority.value,
                "condition": a.condition,
                "acknowledged": a.acknowledged,
                "silenced_until_s": a.silenced_until_s,
            }
            for a in device.board.active()
        ],
        "checkpoint_s": device.checkpoint_s,
        "channels": [channel_snapshot(ch, horizon) for ch in device.channels],
    }


def _restore_channel(ch: Channel, s: dict[str, Any]) -> None:
    ch.state = State(s["state"])
    ch.plan = _plan_from(s["plan"]) if s["plan"] else None
    ch.step_i, ch.step_started_s, ch.step_ml = s["step_i"], s["step_started_s"], s["step_ml"]
    ch.overlays = [Overlay(**{**o, "kind": OverlayKind(o["kind"])}) for o in s["overlays"]]
    ch._overlay_seq = s["overlay_seq"]
    for name in (
        "ideal_ml",
        "program_ml",
        "kvo_ml",
        "secondary_ml",
        "patient_ml",
        "lost_ml",
        "slack_ml",
        "reservoir_ml",
        "pressure_mmhg",
        "pressure_stuck",
        "upstream_occluded",
        "door_open",
        "loading_given",
        "last_grant_s",
    ):
        setattr(ch, name, s[name])
    ch.line = Line(s["line"])
    ch.meter = _meter_from(s["meter"])
    ch.pca_meters = [
        (m, limit) for data, limit in s["pca_meters"] if (m := _meter_from(data)) is not None
    ]
    ch.pca_history = [PcaRecord(t, g, r) for t, g, r in s["pca_history"]]
    t = s["timers"]
    ch.timers = _Timers(
        t["paused_at"],
        t["disconnect_detect"],
        t["sensor_detect"],
        [(float(a), float(b)) for a, b in t["air"]],
    )
    ch._recompute()


def restore_device(snapshot: dict[str, Any], journal: SqliteJournal | None = None) -> Device:
    """Rebuild a device exactly as in ``snapshot`` (no recovery policy applied)."""
    from openinfusion.pump.device import Device

    if snapshot.get("version") != SNAPSHOT_VERSION:
        raise InputError("journal", snapshot.get("version"), "unknown snapshot version")
    mechanisms = []
    settings = []
    for c in snapshot["channels"]:
        mechanisms.append(Mechanism(**{**c["mechanism"], "kind": PumpKind(c["mechanism"]["kind"])}))
        settings.append(ChannelSettings(**c["settings"]))
    device = Device(
        mechanisms,
        settings=settings,
        battery=Battery(**snapshot["battery"]),
        serial=snapshot["serial"],
        journal=journal,
        checkpoint_s=snapshot.get("checkpoint_s"),
    )
    device.t_s = snapshot["t_s"]
    device.seq = snapshot["seq"]
    device.powered = snapshot["powered"]
    board = AlarmBoard()
    for a in snapshot["alarms"]:
        active = ActiveAlarm(
            Alarm[a["code"]],
            a["channel"],
            a["raised_s"],
            Priority(a["priority"]),
            a["condition"],
            a["acknowledged"],
            a["silenced_until_s"],
        )
        board._active[(active.alarm, active.channel)] = active
    device.board = board
    for ch, data in zip(device.channels, snapshot["channels"], strict=True):
        ch.board = board
        ch.t_s = device.t_s
        _restore_channel(ch, data)
    return device


# ---- recovery ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Recovery:
    """What :func:`recover` found and did."""

    device: Device
    checkpoint_seq: int
    last_seq: int
    uncertain_commands: list[dict[str, Any]]
    channels: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "serial": self.device.serial,
            "t_s": self.device.t_s,
            "checkpoint_seq": self.checkpoint_seq,
            "last_seq": self.last_seq,
            "uncertain_commands": self.uncertain_commands,
            "channels": self.channels,
            "status": self.device.status(),
        }


def recover(path: str | Path) -> Recovery:
    """Rebuild the device journaled at ``path`` after a crash; never restart delivery."""
    file = Path(path)
    if not file.exists():
        raise InputError("journal", str(path), "does not exist")
    journal = SqliteJournal(file)
    status = journal.conn.execute("PRAGMA integrity_check").fetchone()[0]
    if status != "ok":
        raise InputError("journal", str(path), f"failed the SQLite integrity check ({status})")
    snapshot = journal.checkpoint()
    if snapshot is None:
        raise InputError("journal", str(path), "has no checkpoint: nothing was programmed")
    records = journal.records()
    _check_sequence(records)
    last_seq = records[-1]["seq"] if records else 0
    uncertain = [r for r in records if r["seq"] > snapshot["seq"] and r["kind"] == "command"]
    device = restore_device(snapshot, journal)
    device.seq = max(device.seq, last_seq)
    channels = []
    for ch, data in zip(device.channels, snapshot["channels"], strict=True):
        channels.append(_apply_recovery_policy(device, ch, data["reserve_ml"]))
    device._emit(
        device.t_s,
        Event.RECOVERED.value,
        {"checkpoint_seq": snapshot["seq"], "uncertain_commands": len(uncertain)},
    )
    device._flush(force=True)
    return Recovery(device, snapshot["seq"], last_seq, uncertain, channels)


def _check_sequence(records: list[dict[str, Any]]) -> None:
    for expected, record in enumerate(records, start=1):
        if record["seq"] != expected:
            raise InputError(
                "journal",
                f"record {record['seq']}",
                f"breaks the sequence (expected {expected}): records are missing",
            )


def _apply_recovery_policy(device: Device, ch: Channel, reserve_ml: float) -> dict[str, Any]:
    t = device.t_s
    was = ch.state
    unknown = max(0.0, reserve_ml - ch.ideal_ml)  # delivered or not: assume delivered
    report: dict[str, Any] = {
        "channel": ch.index,
        "state_before": was.value,
        "confirmed_ml": ch.ideal_ml,
        "assumed_ml": reserve_ml,
    }
    if unknown > 0:
        ch.ideal_ml += unknown
        if ch.reservoir_ml is not None:
            ch.reservoir_ml = max(0.0, ch.reservoir_ml - unknown)
        if was is State.KVO:
            ch.kvo_ml += unknown
        elif ch.plan is not None and was in (State.RUNNING, State.BOLUS, State.DELAYED):
            vtbi = ch.plan.vtbi_ml if ch.plan.vtbi_ml is not None else math.inf
            ch.program_ml = min(ch.program_ml + unknown, vtbi)
            step = ch.plan.steps[ch.step_i]
            ch.step_ml += unknown
            if step.volume_ml is not None:
                ch.step_ml = min(ch.step_ml, step.volume_ml)
    cancelled = [o for o in ch.overlays if o.adds]
    for overlay in cancelled:  # an interrupted bolus is never re-delivered
        ch.overlays.remove(overlay)
        ch.emit(
            t,
            Event.BOLUS_CANCELLED.value,
            {
                "kind": overlay.kind.value,
                "id": overlay.id,
                "delivered_ml": overlay.delivered_ml,
                "reason": "interrupted by a restart",
            },
        )
    report["bolus_cancelled"] = len(cancelled)
    if ch.plan is not None and ch.plan.steps[ch.step_i].kind is StepKind.LOADING:
        ch.loading_given = True  # never re-deliver a loading dose
        if ch.step_i + 1 < len(ch.plan.steps):
            ch.step_i += 1
            ch.step_ml = 0.0
            report["loading_skipped"] = True
    if was in (State.RUNNING, State.BOLUS, State.DELAYED, State.KVO, State.PAUSED):
        if was is State.BOLUS:
            ch.state = State.RUNNING
        ch.board.raise_(Alarm.CRASH_RECOVERED, t, ch.index)
        ch.emit(t, Event.ALARM.value, {"code": Alarm.CRASH_RECOVERED.code, "priority": "high"})
        ch.state = State.ALARM
        ch.emit(t, "state", {"from": was.value, "to": "alarm", "reason": "recovered"})
    ch._recompute()
    report["state_after"] = ch.state.value
    return report
