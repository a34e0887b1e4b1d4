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
reservation; assuming the larger can only under-deliver later, never over-deliver): the
channel is integrated up to the end of its reservation, so the assumed volume enters the
VTBI, the step, the bolus and the drug's dose windows like any delivery. It never restarts
delivery: every channel with a program that was not finished comes back in ALARM with
``crash_recovered`` (high priority) and needs a clinician to confirm and resume. An
interrupted bolus is cancelled, never re-delivered; a loading dose in progress counts as
given. Commands journaled after the checkpoint did not take effect and are reported.
Recovery commits in one transaction: a crash during recovery leaves the journal as it was.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
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
from openinfusion.pump.window import DoseLedger

if TYPE_CHECKING:
    from openinfusion.pump.device import Device, JournalSink, Record

SNAPSHOT_VERSION = 2

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
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise InputError("journal", str(path), f"is not a pump journal ({exc})") from None

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
        """Every record, CRC-checked, in sequence order, as ``Record.as_dict`` shapes it:
        ``{"seq", "t_s", "kind", "data"}``."""
        out = []
        try:
            rows = self.conn.execute(
                "SELECT seq, t_s, kind, body, crc FROM records ORDER BY seq"
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise InputError("journal", str(self.path), f"cannot be read ({exc})") from None
        for seq, t_s, kind, body, crc in rows:
            if not isinstance(body, str) or _crc(body) != crc:
                raise InputError("journal", f"record {seq}", "failed its CRC check (corrupt)")
            out.append({"seq": seq, "t_s": t_s, "kind": kind, "data": json.loads(body)})
        return out

    def checkpoint(self) -> dict[str, Any] | None:
        try:
            row = self.conn.execute("SELECT body, crc FROM checkpoint WHERE id = 1").fetchone()
        except sqlite3.DatabaseError as exc:
            raise InputError("journal", str(self.path), f"cannot be read ({exc})") from None
        if row is None:
            return None
        body, crc = row
        if not isinstance(body, str) or _crc(body) != crc:
            raise InputError("journal", "checkpoint", "failed its CRC check (corrupt)")
        snap: dict[str, Any] = json.loads(body)
        return snap


# ---- snapshots ---------------------------------------------------------------------------------


_FIELDS: dict[type, tuple[str, ...]] = {}


def _flat(obj: Any) -> dict[str, Any]:
    """Fields of a flat dataclass (numbers, text, enums as their values); a snapshot is
    taken at every commit, so this avoids the deep copies of ``dataclasses.asdict``."""
    names = _FIELDS.get(type(obj))
    if names is None:
        names = _FIELDS[type(obj)] = tuple(f.name for f in dataclasses.fields(obj))
    out = {}
    for name in names:
        value = getattr(obj, name)
        out[name] = value.value if isinstance(value, Enum) else value
    return out


def _plan_dict(plan: Plan) -> dict[str, Any]:
    pca = plan.pca
    return {
        "therapy": plan.therapy,
        "steps": [_flat(step) for step in plan.steps],
        "vtbi_ml": plan.vtbi_ml,
        "kvo_at_end": plan.kvo_at_end,
        "kvo_rate_ml_h": plan.kvo_rate_ml_h,
        "repeat_from": plan.repeat_from,
        "drug": _flat(plan.drug) if plan.drug is not None else None,
        "envelope": _flat(plan.envelope),
        "pca": {**_flat(pca), "limits": [list(x) for x in pca.limits]} if pca else None,
        "label": plan.label,
    }


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


def reservation(ch: Channel, horizon_s: float) -> tuple[float, float]:
    """(displacement mL, pump time s): the most the channel can have moved before the
    next commit. The rate is constant until the channel's next event, and the device
    commits by the earliest such event (``Device._commit_by``), at every command and at
    every checkpoint."""
    until = max(ch.t_s, min(ch.next_event_s(), horizon_s))
    if ch.rate_ml_h <= 0 or math.isinf(until):
        return ch.ideal_ml, ch.t_s
    return ch.ideal_ml + ch.rate_ml_h * (until - ch.t_s) / 3600.0, until


def reservation_ml(ch: Channel, horizon_s: float) -> float:
    """Upper bound of the channel's displacement until ``horizon_s``."""
    return reservation(ch, horizon_s)[0]


def channel_snapshot(ch: Channel, horizon_s: float) -> dict[str, Any]:
    reserve_ml, reserve_until_s = reservation(ch, horizon_s)
    return {
        "index": ch.index,
        "state": ch.state.value,
        "mechanism": _flat(ch.mech),
        "settings": _flat(ch.settings),
        "plan": _plan_dict(ch.plan) if ch.plan else None,
        "step_i": ch.step_i,
        "step_started_s": ch.step_started_s,
        "step_ml": ch.step_ml,
        "overlays": [_flat(o) for o in ch.overlays],
        "overlay_seq": ch._overlay_seq,
        "ideal_ml": ch.ideal_ml,
        "program_ml": ch.program_ml,
        "kvo_ml": ch.kvo_ml,
        "secondary_ml": ch.secondary_ml,
        "patient_ml": ch.patient_ml,
        "lost_ml": ch.lost_ml,
        "slack_ml": ch.slack_ml,
        "slack_taken_ml": ch.slack_taken_ml,
        "stored_ml": ch.stored_ml,
        "withdrawn_ml": ch.withdrawn_ml,
        "reservoir_ml": ch.reservoir_ml,
        "line": ch.line.value,
        "pressure_mmhg": ch.pressure_mmhg,
        "pressure_stuck": ch.pressure_stuck,
        "upstream_occluded": ch.upstream_occluded,
        "door_open": ch.door_open,
        "loading_given": ch.loading_given,
        "limits": [list(limit) for limit in ch.limits],
        "pca_history": [[r.t_s, r.granted, r.reason] for r in ch.pca_history],
        "last_grant_s": ch.last_grant_s,
        "timers": {
            "paused_at": ch.timers.paused_at,
            "disconnect_detect": ch.timers.disconnect_detect,
            "sensor_detect": ch.timers.sensor_detect,
            "air": ch.timers.air,
        },
        "rate_ml_h": ch.rate_ml_h,
        "reserve_ml": reserve_ml,
        "reserve_until_s": reserve_until_s,
    }


def device_snapshot(device: Device) -> dict[str, Any]:
    horizon = device.t_s + (device.checkpoint_s if device.checkpoint_s is not None else math.inf)
    return {
        "version": SNAPSHOT_VERSION,
        "serial": device.serial,
        "t_s": device.t_s,
        "seq": device.seq,
        "powered": device.powered,
        "battery": _flat(device.battery),
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
        "next_checkpoint_s": device._next_checkpoint
        if math.isfinite(device._next_checkpoint)
        else None,
        "commit_by_s": device._commit_by if math.isfinite(device._commit_by) else None,
        "ledger": device.ledger.as_dict(),
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
        "slack_taken_ml",
        "stored_ml",
        "withdrawn_ml",
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
    ch.limits = [(str(name), float(w), float(limit)) for name, w, limit in s["limits"]]
    ch.pca_history = [PcaRecord(t, g, r) for t, g, r in s["pca_history"]]
    t = s["timers"]
    ch.timers = _Timers(
        t["paused_at"],
        t["disconnect_detect"],
        t["sensor_detect"],
        [(float(a), float(b)) for a, b in t["air"]],
    )
    ch._recompute()


def restore_device(
    snapshot: dict[str, Any],
    journal: JournalSink | None = None,
    listener: Callable[[Record], None] | None = None,
) -> Device:
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
        listener=listener,
    )
    device.t_s = snapshot["t_s"]
    device.seq = snapshot["seq"]
    device.powered = snapshot["powered"]
    if snapshot.get("next_checkpoint_s") is not None and device.checkpoint_s is not None:
        device._next_checkpoint = snapshot["next_checkpoint_s"]
    if snapshot.get("commit_by_s") is not None and journal is not None:
        device._commit_by = snapshot["commit_by_s"]
    device.ledger = DoseLedger.from_dict(snapshot["ledger"])
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
        ch.ledger = device.ledger
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
    return recover_from(snapshot, journal.records(), journal)


def recover_from(
    snapshot: dict[str, Any],
    records: list[dict[str, Any]],
    journal: JournalSink | None = None,
    listener: Callable[[Record], None] | None = None,
) -> Recovery:
    """Recovery from a checkpoint and the records of a journal (see :func:`recover`)."""
    _check_sequence(records)
    last_seq = records[-1]["seq"] if records else 0
    uncertain = [r for r in records if r["seq"] > snapshot["seq"] and r["kind"] == "command"]
    device = restore_device(snapshot, journal, listener)
    device.seq = max(device.seq, last_seq)
    t_checkpoint = device.t_s
    states = [ch.state for ch in device.channels]
    confirmed = [ch.ideal_ml for ch in device.channels]
    # Assume every reservation was delivered: integrate each channel to its end.
    rate = device.total_rate_ml_h
    for ch, data in zip(device.channels, snapshot["channels"], strict=True):
        until = data["reserve_until_s"]
        if until > ch.t_s and ch.rate_ml_h > 0:
            ch.advance(until)
    device.t_s = max([t_checkpoint, *(ch.t_s for ch in device.channels)])
    if device.powered:
        device.battery.advance(device.t_s - t_checkpoint, rate)
    channels = []
    for ch, was, before in zip(device.channels, states, confirmed, strict=True):
        ch.t_s = device.t_s
        channels.append(_apply_recovery_policy(device, ch, was, before))
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


RECOVER_FROM = frozenset(
    {State.RUNNING, State.BOLUS, State.DELAYED, State.KVO, State.PAUSED, State.ALARM}
)


def _apply_recovery_policy(
    device: Device, ch: Channel, was: State, confirmed_ml: float
) -> dict[str, Any]:
    t = device.t_s
    report: dict[str, Any] = {
        "channel": ch.index,
        "state_before": was.value,
        "confirmed_ml": confirmed_ml,
        "assumed_ml": ch.ideal_ml,
    }
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
    if ch.plan is not None and was in RECOVER_FROM:
        ch.board.raise_(Alarm.CRASH_RECOVERED, t, ch.index)
        ch.emit(t, Event.ALARM.value, {"code": Alarm.CRASH_RECOVERED.code, "priority": "high"})
        if was is not State.ALARM:
            ch.state = State.ALARM
            ch.emit(t, "state", {"from": was.value, "to": "alarm", "reason": "recovered"})
    ch._recompute()
    report["state_after"] = ch.state.value
    return report
