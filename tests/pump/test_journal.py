"""The pump journal: torn writes, corruption, restore from a checkpoint and recovery rules.

RELIABILITY F-01 (rebuild from the durable ledger), F-03 (a torn tail loses at most the
last transaction, never part of one), F-07 (corruption detected by CRC, rejected with a
clear error), F-25 (recovering a recovery).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from openinfusion.errors import InputError
from openinfusion.pump.channel import CommandRejected, State
from openinfusion.pump.codes import Alarm
from openinfusion.pump.device import Device, Record
from openinfusion.pump.journal import (
    SqliteJournal,
    device_snapshot,
    recover,
    recover_from,
    restore_device,
)
from openinfusion.pump.mechanics import lvp, pca_pump, syringe
from openinfusion.pump.plan import (
    DrugInfo,
    Envelope,
    OverlayKind,
    PcaSettings,
    Plan,
    Step,
    StepKind,
)

MORPHINE = DrugInfo("morphine", 1.0, "mg")


def pca_plan() -> Plan:
    return Plan(
        "pca",
        [Step(StepKind.LOADING, 150.0, volume_ml=2.0), Step(StepKind.CONTINUOUS, 1.0)],
        kvo_at_end=False,
        drug=MORPHINE,
        envelope=Envelope(max_rate_ml_h=4.0, max_bolus_ml=3.0),
        pca=PcaSettings(demand_ml=1.0, lockout_s=600.0, limits=((3600.0, 5.0),)),
    )


def fluid_plan() -> Plan:
    return Plan("continuous", [Step(StepKind.CONTINUOUS, 60.0)], vtbi_ml=50.0)


def script(device: Device, upto: int | None = None, start: int = 0) -> None:
    """A short day on a two-channel pump, as numbered steps (so it can be cut and resumed)."""
    steps = [
        lambda: device.program(0, pca_plan()),
        lambda: device.program(1, fluid_plan()),
        lambda: device.start(0),
        lambda: device.start(1),
        lambda: device.advance_to(30.0),
        lambda: device.demand(0),
        lambda: device.advance_to(400.0),
        lambda: device.demand(0),  # lockout
        lambda: device.inject(1, "occlusion"),
        lambda: device.advance_to(1200.0),
        lambda: device.inject(1, "clear_occlusion"),
        lambda: device.acknowledge(1, Alarm.OCCLUSION_DOWNSTREAM),
        lambda: device.resume(1),
        lambda: device.demand(0),
        lambda: device.bolus(1, 5.0, 300.0),
        lambda: device.advance_to(1230.0),
        lambda: device.silence(0, Alarm.RESERVOIR_LOW),
        lambda: device.advance_to(5400.0),
        lambda: device.demand(0),
        lambda: device.advance_to(9000.0),
    ]
    for step in steps[start:upto]:
        with contextlib.suppress(CommandRejected):
            step()


def run_journaled(path: Path) -> tuple[Device, SqliteJournal]:
    journal = SqliteJournal(path)
    device = Device([pca_pump(), lvp()], journal=journal, checkpoint_s=60.0)
    script(device)
    return device, journal


# ---- torn writes -------------------------------------------------------------------------------


def crash_copy(src: Path, dst: Path, cut_bytes: int) -> Path:
    """The files as a crash would leave them: database and WAL, the WAL's tail torn."""
    dst.mkdir()
    shutil.copy(src, dst / src.name)
    wal = src.with_name(src.name + "-wal")
    shutil.copy(wal, dst / wal.name)
    size = os.path.getsize(dst / wal.name)
    os.truncate(dst / wal.name, max(0, size - cut_bytes))
    return dst / src.name


@pytest.mark.parametrize("cut", [1, 24, 1000, 4096, 4120, 4121, 9000, 20000, 60000])
def test_torn_last_record_loses_the_last_transaction_only(tmp_path: Path, cut: int) -> None:
    """F-03: a write torn at any byte leaves a valid journal that is a prefix of the full
    one: whole transactions survive or vanish, a record is never half there."""
    _device, journal = run_journaled(tmp_path / "journal.db")
    full = journal.records()  # the live connection keeps the WAL (not checkpointed)
    torn = crash_copy(tmp_path / "journal.db", tmp_path / f"crash{cut}", cut)
    survived = SqliteJournal(torn).records()
    assert 0 < len(survived) <= len(full)
    assert survived == full[: len(survived)]
    result = recover(torn)
    assert result.checkpoint_seq <= result.last_seq == survived[-1]["seq"]
    # commands journaled after the checkpoint did not take effect: reported, not applied
    assert all(c["seq"] > result.checkpoint_seq for c in result.uncertain_commands)
    for ch in result.device.channels:
        assert ch.rate_ml_h == 0.0
    journal.close()


# ---- corruption ----------------------------------------------------------------------------------


def test_crc_mismatch_in_a_record_is_a_clear_error(tmp_path: Path) -> None:
    """F-07: a record altered on disk fails its CRC; recovery refuses, naming the record."""
    path = tmp_path / "journal.db"
    _, journal = run_journaled(path)
    journal.close()
    conn = sqlite3.connect(path)
    seq, text = conn.execute("SELECT seq, body FROM records WHERE kind = 'pca_granted'").fetchone()
    conn.execute("UPDATE records SET body = ? WHERE seq = ?", (text.replace("1.0", "9.0"), seq))
    conn.commit()
    conn.close()
    with pytest.raises(InputError, match=rf"record {seq}.*failed its CRC check"):
        recover(path)


def test_crc_mismatch_in_the_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    _, journal = run_journaled(path)
    journal.close()
    conn = sqlite3.connect(path)
    conn.execute(
        "UPDATE checkpoint SET body = replace(body, '\"program_ml\":', '\"program_ml\": ')"
    )
    conn.commit()
    conn.close()
    with pytest.raises(InputError, match=r"checkpoint.*failed its CRC check"):
        recover(path)


def test_crc_mismatch_through_the_cli_exits_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    _, journal = run_journaled(path)
    journal.close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE records SET crc = crc + 1 WHERE seq = 3")
    conn.commit()
    conn.close()
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from openinfusion.cli.main import run; run()",
            "pump",
            "recover",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert "record 3" in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr


def test_missing_record_breaks_the_sequence(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    _, journal = run_journaled(path)
    journal.close()
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM records WHERE seq = 10")
    conn.commit()
    conn.close()
    with pytest.raises(InputError, match=r"record 11.*breaks the sequence"):
        recover(path)


def test_not_a_journal(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(8192))
    with pytest.raises(InputError, match="not a pump journal"):
        recover(junk)
    with pytest.raises(InputError, match="does not exist"):
        recover(tmp_path / "missing.db")
    empty = tmp_path / "empty.db"
    SqliteJournal(empty).close()
    with pytest.raises(InputError, match="no checkpoint"):
        recover(empty)


def test_unknown_snapshot_version_is_refused(tmp_path: Path) -> None:
    device, journal = run_journaled(tmp_path / "journal.db")
    snapshot = json.loads(json.dumps(device.snapshot()))
    snapshot["version"] = 99
    with pytest.raises(InputError, match="unknown snapshot version"):
        restore_device(snapshot)
    journal.close()


# ---- restore and replay ---------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [3, 5, 9, 12, 15, 18])
def test_checkpoint_restore_equals_replay(tmp_path: Path, cut: int) -> None:
    """A device restored from the checkpoint of step ``cut`` and given the rest of the
    script writes exactly the records of the uninterrupted run, and ends identical."""
    full, full_journal = run_journaled(tmp_path / "full.db")
    part_journal = SqliteJournal(tmp_path / "part.db")
    part = Device([pca_pump(), lvp()], journal=part_journal, checkpoint_s=60.0)
    script(part, upto=cut)
    snapshot = part_journal.checkpoint()
    assert snapshot is not None and snapshot["seq"] == part.seq
    restored = restore_device(snapshot, SqliteJournal(tmp_path / "rest.db"))
    restored.advance_to(part.t_s)  # the checkpoint is the last commit: replay to the cut
    script(restored, start=cut)
    tail = [r for r in full.records if r.seq > snapshot["seq"]]
    assert restored.records == tail
    assert device_snapshot(restored) == device_snapshot(full)
    full_journal.close()
    part_journal.close()


def test_snapshot_round_trips_through_json(tmp_path: Path) -> None:
    device, journal = run_journaled(tmp_path / "journal.db")
    snap = json.loads(json.dumps(device.snapshot()))
    again = device_snapshot(restore_device(snap, Sink()))
    assert json.loads(json.dumps(again)) == snap
    journal.close()


# ---- recovery rules ------------------------------------------------------------------------------


class Sink:
    """An in-memory journal (same records and checkpoint as SqliteJournal)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.snapshot: dict[str, Any] | None = None
        self.commits = 0

    def command(self, record: Record) -> None:
        self.rows.append(json.loads(json.dumps(record.as_dict())))

    def commit(self, records: Any, snapshot: dict[str, Any] | None) -> None:
        for r in records:
            self.command(r)
        self.commits += 1
        self.snapshot = json.loads(json.dumps(snapshot))


def test_a_due_event_commits_even_when_nothing_happens() -> None:
    """The reservation ends at the channel's next event. If that event turns out to need
    nothing (an early, conservative estimate), the device still commits there, so no
    delivery ever runs past what the journal reserved (F-01, F-03)."""
    sink = Sink()
    device = Device([lvp()], journal=sink, checkpoint_s=3600.0)
    ch = device.channels[0]
    real = ch.next_event_s
    ch.next_event_s = lambda: min(real(), ch.t_s + 7.0)  # type: ignore[method-assign]
    device.program(0, fluid_plan())
    device.start(0)
    reserved = sink.snapshot["channels"][0]["reserve_ml"]  # type: ignore[index]
    for t in range(1, 200):
        device.advance_to(float(t))
        assert ch.ideal_ml <= reserved + 1e-12
        reserved = sink.snapshot["channels"][0]["reserve_ml"]  # type: ignore[index]
    assert sink.commits > 200 / 7


def test_recovery_never_restarts_and_is_idempotent(tmp_path: Path) -> None:
    """F-01 / F-25: the recovered pump waits for the clinician; recovering it again (a
    crash right after recovery) changes nothing and raises nothing twice."""
    path = tmp_path / "journal.db"
    journal = SqliteJournal(path)
    device = Device([pca_pump(), lvp()], journal=journal)
    script(device, upto=7)
    journal.close()
    first = recover(path)
    state = [ch.status() for ch in first.device.channels]
    assert [ch.state for ch in first.device.channels] == [State.ALARM, State.ALARM]
    first.device.advance_to(first.device.t_s + 3600.0)
    assert [ch.status() for ch in first.device.channels] == state  # nothing delivered
    first.device.journal.close()  # type: ignore[union-attr]
    second = recover(path)
    assert [ch.status() for ch in second.device.channels] == state
    alarms = [r for r in second.device.records if r.kind == "alarm"]
    assert all(r.data["code"] == "crash_recovered" for r in alarms)
    records = SqliteJournal(path).records()
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))


def test_recovery_cancels_bolus_and_skips_loading() -> None:
    """No re-delivered loading dose, no resumed bolus (F-01, Medfusion 're-administered
    loading dose'); the assumed volume counts in the VTBI and the dose windows."""
    sink = Sink()
    device = Device([syringe(50), lvp()], journal=sink)
    device.program(0, pca_plan())
    device.start(0)
    device.advance_to(10.0)
    device.demand(0)
    device.advance_to(12.0)  # loading dose and a demand running
    result = recover_from(sink.snapshot, sink.rows, None)  # type: ignore[arg-type]
    ch = result.device.channels[0]
    assert result.channels[0]["bolus_cancelled"] == 1
    assert result.channels[0]["loading_skipped"] is True
    assert ch.loading_given and ch.plan is not None
    assert ch.plan.steps[ch.step_i].kind is StepKind.CONTINUOUS
    assert not [o for o in ch.overlays if o.kind is OverlayKind.PCA]
    assert ch.state is State.ALARM and ch.rate_ml_h == 0.0
    # the assumed volume is in the PCA window: no demand beyond the 1-hour limit
    assumed = result.channels[0]["assumed_ml"]
    assert ch.ledger.amount("morphine [mg]", result.device.t_s, 3600.0) == pytest.approx(
        assumed - ch.slack_ml * 0 - 0.0, rel=1e-9
    )
    result.device.confirm_recovery(0)
    result.device.resume(0)
    before = ch.program_ml
    result.device.advance_to(result.device.t_s + 3600.0)
    assert ch.program_ml - before == pytest.approx(1.0 * (3600.0 - 0.0) / 3600.0, rel=1e-6) or (
        ch.state is State.PAUSED  # stopped by the 1-hour limit
    )
    assert (
        sum(r.data.get("step") == 0 for r in result.device.records if r.kind == "step_started") == 0
    )


def test_crash_between_programming_and_start() -> None:
    """Killed after the program was entered but before START: it comes back programmed,
    not started, and starts only when the clinician presses START."""
    sink = Sink()
    device = Device([lvp()], journal=sink)
    device.program(0, fluid_plan())
    result = recover_from(sink.snapshot, sink.rows, None)  # type: ignore[arg-type]
    ch = result.device.channels[0]
    assert ch.state is State.PROGRAMMING and ch.rate_ml_h == 0.0
    result.device.advance_to(600.0)
    assert ch.ideal_ml == 0.0
    result.device.start(0)
    assert ch.state is State.RUNNING


def test_uncertain_command_is_reported_not_applied(tmp_path: Path) -> None:
    """A command journaled before it took effect, then a crash: it is reported as
    uncertain and the pump does not apply it by itself."""
    path = tmp_path / "journal.db"
    journal = SqliteJournal(path)
    device = Device([lvp()], journal=journal)
    device.program(0, fluid_plan())
    device.start(0)
    device.advance_to(60.0)
    device.seq += 1
    args = {"command": "bolus", "channel": 0, "volume_ml": 1.0, "rate_ml_h": 100.0, "kind": "bolus"}
    journal.command(Record(device.seq, device.t_s, "command", args))
    journal.close()  # the process died before the bolus started
    result = recover(path)
    assert [c["data"]["command"] for c in result.uncertain_commands] == ["bolus"]
    assert not result.device.channels[0].overlays
