"""The pump link against a minimal gateway over a real loopback WebSocket.

RELIABILITY rows: C-07 (replay), C-09 (handshake forging), C-17/B-04 (remote program only
pre-populated), C-18/C-26 (pump DERS and hard limits whatever the server sends), C-24
(library only between infusions), C-25 (freshness on the monotonic clock), F-10 (fail-
operational when the server goes away).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openinfusion.errors import InputError
from openinfusion.library import sample_library, sign_library
from openinfusion.pump.channel import State
from openinfusion.pump.codes import Alarm
from openinfusion.security import b64encode, generate_private_key, public_bytes
from openinfusion.security.envelope import build_command
from openinfusion.server.ward.link import PumpLink, enrol, ws_url
from openinfusion.server.ward.outbox import Outbox
from openinfusion.server.ward.pumps import Profile, ScenarioPump, SimPump
from tests.server._receiver import Receiver

SERVER_KEY = generate_private_key()
PHARMACIST = generate_private_key()
#: Tests that provoke an ERROR log on purpose; any other ERROR from the link fails a test
#: (the log-hygiene gate of RELIABILITY's standing programme 8).
EXPECTS_ERRORS = {"test_c18_a_fault_applying_a_command_is_answered_and_the_link_goes_on"}


@pytest.fixture(autouse=True)
def _no_unexpected_errors(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    caplog.set_level("WARNING", logger="openinfusion")
    yield
    if request.node.originalname in EXPECTS_ERRORS:
        return
    errors = [
        r.getMessage() for r in caplog.records
        if r.levelno >= 40 and r.name.startswith("openinfusion")
    ]  # fmt: skip
    assert not errors, errors


def _norepinephrine(rng: random.Random) -> dict[str, Any]:
    return {
        "care_area": "Adult ICU",
        "patient": {"weight": "80 kg"},
        "pump": {"kind": "syringe", "syringe_ml": 50},
        "duration": "72 h",
        "program": {
            "therapy": "continuous",
            "drug": "norepinephrine",
            "concentration": "16 mg/250 mL",
            "dose": "0.1 mcg/kg/min",
        },
    }


PROFILE = Profile("test", "syringe", "OI-Syringe 50", _norepinephrine)
RATE_ML_H = 0.1 * 80 * 60 / 1000 / (16 / 250)  # 0.1 mcg/kg/min at 64 mcg/mL = 7.5 mL/h


class Clocks:
    def __init__(self) -> None:
        self.mono_offset = 0.0
        self.wall_offset = timedelta(0)

    def monotonic(self) -> float:
        import time

        return time.monotonic() + self.mono_offset

    def wall(self) -> datetime:
        return datetime.now(UTC) + self.wall_offset


def _pump(
    tmp: Path, receiver: Receiver, pump_id: str = "P-0001", **link_args: Any
) -> tuple[SimPump, Outbox, PumpLink, Clocks]:
    pump = ScenarioPump(PROFILE, "SER-" + pump_id, random.Random(1))
    outbox = Outbox(tmp / pump_id)
    if outbox.enrolment() is None:
        outbox.pin_server(pump_id, b64encode(public_bytes(SERVER_KEY.public_key())), receiver.url)
    if pump_id not in receiver.pumps:
        receiver.add_pump(pump_id, outbox.key.public_key())
    clocks = Clocks()
    args: dict[str, Any] = {
        "status_every_s": 0.2,
        "heartbeat_every_s": 0.3,
        "no_comm_after_s": 0.5,
        "backoff_min_s": 0.05,
        "backoff_max_s": 0.2,
        "monotonic": clocks.monotonic,
        "wall": clocks.wall,
        "seed": 1,
    }
    args.update(link_args)
    link = PumpLink(pump.bedside, outbox, **args)
    pump.start()
    return pump, outbox, link, clocks


def _run(body: Callable[[Receiver], Awaitable[None]]) -> None:
    async def main() -> None:
        receiver = Receiver(SERVER_KEY)
        await receiver.start()
        try:
            await asyncio.wait_for(body(receiver), 30)
        finally:
            await receiver.stop()

    asyncio.run(main())


@contextlib.asynccontextmanager
async def _running(link: PumpLink) -> Any:
    stop = asyncio.Event()
    task = asyncio.create_task(link.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await task


def _results(receiver: Receiver, pump_id: str = "P-0001") -> list[dict[str, Any]]:
    return [f["body"] for f in receiver.pumps[pump_id].of_type("command_result")]


def _cmd(action: str, params: dict[str, Any] | None = None, **over: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "pump_id": "P-0001",
        "channel": 1,
        "action": action,
        "params": params or {},
        "issued_by": "nurse.ana",
        "issued_at": datetime.now(UTC),
        "ttl_s": 30.0,
    }
    args.update(over)
    return build_command(SERVER_KEY, **args)


async def _result_for(receiver: Receiver, command_id: str) -> dict[str, Any]:
    def found() -> bool:
        return any(r["command_id"] == command_id for r in _results(receiver))

    await receiver.wait_for(found)
    return next(r for r in _results(receiver) if r["command_id"] == command_id)


def test_session_status_heartbeat_events_and_acks(tmp_path: Path) -> None:
    async def body(receiver: Receiver) -> None:
        pump, outbox, link, _ = _pump(tmp_path, receiver)
        async with _running(link):
            await receiver.wait_for(
                lambda: (
                    len(receiver.pumps["P-0001"].of_type("heartbeat")) >= 2
                    and len(receiver.pumps["P-0001"].of_type("status")) >= 2
                )
            )
            pump.advance_to(600.0)
            top = outbox.next_seq - 1
            await receiver.wait_for(lambda: outbox.acked_seq >= top and link.connected)
        rec = receiver.pumps["P-0001"]
        assert sorted(rec.stored) == list(range(1, rec.contiguous + 1))
        events = [f["body"]["kind"] for f in rec.of_type("event")]
        assert "programmed" in events and "started" in events
        status = rec.of_type("status")[-1]["body"]
        ch = status["channels"][0]
        assert ch["drug"] == "norepinephrine" and ch["channel"] == 1
        assert ch["rate_ml_h"] == pytest.approx(RATE_ML_H)
        assert ch["dose"] == pytest.approx(0.1) and ch["dose_unit"] == "mcg/kg/min"
        assert rec.tampered == 0

    _run(body)


def test_c09_pump_refuses_a_server_with_another_key(tmp_path: Path) -> None:
    """C-09/C-08: a gateway signing with a key other than the pinned one gets no session."""

    async def body(receiver: Receiver) -> None:
        pump, outbox, link, _ = _pump(tmp_path, receiver)
        receiver.server_key = generate_private_key()  # an impostor at the same address
        async with _running(link):
            await asyncio.sleep(1.0)
            assert not link.connected
            assert link.stats["failures"] >= 2
            assert pump.device.board.condition(Alarm.NO_COMMUNICATION)
        assert receiver.pumps["P-0001"].stored == {}
        assert outbox.pending_count() > 0  # kept for the real server

    _run(body)


def test_commands_pause_titrate_and_hard_limit(tmp_path: Path) -> None:
    """C-18/C-26: titrate is re-checked by the pump's DERS; a dose above the hard limit is
    refused whatever the server signs; pause acts at once."""

    async def body(receiver: Receiver) -> None:
        pump, _, link, _ = _pump(tmp_path, receiver)
        async with _running(link):
            await receiver.wait_for(lambda: link.connected and "P-0001" in receiver.connections)
            up = _cmd("titrate", {"dose": 0.2, "dose_unit": "mcg/kg/min"})
            await receiver.send("P-0001", up)
            result = await _result_for(receiver, up["command_id"])
            assert result["outcome"] == "accepted", result
            assert pump.device.channels[0].rate_ml_h == pytest.approx(2 * RATE_ML_H)
            crazy = _cmd("titrate", {"dose": 50, "dose_unit": "mcg/kg/min"})
            await receiver.send("P-0001", crazy)
            result = await _result_for(receiver, crazy["command_id"])
            assert result["outcome"] == "rejected" and "hard" in result["reason"], result
            assert pump.device.channels[0].rate_ml_h == pytest.approx(2 * RATE_ML_H)
            pause = _cmd("pause")
            await receiver.send("P-0001", pause)
            assert (await _result_for(receiver, pause["command_id"]))["outcome"] == "accepted"
            assert pump.device.channels[0].state is State.PAUSED
            other_channel = _cmd("stop", channel=3)
            await receiver.send("P-0001", other_channel)
            result = await _result_for(receiver, other_channel["command_id"])
            assert result["outcome"] == "rejected" and "channel 3" in result["reason"]

    _run(body)


def test_c07_replay_refused_immediately_after_restart_and_to_another_pump(
    tmp_path: Path,
) -> None:
    """C-07: a captured command replayed at once, after the pump process restarts (same
    outbox database) and to another pump is refused every time."""

    async def body(receiver: Receiver) -> None:
        pump, outbox, link, _ = _pump(tmp_path, receiver)
        other, _, other_link, _ = _pump(tmp_path, receiver, "P-0002")
        pause = _cmd("pause")
        async with _running(link), _running(other_link):
            await receiver.wait_for(lambda: len(receiver.connections) == 2)
            await receiver.send("P-0001", pause)
            assert (await _result_for(receiver, pause["command_id"]))["outcome"] == "accepted"
            pump.device.resume(0)
            await receiver.send("P-0001", pause)  # replayed at once
            await receiver.wait_for(lambda: len(_results(receiver)) >= 2)
            await receiver.send("P-0002", pause)  # replayed to another pump
            await receiver.wait_for(lambda: len(_results(receiver, "P-0002")) >= 1)
        outbox.close()
        # the pump process restarts: a new link on the same data directory
        pump2, _, link2, _ = _pump(tmp_path, receiver)
        async with _running(link2):
            await receiver.wait_for(lambda: "P-0001" in receiver.connections)
            await receiver.send("P-0001", pause)
            await receiver.wait_for(lambda: len(_results(receiver)) >= 3)
        results = _results(receiver)
        assert [r["outcome"] for r in results] == ["accepted", "rejected", "rejected"]
        assert all("replay" in r["reason"] for r in results[1:])
        assert pump.device.channels[0].state is State.RUNNING
        assert pump2.device.channels[0].state is State.RUNNING
        (to_other,) = _results(receiver, "P-0002")
        assert to_other["outcome"] == "rejected" and "not this pump" in to_other["reason"]
        assert other.device.channels[0].state is State.RUNNING

    _run(body)


def test_c17_remote_program_only_prepopulated_and_c25_expires_on_monotonic_clock(
    tmp_path: Path,
) -> None:
    """C-17/B-04: a remote program waits for the bedside; C-25: once its life is over on
    the pump's monotonic clock it cannot be confirmed, even with the wall clock set back."""

    async def body(receiver: Receiver) -> None:
        pump, _, link, clocks = _pump(tmp_path, receiver)
        async with _running(link):
            await receiver.wait_for(lambda: "P-0001" in receiver.connections)
            stop = _cmd("stop")
            await receiver.send("P-0001", stop)
            await _result_for(receiver, stop["command_id"])
            program = {
                "drug": "norepinephrine",
                "concentration": "16 mg/250 mL",
                "dose": "0.05 mcg/kg/min",
            }
            first = _cmd("program", program)
            await receiver.send("P-0001", first)
            result = await _result_for(receiver, first["command_id"])
            assert result["outcome"] == "awaiting_confirmation"
            assert pump.device.channels[0].state is State.IDLE  # nothing started remotely
            link.confirm_at_bedside(1)
            assert pump.device.channels[0].state is State.RUNNING
            assert pump.device.channels[0].rate_ml_h == pytest.approx(RATE_ML_H / 2)
            await receiver.send("P-0001", _cmd("stop"))
            await receiver.wait_for(lambda: pump.device.channels[0].state is not State.RUNNING)
            late = _cmd("program", program, ttl_s=5.0)
            await receiver.send("P-0001", late)
            assert (await _result_for(receiver, late["command_id"]))["outcome"] == (
                "awaiting_confirmation"
            )
            clocks.wall_offset = -timedelta(hours=2)  # an attacker sets the wall clock back
            clocks.mono_offset = 6.0  # ... but 6 s have passed on the monotonic clock
            confirmation = link.confirm_at_bedside(1)
            assert confirmation["body"]["outcome"] == "rejected"
            assert "monotonic" in confirmation["body"]["reason"]
            assert pump.device.channels[0].state is not State.RUNNING
            clocks.wall_offset = timedelta(0)
            too_big = _cmd("program", {**program, "dose": "5 mcg/kg/min"})
            await receiver.send("P-0001", too_big)
            result = await _result_for(receiver, too_big["command_id"])
            assert result["outcome"] == "rejected" and "hard" in result["reason"]

    _run(body)


def test_c24_c26_library_only_between_infusions_and_only_from_the_pharmacist(
    tmp_path: Path,
) -> None:
    async def body(receiver: Receiver) -> None:
        pump, _, link, _ = _pump(tmp_path, receiver)
        pump.bedside.trusted = [PHARMACIST.public_key()]
        library = sample_library().model_copy(update={"version": "2099.1.0"})
        now = datetime.now(UTC)
        by_pharmacist = sign_library(library, PHARMACIST, "pharm.jo", now)
        by_server = sign_library(library, SERVER_KEY, "server", now)
        async with _running(link):
            await receiver.wait_for(lambda: "P-0001" in receiver.connections)
            busy = _cmd("activate_library", {"package": by_pharmacist})
            await receiver.send("P-0001", busy)
            result = await _result_for(receiver, busy["command_id"])
            assert result["outcome"] == "rejected" and "infusing" in result["reason"]
            stop = _cmd("stop")
            await receiver.send("P-0001", stop)
            await _result_for(receiver, stop["command_id"])
            forged = _cmd("activate_library", {"package": by_server})
            await receiver.send("P-0001", forged)
            result = await _result_for(receiver, forged["command_id"])
            assert result["outcome"] == "rejected" and "trusted" in result["reason"], result
            good = _cmd("activate_library", {"package": by_pharmacist})
            await receiver.send("P-0001", good)
            result = await _result_for(receiver, good["command_id"])
            assert result["outcome"] == "accepted", result
        assert pump.bedside.library_info()["version"] == "2099.1.0"  # type: ignore[index]

    _run(body)


def test_f10_server_away_pump_keeps_infusing_and_everything_arrives(tmp_path: Path) -> None:
    """F-10: with the server gone the programmed rate goes on unchanged, 'no communication'
    is raised locally, records queue in the outbox, and all of them arrive afterwards with
    continuous seqs and nothing stored twice."""

    async def body(receiver: Receiver) -> None:
        pump, outbox, link, _ = _pump(tmp_path, receiver)
        ch = pump.device.channels[0]
        async with _running(link):
            await receiver.wait_for(lambda: link.connected)
            pump.advance_to(3600.0)
            before = ch.pumped_ml
            await receiver.stop()
            await asyncio.sleep(1.0)
            assert not link.connected
            assert pump.device.board.condition(Alarm.NO_COMMUNICATION)
            pump.advance_to(5 * 3600.0)  # five hours of pump time without the server
            assert ch.state is State.RUNNING
            assert ch.pumped_ml - before == pytest.approx(4 * RATE_ML_H, abs=0.01)
            queued_top = outbox.next_seq - 1
            assert outbox.pending_count() > 0
            await receiver.start()  # the server is back, same address
            await receiver.wait_for(
                lambda: link.connected and receiver.pumps["P-0001"].contiguous >= queued_top
            )
            await receiver.wait_for(lambda: not pump.device.board.condition(Alarm.NO_COMMUNICATION))
        rec = receiver.pumps["P-0001"]
        assert sorted(rec.stored) == list(range(1, max(rec.stored) + 1))
        alarms = [(f["body"]["code"], f["body"]["state"]) for f in rec.of_type("alarm")]
        assert ("no_communication", "raised") in alarms
        assert ("no_communication", "cleared") in alarms
        assert rec.tampered == 0
        assert link.stats["connects"] >= 2

    _run(body)


def test_enrol_pins_the_server_key_and_refuses_a_clone_answer(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        import json

        body = json.loads(request.content)
        seen.append(body)
        if body["token"] == "used":
            return httpx.Response(409, json={"detail": "clone"})
        return httpx.Response(
            200,
            json={
                "pump_id": "P-0042",
                "server_public_key": b64encode(public_bytes(SERVER_KEY.public_key())),
                "server_key_id": "x",
            },
        )

    async def main() -> None:
        outbox = Outbox(tmp_path / "p")
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            enrolment = await enrol(
                outbox,
                "http://server",
                "tok",
                serial="S1",
                model="m",
                kind="syringe",
                channels=1,
                client=client,
            )
            assert enrolment.pump_id == "P-0042"
            assert seen[0]["public_key"] == b64encode(public_bytes(outbox.key.public_key()))
            with pytest.raises(InputError, match="clone"):
                await enrol(
                    outbox,
                    "http://server",
                    "used",
                    serial="S1",
                    model="m",
                    kind="syringe",
                    channels=1,
                    client=client,
                )
        other = b64encode(public_bytes(generate_private_key().public_key()))
        with pytest.raises(InputError, match="pinned"):
            outbox.pin_server("P-0042", other, "http://server")

    asyncio.run(main())
    assert ws_url("https://h:8443/") == "wss://h:8443/api/gateway/ws"


def _admit(frame: dict[str, Any]) -> Any:
    from openinfusion.security.envelope import verify_command
    from openinfusion.security.replay import MemorySeenStore, ReplayGuard

    guard = ReplayGuard(MemorySeenStore(), monotonic=lambda: 0.0, wall=lambda: datetime.now(UTC))
    return guard.admit(verify_command(frame, SERVER_KEY.public_key(), pump_id="P-0001")), guard


_SHARED: list[ScenarioPump] = []


def _shared_pump() -> ScenarioPump:
    """One running pump for every example (each example compares with the rate it found)."""
    if not _SHARED:
        pump = ScenarioPump(PROFILE, "SER-P", random.Random(1))
        pump.start()
        _SHARED.append(pump)
    return _SHARED[0]


@settings(max_examples=80, deadline=None)
@given(
    value=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(10**9), 10**9),
        st.text(max_size=6),
        st.booleans(),
        st.none(),
    ),
    field=st.sampled_from(["rate_ml_h", "dose"]),
)
def test_c26_no_remote_titration_escapes_the_pump_limits(field: str, value: object) -> None:
    """C-26/C-18 as a property: whatever a (compromised) server signs as a titration, the
    channel's rate stays within the envelope of hard limits, and a refused titration
    changes nothing."""
    pump = _shared_pump()
    ch = pump.device.channels[0]
    before = ch.rate_ml_h
    params: dict[str, Any] = {field: value}
    if field == "dose":
        params["dose_unit"] = "mcg/kg/min"
    try:
        frame = _cmd("titrate", params)
    except ValueError:
        return  # NaN/inf cannot even be signed (canonical JSON refuses them)
    admission, guard = _admit(frame)
    outcome = pump.bedside.apply(admission, guard)
    limit = ch.plan.envelope.max_rate_ml_h  # type: ignore[union-attr]
    assert ch.rate_ml_h <= limit + 1e-9
    if outcome.outcome == "rejected":
        assert ch.rate_ml_h == before
    else:
        assert outcome.outcome == "accepted"
        assert ch.rate_ml_h > 0


def test_unconfirmed_remote_program_expires_and_is_reported(tmp_path: Path) -> None:
    """No remote change waits for later: an unconfirmed pre-populated program is dropped at
    its deadline and the pump says so in a second command_result."""

    async def body(receiver: Receiver) -> None:
        pump, _, link, clocks = _pump(tmp_path, receiver)
        async with _running(link):
            await receiver.wait_for(lambda: "P-0001" in receiver.connections)
            await receiver.send("P-0001", _cmd("stop"))
            await receiver.wait_for(lambda: len(_results(receiver)) >= 1)
            program = {
                "drug": "norepinephrine",
                "concentration": "16 mg/250 mL",
                "dose": "0.05 mcg/kg/min",
            }
            frame = _cmd("program", program, ttl_s=2.0)
            await receiver.send("P-0001", frame)
            await receiver.wait_for(lambda: 0 in pump.bedside.pending)
            clocks.mono_offset = 3.0
            await receiver.wait_for(
                lambda: sum(r["command_id"] == frame["command_id"] for r in _results(receiver)) == 2
            )
        outcomes = [r for r in _results(receiver) if r["command_id"] == frame["command_id"]]
        assert [r["outcome"] for r in outcomes] == ["awaiting_confirmation", "rejected"]
        assert "expired" in outcomes[1]["reason"]
        assert pump.device.channels[0].state is not State.RUNNING
        assert not pump.bedside.pending

    _run(body)


def test_c07_replay_refused_after_a_real_pump_process_restart(tmp_path: Path) -> None:
    """C-07 with a real process: a command accepted by a pump process is replayed after
    that process was killed (SIGKILL) and started again: refused as a replay."""
    import sys

    data = tmp_path / "pump"
    outbox = Outbox(data)
    pump_key = outbox.key.public_key()
    outbox.close()
    root = Path(__file__).resolve().parents[2]

    async def body(receiver: Receiver) -> None:
        receiver.add_pump("P-0001", pump_key)
        seed = Outbox(data)
        seed.pin_server("P-0001", b64encode(public_bytes(SERVER_KEY.public_key())), receiver.url)
        seed.close()

        async def start() -> asyncio.subprocess.Process:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.server._link_worker", str(data),
                cwd=root, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            await receiver.wait_for(lambda: "P-0001" in receiver.connections, 30)
            return proc

        frame = _cmd("pause")
        proc = await start()
        await receiver.send("P-0001", frame)
        first = await _result_for(receiver, frame["command_id"])
        proc.kill()
        await proc.wait()
        receiver.connections.pop("P-0001", None)
        proc = await start()
        try:
            await receiver.send("P-0001", frame)

            def answered_twice() -> bool:
                return sum(r["command_id"] == frame["command_id"] for r in _results(receiver)) >= 2

            await receiver.wait_for(answered_twice, 20)
        finally:
            proc.kill()
            await proc.wait()
        second = [r for r in _results(receiver) if r["command_id"] == frame["command_id"]][1]
        assert first["outcome"] == "accepted"
        assert second["outcome"] == "rejected" and "replay" in second["reason"]

    _run(body)


def test_f11_connections_cut_at_random_nothing_lost_nothing_twice(tmp_path: Path) -> None:
    """F-11/I5 (network chaos): the link is cut (reset) at random moments, a dozen times,
    while statuses, heartbeats, events and commands flow. Afterwards the server holds every
    seq once, none changed, the outbox holds nothing the server has, and each command
    was answered at most once."""
    from tests.server._proxy import CuttingProxy

    rng = random.Random(11)

    async def body(receiver: Receiver) -> None:
        proxy = CuttingProxy(receiver.port)
        await proxy.start()
        pump, outbox, link, _ = _pump(tmp_path, receiver, status_every_s=0.05,
                                      heartbeat_every_s=0.08)  # fmt: skip
        link.enrolment = outbox.pin_server(
            "P-0001", b64encode(public_bytes(SERVER_KEY.public_key())), proxy.url
        )
        sent: list[str] = []
        try:
            async with _running(link):
                for i in range(12):
                    await asyncio.sleep(rng.uniform(0.05, 0.3))
                    pump.advance_to(pump.device.t_s + 600.0)
                    if "P-0001" in receiver.connections and i % 3 == 0:
                        frame = _cmd("pause" if i % 2 == 0 else "stop")
                        with contextlib.suppress(Exception):
                            await receiver.send("P-0001", frame)
                            sent.append(frame["command_id"])
                    proxy.cut()
                top = outbox.next_seq - 1
                await receiver.wait_for(lambda: receiver.pumps["P-0001"].contiguous >= top, 20)
                await receiver.wait_for(lambda: outbox.acked_seq >= top, 20)
        finally:
            await proxy.stop()
        rec = receiver.pumps["P-0001"]
        assert proxy.cuts >= 6
        assert sorted(rec.stored) == list(range(1, max(rec.stored) + 1))
        assert rec.tampered == 0
        assert all(f["seq"] > top for f in outbox.pending())  # only what came after
        answered = [r["command_id"] for r in _results(receiver)]
        for command_id in sent:  # a command that reached the pump is answered exactly once
            assert answered.count(command_id) <= 1

    _run(body)


def test_c18_a_fault_applying_a_command_is_answered_and_the_link_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """C-18: a fault inside command handling is answered 'rejected', logged, and neither
    the link nor the infusion stops."""

    async def body(receiver: Receiver) -> None:
        pump, _, link, _ = _pump(tmp_path, receiver)
        real_apply = pump.bedside.apply

        def broken(*args: Any) -> Any:
            raise RuntimeError("fault injected")

        async with _running(link):
            await receiver.wait_for(lambda: "P-0001" in receiver.connections)
            pump.bedside.apply = broken  # type: ignore[method-assign]
            bad = _cmd("pause")
            await receiver.send("P-0001", bad)
            result = await _result_for(receiver, bad["command_id"])
            assert result["outcome"] == "rejected" and "internal error" in result["reason"]
            assert pump.device.channels[0].state is State.RUNNING
            pump.bedside.apply = real_apply  # type: ignore[method-assign]
            good = _cmd("pause")
            await receiver.send("P-0001", good)
            assert (await _result_for(receiver, good["command_id"]))["outcome"] == "accepted"
            assert link.stats["connects"] == 1

    with caplog.at_level("ERROR"):
        _run(body)
    assert any("failed" in r.getMessage() for r in caplog.records)


def test_a_replaced_prepopulated_program_is_reported(tmp_path: Path) -> None:
    """Every command gets a final answer: a pre-populated program replaced by a later one
    is reported rejected with the reason; only the later one can be confirmed."""

    async def body(receiver: Receiver) -> None:
        pump, _, link, _ = _pump(tmp_path, receiver)
        async with _running(link):
            await receiver.wait_for(lambda: "P-0001" in receiver.connections)
            stop = _cmd("stop")
            await receiver.send("P-0001", stop)
            await _result_for(receiver, stop["command_id"])
            program = {"drug": "norepinephrine", "concentration": "16 mg/250 mL"}
            first = _cmd("program", {**program, "dose": "0.05 mcg/kg/min"})
            second = _cmd("program", {**program, "dose": "0.08 mcg/kg/min"})
            await receiver.send("P-0001", first)
            await _result_for(receiver, first["command_id"])
            await receiver.send("P-0001", second)
            await receiver.wait_for(
                lambda: sum(r["command_id"] == first["command_id"] for r in _results(receiver)) == 2
            )
            link.confirm_at_bedside(1)
        firsts = [r for r in _results(receiver) if r["command_id"] == first["command_id"]]
        assert firsts[1]["outcome"] == "rejected" and "replaced" in firsts[1]["reason"]
        assert pump.device.channels[0].rate_ml_h == pytest.approx(RATE_ML_H * 0.8)

    _run(body)
