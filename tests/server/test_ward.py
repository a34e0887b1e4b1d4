"""The simulated ward: real engine pumps through DERS, each with its own link.

RELIABILITY I3 (every stop or state change is an event that reaches the server), F-15/F-16
and battery faults (alarms happen and are reported), F-10 (the link never changes what a
pump delivers: the same seed gives the same delivery with or without a server).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from pathlib import Path

import httpx
import pytest

from openinfusion.errors import InputError
from openinfusion.security import b64encode, public_bytes
from openinfusion.server.ward.beds import MIX, PROFILES, build_pump, plan_ward
from openinfusion.server.ward.outbox import Outbox
from openinfusion.server.ward.ward import Ward, WardOptions, bearer_token, enrolment_token
from tests.server._receiver import Receiver
from tests.server.test_link import SERVER_KEY


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_passes_ders_and_runs_a_day(name: str) -> None:
    pump = build_pump(name, "SER-1", random.Random(7))
    pump.start()
    pump.advance_to(24 * 3600.0)
    d = pump.device
    assert d.t_s == 24 * 3600.0
    assert sum(ch.pumped_ml for ch in d.channels) > 0
    for ch in d.channels:  # I1: never more than the programme allows
        if ch.plan is not None and ch.plan.vtbi_ml is not None:
            assert ch.program_ml <= ch.plan.vtbi_ml + 1e-9
    body = pump.bedside.status_body()
    json.dumps(body, allow_nan=False)


def test_same_seed_same_ward() -> None:
    def records(seed: int) -> list[tuple[str, float, str]]:
        out = []
        for name, serial, rng in plan_ward(5, seed):
            pump = build_pump(name, serial, rng)
            pump.start()
            pump.advance_to(4 * 3600.0)
            out += [(serial, r.t_s, r.kind) for r in pump.device.records]
        return out

    assert records(3) == records(3)
    assert records(3) != records(4)


def test_plan_ward_mixes_kinds_and_checks_n() -> None:
    names = [name for name, _, _ in plan_ward(10, 1)]
    assert set(names) == set(MIX)
    with pytest.raises(InputError, match="pumps"):
        plan_ward(0, 1)


def test_ward_over_real_sockets_reports_everything(tmp_path: Path) -> None:
    """Every pump connects with its own key, sends status, events and alarms with
    continuous seqs; pump time follows speed × wall time."""

    async def main() -> None:
        receiver = Receiver(SERVER_KEY)
        await receiver.start()
        options = WardOptions(
            server_url=receiver.url,
            data_dir=tmp_path,
            pumps=5,
            speed=3600.0,
            seed=2,
            duration_s=4.0,
            status_every_s=0.5,
            heartbeat_every_s=1.0,
            tick_s=0.1,
        )
        for i, (_, serial, _) in enumerate(plan_ward(5, 2)):
            outbox = Outbox(tmp_path / serial)
            pump_id = f"P-W{i}"
            outbox.pin_server(
                pump_id, b64encode(public_bytes(SERVER_KEY.public_key())), receiver.url
            )
            receiver.add_pump(pump_id, outbox.key.public_key())
            outbox.close()
        try:
            summary = await Ward(options).run()
        finally:
            await receiver.stop()
        assert len(summary["pumps"]) == 5
        alarms = 0
        for p in summary["pumps"]:
            rec = receiver.pumps[p["pump_id"]]
            assert sorted(rec.stored) == list(range(1, max(rec.stored) + 1))
            assert rec.of_type("status"), p
            kinds = {f["body"]["kind"] for f in rec.of_type("event")}
            assert "started" in kinds
            alarms += len(rec.of_type("alarm"))
            # pump time follows speed x wall time (never ahead of it)
            assert 2.5 <= p["pump_time_h"] <= summary["wall_s"] + 0.01, (p, summary["wall_s"])
            assert rec.tampered == 0
        assert alarms > 0

    asyncio.run(main())


def test_credentials_give_enrolment_tokens(tmp_path: Path) -> None:
    creds = tmp_path / "demo-credentials.json"
    creds.write_text(
        json.dumps(
            [
                {"username": "nurse1", "password": "n", "role": "nurse"},
                {"username": "biomed1", "password": "b", "role": "biomed"},
            ]
        )
    )

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/auth/token":
            assert b"username=biomed1" in request.content
            return httpx.Response(200, json={"access_token": "abc", "token_type": "bearer"})
        assert request.headers["authorization"] == "Bearer abc"
        return httpx.Response(201, json={"token": "one-time", "expires_at": "x"})

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            bearer = await bearer_token(client, "http://s", creds)
            assert await enrolment_token(client, "http://s", bearer) == "one-time"
        creds.write_text("[]")
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            with pytest.raises(InputError, match="biomed"):
                await bearer_token(client, "http://s", creds)

    asyncio.run(main())


def test_insulin_bed_closed_loop_keeps_glucose_in_range_and_respects_a_remote_pause() -> None:
    """The closed-loop bed: over a day with three meals the loop keeps plasma glucose out of
    severe hypo- and hyperglycaemia; the pump runs temp basals it decided; a channel paused
    from the central station stays paused (the loop does not resume it)."""
    from openinfusion.pump.channel import State
    from openinfusion.server.ward.insulin_bed import InsulinBed

    bed = build_pump("insulin-aid", "SER-I", random.Random(5))
    assert isinstance(bed, InsulinBed)
    bed.start()
    bgs = []
    for minute in range(15, 24 * 60 + 1, 15):
        bed.advance_to(minute * 60.0)
        bgs.append(float(bed.patient.bg_mg_dl[0]))
    assert min(bgs) > 54.0 and max(bgs) < 300.0, (min(bgs), max(bgs))
    kinds = [r.kind for r in bed.device.records]
    assert "temp_basal_started" in kinds
    assert bed.observation()["cgm_mg_dl"] is not None
    bed.device.pause(0)
    bed.bedside.held.add(0)
    bed.advance_to(bed.device.t_s + 3 * 3600.0)
    assert bed.insulin.channel.state is State.PAUSED


def test_cli_bad_input_exit_2_with_json_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from openinfusion.cli.main import app

    runner = CliRunner()
    result = runner.invoke(
        app, ["ward", "--server", "ftp://x", "--token", "t", "--data-dir", str(tmp_path), "--json"]
    )
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["field"] == "server"
    result = runner.invoke(app, ["ward", "--server", "http://x", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "--credentials" in result.output
    result = runner.invoke(
        app,
        [
            "ward",
            "--server",
            "http://x",
            "--token",
            "t",
            "--pumps",
            "0",
            "--data-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2 and "pumps" in result.output


def test_sedation_bed_patient_follows_what_the_pump_delivered() -> None:
    """The propofol bed's virtual patient (Eleveld PK and BIS) is fed by the engine's own
    delivery: sedated while the pump runs, waking once it is stopped."""
    seed = next(
        s for s in range(20) if build_pump("icu-sedation", "SER-S", random.Random(s)).pk is not None
    )
    bed = build_pump("icu-sedation", "SER-S", random.Random(seed))
    bed.start()
    bed.advance_to(2 * 3600.0)
    running = bed.bedside.status_body()["patient"]
    assert running["model"] == "Eleveld propofol"
    assert running["ce"] > 0.2 and running["bis"] < 95.0
    bed.device.stop(0)
    bed.advance_to(4 * 3600.0)
    stopped = bed.bedside.status_body()["patient"]
    assert stopped["ce"] < running["ce"] / 2 and stopped["bis"] > running["bis"]


def test_f01_ward_pump_recovers_from_its_journal_and_waits_for_the_nurse(
    tmp_path: Path,
) -> None:
    """F-01/I2: a ward pump restarted on its journal comes back stopped with
    crash_recovered, its delivered volume carried over (never reset); nothing restarts
    until the nurse has confirmed, and bedside happenings already past are not redone."""
    from openinfusion.pump.channel import State
    from openinfusion.pump.codes import Alarm

    journal = tmp_path / "journal.db"
    first = build_pump("pca", "SER-J", random.Random(3), journal)
    first.start()
    first.advance_to(3 * 3600.0)
    before = first.device.channels[0].pumped_ml
    demands_before = len(first.device.channels[0].pca_history)
    del first  # the process dies; the journal is what is left
    again = build_pump("pca", "SER-J", random.Random(3), journal)
    again.start()
    ch = again.device.channels[0]
    assert again.device.t_s >= 3 * 3600.0 - 60.0  # back to its last checkpoint (1 min)
    assert ch.state is State.ALARM
    assert again.device.board.is_active(Alarm.CRASH_RECOVERED, 0)
    assert ch.pumped_ml >= before
    assert len(ch.pca_history) <= demands_before  # no burst of past demands
    again.advance_to(again.device.t_s + 60.0)
    assert ch.state is State.ALARM  # the nurse is not there yet
    again.advance_to(again.device.t_s + 600.0)
    assert ch.state is State.RUNNING


def test_f01_processes_mode_restarts_a_killed_pump_process(tmp_path: Path) -> None:
    """A pump process that dies by SIGKILL is started again; one that ends normally (0) or
    on bad input (2) is not."""
    from openinfusion.server.ward.ward import run_processes

    script = (
        "import os, sys, pathlib\n"
        "p = pathlib.Path(sys.argv[1]); runs = int(p.read_text() or 0) + 1 if p.exists() else 1\n"
        "p.write_text(str(runs))\n"
        "if sys.argv[2] == 'kill-once' and runs == 1: os.kill(os.getpid(), 9)\n"
        "sys.exit(2 if sys.argv[2] == 'bad' else 0)\n"
    )
    plans = ["kill-once", "bad", "ok"]

    def argv_for(index: int, left: float | None) -> list[str]:
        return ["-c", script, str(tmp_path / f"runs{index}"), plans[index]]

    options = WardOptions(server_url="http://x", data_dir=tmp_path, pumps=3, duration_s=30.0)
    result = asyncio.run(run_processes(options, argv_for))
    assert result["restarts"] == [1, 0, 0]
    assert result["exit_code"] == 2
    assert [(tmp_path / f"runs{i}").read_text() for i in range(3)] == ["2", "1", "1"]


def test_pca_bed_patient_presses_when_in_pain_and_lockout_holds() -> None:
    """The PCA bed's patient presses while in pain (the trials' pain model on Sarton
    morphine PK); the pump grants no two doses within the 10-min lockout."""
    bed = build_pump("pca", "SER-P", random.Random(1))
    bed.start()
    bed.advance_to(6 * 3600.0)
    ch = bed.device.channels[0]
    granted = [r.t_s for r in ch.pca_history if r.granted]
    assert len(ch.pca_history) >= 3 and granted
    assert all(b - a >= 600.0 - 1e-6 for a, b in itertools.pairwise(granted))
    patient = bed.bedside.status_body()["patient"]
    assert patient["model"] == "Sarton morphine" and 0.0 <= patient["pain_nrs"] <= 10.0
    assert patient["ce"] > 0.0


def test_ambulatory_5fu_reports_what_is_left_of_its_46_h_dose() -> None:
    """The 46-h 5-FU programme is an intermittent dose (no VTBI): its status still says how
    much of the dose and how much time are left, and both go down as it runs."""
    pump = build_pump("oncology-5fu", "SER-O", random.Random(2))
    pump.start()
    seen = []
    for hours in (10.0, 20.0):
        pump.advance_to(hours * 3600.0)
        ch = pump.bedside.status_body()["channels"][0]
        dose_ml = ch["vtbi_ml"]
        assert dose_ml is not None and dose_ml > 0
        left = ch["vtbi_remaining_ml"]
        assert 0.0 <= left < dose_ml
        assert left == pytest.approx(dose_ml - pump.device.channels[0].step_ml)
        if ch["state"] == "running" and ch["rate_ml_h"] > 0:
            assert ch["time_remaining_min"] == pytest.approx(left / ch["rate_ml_h"] * 60.0)
        seen.append(left)
    assert seen[1] < seen[0]
