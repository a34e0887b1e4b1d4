"""Kill -9 loop on a real pump process (RELIABILITY F-01, F-25; the SQLite crash-test pattern).

``_crash_worker.py`` runs a scripted infusion (heparin loading dose, maintenance, clinician
boluses and titrations; PCA morphine loading dose, basal and patient demands) on a device
journaled in SQLite. Each worker is SIGKILLed after a random delay; the journal is then
checked and recovered, with the Python API or ``openinfusion pump recover --json``. Half
of the journals are then resumed by a second worker (recover, confirm, resume, carry on)
that is killed too, and recovered again (a crash after a crash, F-25).

After every kill:

- the journal passes SQLite's integrity check, every record its CRC, the sequence numbers
  are contiguous, and the records are an exact prefix of an uninterrupted run's (atomic,
  deterministic commits: nothing lost, nothing invented);
- every channel with an unfinished program comes back stopped (ALARM, ``crash_recovered``),
  never delivering by itself, with no bolus in progress;
- the volume recovery assumes is at least what the process had surely displaced;
- delivered stays within the VTBI; the loading dose is never started twice and no bolus is
  started again after a restart;
- after the clinician confirms and resumes, the channel delivers its maintenance rate only.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from openinfusion.pump.channel import State
from openinfusion.pump.codes import Alarm
from openinfusion.pump.device import Device
from openinfusion.pump.journal import SqliteJournal, recover
from openinfusion.pump.plan import StepKind

sys.path.insert(0, str(Path(__file__).parent))
import _crash_worker as worker

WORKER = Path(__file__).with_name("_crash_worker.py")
KILLS = 20
BATCH = 5
SEED = 20260301
# States a channel may come back in without an alarm: never started, or finished.
NOT_STARTED_OR_DONE = (State.IDLE, State.PROGRAMMING, State.STANDBY, State.COMPLETE)


def spawn(journal: Path, mode: str, out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with out.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, str(WORKER), str(journal), mode, "0.002"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )


def run_and_kill(jobs: list[tuple[Path, str, float]], tmp: Path) -> list[list[str]]:
    """Start the workers together, SIGKILL each ``delay`` s after it is READY."""
    procs = []
    for i, (journal, mode, delay) in enumerate(jobs):
        out = tmp / f"{journal.stem}-{mode}-{i}.out"
        procs.append((spawn(journal, mode, out), out, delay))
    ready: dict[int, float] = {}
    done: set[int] = set()
    deadline = time.monotonic() + 60.0
    while len(done) < len(procs):
        assert time.monotonic() < deadline, "a worker never became ready"
        for i, (proc, out, delay) in enumerate(procs):
            if i in done:
                continue
            if i not in ready and b"READY" in out.read_bytes():
                ready[i] = time.monotonic()
            if proc.poll() is not None:
                done.add(i)
            elif i in ready and time.monotonic() - ready[i] >= delay:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                done.add(i)
        time.sleep(0.002)
    return [out.read_text().splitlines() for _, out, _ in procs]


def last_displacement(lines: list[str]) -> list[float] | None:
    """What the worker had surely displaced when it died (its last complete line)."""
    for line in reversed(lines):
        parts = line.split()
        if len(parts) == 3 and all(p[0].isdigit() for p in parts):
            return [float(p) for p in parts[1:]]
    return None


def journal_records(path: Path) -> list[dict[str, Any]]:
    journal = SqliteJournal(path)
    try:
        assert journal.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return journal.records()  # every CRC checked
    finally:
        journal.close()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The same script, never interrupted: the records every crashed journal must prefix."""
    path = tmp_path_factory.mktemp("reference") / "journal.db"
    worker.main(str(path), "start", 0.0)
    return journal_records(path)


def check_journal(path: Path, reference: list[dict[str, Any]], first_run: bool) -> None:
    records = journal_records(path)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    if first_run:
        assert records == reference[: len(records)], "the journal is not a prefix of the run"
    started = {r["data"]["channel"] for r in records if r["kind"] == "started"}
    loading = Counter(
        r["data"]["channel"]
        for r in records
        if r["kind"] == "step_started" and r["data"]["kind"] == "loading"
    )
    assert loading == dict.fromkeys(started, 1), f"loading doses started: {loading}"
    bolus_ids = Counter(
        (r["data"]["channel"], r["data"]["id"]) for r in records if r["kind"] == "bolus_started"
    )
    assert all(n == 1 for n in bolus_ids.values()), "a bolus was started again"
    if len(records) > 40:
        assert bolus_ids, "the script's boluses and demands are missing"


def check_recovered(device: Device, displaced: list[float] | None, report: dict[str, Any]) -> None:
    for ch, info in zip(device.channels, report["channels"], strict=True):
        assert ch.rate_ml_h == 0.0
        assert not [o for o in ch.overlays if o.adds], "a bolus survived the restart"
        assert info["assumed_ml"] >= info["confirmed_ml"]
        if displaced is not None:
            assert info["assumed_ml"] >= displaced[ch.index] - 1e-9, (
                f"channel {ch.index}: recovery assumes {info['assumed_ml']} mL but "
                f"{displaced[ch.index]} mL had been displaced"
            )
        if ch.plan is None or ch.state in NOT_STARTED_OR_DONE:
            continue  # killed before the start, or after the end: nothing to resume
        assert ch.state is State.ALARM, f"channel {ch.index} came back {ch.state.value}"
        assert ch.board.is_active(Alarm.CRASH_RECOVERED, ch.index)
        assert ch.plan.steps[ch.step_i].kind is not StepKind.LOADING
        if ch.plan.vtbi_ml is not None:
            assert ch.program_ml <= ch.plan.vtbi_ml * (1 + 1e-9)
        parts = ch.patient_ml + ch.lost_ml + ch.stored_ml + ch.withdrawn_ml + ch.slack_taken_ml
        assert ch.ideal_ml == pytest.approx(parts, rel=1e-9, abs=1e-9)


def check_no_restart_then_resume(device: Device) -> None:
    """Never delivering by itself; after confirmation, the maintenance rate only."""
    before = [ch.ideal_ml for ch in device.channels]
    device.advance_to(device.t_s + 3600.0)
    assert [ch.ideal_ml for ch in device.channels] == before, "delivery restarted by itself"
    for ch in device.channels:
        if ch.state is not State.ALARM:
            continue
        device.confirm_recovery(ch.index)
        assert ch.state is State.PAUSED
        step = ch.plan.steps[ch.step_i] if ch.plan else None
        if (
            step is None
            or step.kind is not StepKind.CONTINUOUS
            or device.board.any_stopping(ch.index)
        ):
            continue
        try:
            device.resume(ch.index)
        except Exception:  # dose limit reached: resuming is refused, nothing delivered
            continue
        program, t0 = ch.program_ml, device.t_s
        device.advance_to(t0 + 600.0)
        if ch.state is State.RUNNING and ch.plan is not None:
            expected = ch.plan.steps[ch.step_i].rate_ml_h * 600.0 / 3600.0
            assert ch.program_ml - program == pytest.approx(expected, rel=1e-9, abs=1e-9)


def recover_cli(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from openinfusion.cli.main import run; run()",
            "pump",
            "recover",
            str(path),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_kill_minus_nine_at_random_points(tmp_path: Path, reference: list[dict[str, Any]]) -> None:
    """F-01 and F-25: SIGKILL the pump process at 20 random points, recover, check; resume
    half of them, kill again and recover again."""
    rng = random.Random(SEED)
    early = [rng.uniform(0.0, 0.15) for _ in range(4)]  # during the loading doses
    delays = sorted(early + [rng.uniform(0.0, 2.8) for _ in range(KILLS - len(early))])
    journals = [tmp_path / f"j{i:02d}.db" for i in range(KILLS)]
    lines: list[list[str]] = []
    for start in range(0, KILLS, BATCH):
        batch = [(journals[i], "start", delays[i]) for i in range(start, start + BATCH)]
        lines += run_and_kill(batch, tmp_path)
    recovered = 0
    for i, (path, out) in enumerate(zip(journals, lines, strict=True)):
        if not path.exists() or not journal_records(path):
            continue  # killed before anything was journaled: nothing to recover
        check_journal(path, reference, first_run=True)
        if i % 7 == 3:  # the command line, as a nurse or a service tool would run it
            report = recover_cli(path)
            for ch in report["status"]["channels"]:
                assert ch["rate_ml_h"] == 0.0
                if ch["therapy"] is not None and ch["state"] not in NOT_STARTED_OR_DONE:
                    assert ch["state"] == "alarm"
            assert any(a["code"] == "crash_recovered" for a in report["status"]["alarms"]) or all(
                ch["state"] in NOT_STARTED_OR_DONE for ch in report["status"]["channels"]
            )
            continue
        result = recover(path)
        check_recovered(result.device, last_displacement(out), result.as_dict())
        check_journal(path, reference, first_run=False)
        recovered += 1
        result.device.journal.close()  # type: ignore[union-attr]
    assert recovered >= KILLS // 2

    # A crash after a crash: resume half of the journals, kill again, recover again.
    resumable = [p for p in journals[::2] if p.exists() and journal_records(p)]
    again_delays = [rng.uniform(0.0, 1.5) for _ in resumable]
    again = run_and_kill(
        [(p, "resume", d) for p, d in zip(resumable, again_delays, strict=True)], tmp_path
    )
    for path, out in zip(resumable, again, strict=True):
        check_journal(path, reference, first_run=False)
        result = recover(path)
        check_recovered(result.device, last_displacement(out), result.as_dict())
        check_no_restart_then_resume(result.device)
        check_journal(path, reference, first_run=False)
        result.device.journal.close()  # type: ignore[union-attr]
