"""The outbound feed in one process: what pump facts become PCD-01/PCD-04 messages (events
at once, statuses throttled per channel), and the sender's policy against a real MLLP
endpoint that is down, slow (tarpit), erroring (AE) or rejecting (AR) (RELIABILITY F-13)."""

from __future__ import annotations

import asyncio
import itertools
import json
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from openinfusion.interop.hl7.parse import field_text, parse_message, segments
from openinfusion.interop.outbound import (
    OutboundService,
    SendPolicy,
    escape_payload,
    outbox_summary,
    parse_destination,
)
from openinfusion.interop.outbound_feed import FeedPolicy, Forwarder, control_id_for
from openinfusion.interop.outbound_tables import OutboxMessage
from openinfusion.security import build_envelope, generate_private_key
from openinfusion.server.app import open_context
from openinfusion.server.clock import Clock, utc_now
from openinfusion.server.context import ServerContext
from openinfusion.server.gateway_batch import handle_batch
from openinfusion.server.models import Association, Patient, Pump, PumpMessage
from tests.interop._ehr import FakeEHR
from tests.server._server_support import (
    FakeClock,
    cheap_password_hashing,  # noqa: F401 (autouse)
    free_port,
    make_settings,
    status_body,
)

_serials = itertools.count(1)


class Fleet:
    """A server context and pumps feeding it stored envelopes through the gateway store."""

    def __init__(
        self,
        tmp_path: Path,
        destinations: list[str],
        clock: Clock | None = None,
        **settings: Any,
    ) -> None:
        self.clock = clock or FakeClock()
        self.ctx, _ = open_context(
            make_settings(tmp_path, hl7_destinations=tuple(destinations), **settings),
            self.clock,
        )
        self.keys: dict[str, Any] = {}
        self.seqs: dict[str, int] = {}

    def pump(self, patient_mrn: str | None = None) -> str:
        n = next(_serials)
        pump_id, key = f"P-{n:012d}", generate_private_key()
        now = self.clock()
        with self.ctx.db.write() as s:
            s.add(
                Pump(
                    id=pump_id,
                    serial=f"SN-{n}",
                    model="TestPump 1",
                    kind="syringe",
                    channel_count=2,
                    unit=None,
                    public_key="x",
                    key_id="0" * 16,
                    enrolled_at=now,
                    last_seq=0,
                    gaps=[],
                )
            )
            if patient_mrn:
                patient = Patient(
                    mrn=patient_mrn,
                    family_name="Lovelace",
                    given_name="Ada",
                    birth_date=date(1970, 5, 1),
                    sex="female",
                    created_at=now,
                    updated_at=now,
                )
                s.add(patient)
                s.flush()
                s.add(
                    Association(
                        pump_id=pump_id,
                        channel=1,
                        patient_id=patient.id,
                        associated_by="nurse1",
                        associated_at=now,
                    )
                )
        self.keys[pump_id], self.seqs[pump_id] = key, 0
        return pump_id

    def send(self, pump_id: str, kind: str, body: dict[str, Any]) -> None:
        self.seqs[pump_id] += 1
        key = self.keys[pump_id]
        frame = build_envelope(
            key, type=kind, pump_id=pump_id, seq=self.seqs[pump_id], body=body, sent_at=self.clock()
        )
        result = handle_batch(self.ctx, pump_id, key.public_key(), [json.dumps(frame)], "test")
        assert result.close_code is None

    def outbox(self) -> list[OutboxMessage]:
        with self.ctx.db.read() as s:
            return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))

    def close(self) -> None:
        self.ctx.db.dispose()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(tmp_path, ["127.0.0.1:1"])
    yield f
    f.close()


def _msh9(payload: str) -> str:
    msg = parse_message(payload)
    return field_text(msg, msg[0], 9, 1) + "^" + field_text(msg, msg[0], 9, 2)


def test_events_at_once_statuses_throttled_per_channel(fleet: Fleet) -> None:
    fwd = Forwarder(fleet.ctx, ["ehr"], FeedPolicy(status_interval_s=60))
    pump = fleet.pump(patient_mrn="MRN-77")
    fleet.send(pump, "status", status_body(rate=10.0))  # first seen: reported
    for _ in range(3):  # unchanged within 60 s: throttled
        fleet.clock.advance(5)
        fleet.send(pump, "status", status_body(rate=10.0))
    fleet.clock.advance(5)
    fleet.send(pump, "status", status_body(rate=12.0))  # program change: at once
    fleet.clock.advance(5)
    fleet.send(pump, "event", {"kind": "paused", "channel": 1, "data": {"channel": 0}})
    fleet.send(pump, "heartbeat", {})
    fleet.clock.advance(61)
    fleet.send(pump, "status", status_body(state="paused", rate=12.0))  # periodic again
    fleet.send(
        pump, "alarm", {"state": "raised", "code": "occlusion", "priority": "high", "channel": 1}
    )
    fleet.send(pump, "alarm", {"state": "cleared", "code": "occlusion", "channel": 1})
    assert fwd.run_once() == (10, 6)
    assert fwd.run_once() == (0, 0)  # the cursor moved with the rows
    rows = fleet.outbox()
    assert [r.message_type for r in rows] == ["ORU^R01"] * 4 + ["ORU^R40"] * 2
    assert [r.source.rsplit(" ", 1)[-1] for r in rows] == [
        "status",
        "program_changed",
        "paused",
        "status",
        "active",
        "cleared",
    ]
    assert all(r.status == "pending" and r.destination == "ehr" for r in rows)
    for r in rows:
        msg = parse_message(r.payload)
        assert field_text(msg, msg[0], 10) == r.control_id
        assert _msh9(r.payload) == r.message_type
        pid = segments(msg, "PID")
        assert pid and field_text(msg, pid[0], 3) == "MRN-77"  # patient from the association


def test_control_ids_are_short_unique_and_the_same_for_the_same_fact() -> None:
    ids = {control_id_for(r, i, d) for r in (1, 35, 36, 2**62) for i in range(4) for d in range(16)}
    assert len(ids) == 4 * 4 * 16 and max(len(c) for c in ids) <= 20
    assert control_id_for(99, 1, 0) == control_id_for(99, 1, 0)


def test_one_message_per_destination_and_a_restarted_forwarder_resumes(fleet: Fleet) -> None:
    pump = fleet.pump()
    fleet.send(pump, "status", status_body())
    first = Forwarder(fleet.ctx, ["a:1", "b:2"])
    assert first.run_once() == (1, 2)
    fleet.send(pump, "event", {"kind": "stopped", "channel": 1})
    again = Forwarder(fleet.ctx, ["a:1", "b:2"])  # a new process: reads from the cursor
    assert again.run_once() == (1, 2)
    rows = fleet.outbox()
    assert [r.destination for r in rows] == ["a:1", "b:2", "a:1", "b:2"]
    assert len({r.control_id for r in rows}) == 4


def test_bad_destination_named() -> None:
    assert parse_destination("ehr.example:2575") == ("ehr.example", 2575)
    assert parse_destination("[::1]:2575") == ("::1", 2575)
    for bad in ("ehr", "ehr:0", "ehr:99999", ":2575", "ehr:x"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_destination(bad)


def test_payload_escaped_for_display() -> None:
    assert escape_payload("MSH|^~\\&|A\rPID|\x1b[31m|") == "MSH|^~\\\\&|A\\rPID|\\x1b[31m|"


# ---- the sender against a real endpoint -----------------------------------------------------


def _service(ctx: ServerContext, dest: str, **policy: Any) -> OutboundService:
    send = SendPolicy(
        **{"ack_timeout_s": 1.0, "retry_base_s": 0.05, "retry_max_s": 0.2, "poll_s": 0.05, **policy}
    )
    return OutboundService(
        ctx, [dest], feed=FeedPolicy(status_interval_s=0), send=send, forward_interval_s=0.05
    )


async def _until(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def _statuses(fleet: Fleet, rows: list[OutboxMessage]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r.status] = out.get(r.status, 0) + 1
    return out


def test_endpoint_down_then_up_delivers_everything_in_order(tmp_path: Path) -> None:
    ehr = FakeEHR(port=free_port())
    fleet = Fleet(tmp_path, [ehr.destination], utc_now)  # retries wait for real time
    pump = fleet.pump()
    for i in range(8):
        fleet.send(pump, "status", status_body(rate=float(i + 1)))  # each a program change

    async def main() -> None:
        service = _service(fleet.ctx, ehr.destination)
        await service.start()
        try:
            await _until(lambda: any(r.attempts >= 2 for r in fleet.outbox()))
            rows = fleet.outbox()
            assert len(rows) == 8 and all(r.status == "pending" for r in rows)
            head = rows[0]
            assert "connect to" in (head.last_error or "")
            summary = outbox_summary(fleet.ctx, [ehr.destination], fleet.clock())
            dest = summary["destinations"][0]
            assert dest["counts"]["pending"] == 8 and dest["last_error"]["error"]
            ehr.start()
            await _until(lambda: all(r.status == "acked" for r in fleet.outbox()))
            # more facts while it is up go out too
            fleet.send(pump, "event", {"kind": "stopped", "channel": 1})
            await _until(lambda: len(ehr.control_ids()) == 9)
        finally:
            await service.stop()
            ehr.stop()

    try:
        asyncio.run(main())
        rows = fleet.outbox()
        assert ehr.control_ids() == [r.control_id for r in rows]  # in order, each once
        assert all(r.status == "acked" and r.acked_at and r.ack_code == "AA" for r in rows)
    finally:
        fleet.close()


def test_tarpit_times_out_is_retried_and_visible_then_delivered(tmp_path: Path) -> None:
    ehr = FakeEHR(mode="tarpit").start()
    fleet = Fleet(tmp_path, [ehr.destination], utc_now)
    pump = fleet.pump()
    fleet.send(pump, "status", status_body())
    fleet.send(pump, "event", {"kind": "stopped", "channel": 1})

    async def main() -> None:
        service = _service(fleet.ctx, ehr.destination, ack_timeout_s=0.3)
        await service.start()
        try:
            await _until(lambda: fleet.outbox() and fleet.outbox()[0].attempts >= 2)
            head, second = fleet.outbox()
            assert head.status in ("pending", "sent") and "no reply" in (head.last_error or "")
            assert second.attempts == 0  # held back behind the head: order is kept
            ehr.mode = "AA"
            await _until(lambda: all(r.status == "acked" for r in fleet.outbox()))
        finally:
            await service.stop()
            ehr.stop()

    try:
        asyncio.run(main())
        ids = ehr.control_ids()
        rows = fleet.outbox()
        # the head was received once per attempt under the same MSH-10: dedupable
        assert set(ids) == {r.control_id for r in rows} and ids[-1] == rows[-1].control_id
        assert ids.count(rows[0].control_id) >= 2
    finally:
        fleet.close()


@pytest.mark.parametrize(("mode", "attempts"), [("AE", 2), ("AR", 1)])
def test_error_replies_are_parked_with_their_reason(
    tmp_path: Path, mode: str, attempts: int
) -> None:
    ehr = FakeEHR(mode=mode).start()  # type: ignore[arg-type]
    fleet = Fleet(tmp_path, [ehr.destination], utc_now)
    pump = fleet.pump()
    fleet.send(pump, "status", status_body())

    async def main() -> None:
        service = _service(fleet.ctx, ehr.destination, ae_retries=1)
        await service.start()
        try:
            await _until(lambda: [r.status for r in fleet.outbox()] == ["error"])
            ehr.mode = "AA"  # later messages are not held back by a parked one
            fleet.send(pump, "event", {"kind": "stopped", "channel": 1})
            await _until(lambda: len(fleet.outbox()) == 2 and fleet.outbox()[1].status == "acked")
        finally:
            await service.stop()
            ehr.stop()

    try:
        asyncio.run(main())
        parked, later = fleet.outbox()
        assert parked.status == "error" and parked.attempts == attempts
        assert parked.ack_code == mode
        assert parked.last_error and parked.last_error.startswith(f"{mode}: ")
        assert "observation identifier not known here" in parked.last_error
        assert later.status == "acked"
        summary = outbox_summary(fleet.ctx, [ehr.destination], fleet.clock())
        assert summary["destinations"][0]["counts"] == {
            "pending": 0,
            "sent": 0,
            "acked": 1,
            "error": 1,
        }
    finally:
        fleet.close()


def test_rows_left_sent_by_a_stopped_server_are_sent_again_under_their_control_ids(
    tmp_path: Path,
) -> None:
    """The ACK of a row was lost in a crash (marked sent, never acked): after the restart the
    receiver gets it again with the same MSH-10, so it can deduplicate."""
    fleet = Fleet(tmp_path, [], utc_now)
    with FakeEHR() as ehr:
        pump = fleet.pump()
        fleet.send(pump, "status", status_body())
        fleet.send(pump, "event", {"kind": "stopped", "channel": 1})
        Forwarder(fleet.ctx, [ehr.destination]).run_once()
        from openinfusion.interop.outbound import OutboxStore

        store = OutboxStore(fleet.ctx, ehr.destination)
        claimed, _ = store.claim(10)  # the crashed process had put both on the wire
        assert [r.status for r in fleet.outbox()] == ["sent", "sent"]

        async def main() -> None:
            service = _service(fleet.ctx, ehr.destination)
            await service.start()
            try:
                await _until(lambda: all(r.status == "acked" for r in fleet.outbox()))
            finally:
                await service.stop()

        asyncio.run(main())
        assert ehr.control_ids() == [c.control_id for c in claimed]
    fleet.close()


_ENVELOPES = st.lists(
    st.one_of(
        st.tuples(st.just("status"), st.sampled_from([1.0, 2.0, 3.0])),
        st.tuples(st.just("event"), st.sampled_from(["started", "paused", "stopped", "noise"])),
        st.tuples(
            st.just("alarm"),
            st.tuples(
                st.sampled_from(["raised", "cleared"]), st.sampled_from(["occlusion", "air"])
            ),
        ),
        st.tuples(st.just("heartbeat"), st.none()),
    ),
    min_size=1,
    max_size=24,
)
_STEPS = st.lists(
    st.tuples(st.integers(1, 6), st.integers(1, 5), st.booleans()), min_size=1, max_size=8
)


def _body(kind: str, arg: Any) -> dict[str, Any]:
    if kind == "status":
        return status_body(rate=arg)
    if kind == "event":
        return {"kind": arg, "channel": 1}
    if kind == "alarm":
        state, code = arg
        return {"state": state, "code": code, "priority": "high", "channel": 1}
    return {}


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(envelopes=_ENVELOPES, steps=_STEPS)
def test_every_fact_once_whatever_the_batches_and_restarts(
    envelopes: list[tuple[str, Any]], steps: list[tuple[int, int, bool]]
) -> None:
    """Safety property of the feed (nothing lost, nothing twice): however stored envelopes
    are split into forwarder batches, and whenever the forwarder restarts, the outbox holds
    exactly the messages one pass over all envelopes gives, in envelope order, each once."""
    with tempfile.TemporaryDirectory() as tmp:
        fleet = Fleet(Path(tmp), ["ehr:1"])
        try:
            pump = fleet.pump()
            policy = lambda b: FeedPolicy(status_interval_s=0, batch=b)  # noqa: E731
            fwd = Forwarder(fleet.ctx, ["ehr:1"], policy(1))
            pending = list(envelopes)
            for feed_n, batch, restart in itertools.cycle(steps):
                for kind, arg in pending[:feed_n]:
                    fleet.clock.advance(1)
                    fleet.send(pump, kind, _body(kind, arg))
                pending = pending[feed_n:]
                if restart:
                    fwd = Forwarder(fleet.ctx, ["ehr:1"], policy(batch))
                fwd.policy = policy(batch)
                fwd.run_once()
                if not pending:
                    break
            while fwd.run_once() != (0, 0):
                pass
            reference = Forwarder(fleet.ctx, ["ehr:1"], policy(10_000))
            with fleet.ctx.db.read() as s:
                rows = s.execute(
                    select(
                        PumpMessage.id,
                        PumpMessage.pump_id,
                        PumpMessage.seq,
                        PumpMessage.type,
                        PumpMessage.received_at,
                        PumpMessage.body,
                    ).order_by(PumpMessage.id)
                ).all()
                expected = [
                    control_id_for(row_id, b.index, 0) for row_id, b in reference._build(s, rows)
                ]
            got = [r.control_id for r in fleet.outbox()]
            assert got == expected
            assert len(set(got)) == len(got)
        finally:
            fleet.close()


def test_alarm_acknowledged_on_the_dashboard_becomes_one_pcd04(fleet: Fleet) -> None:
    from openinfusion.server.models import Alarm

    pump = fleet.pump(patient_mrn="MRN-ACK")
    fleet.send(
        pump, "alarm", {"state": "raised", "code": "occlusion", "priority": "high", "channel": 1}
    )
    fleet.send(pump, "alarm", {"state": "raised", "code": "air", "priority": "high", "channel": 1})
    fwd = Forwarder(fleet.ctx, ["ehr"], FeedPolicy(ack_settle_s=5))
    assert fwd.run_once() == (2, 2)
    with fleet.ctx.db.write() as s:
        occlusion, air = s.scalars(select(Alarm).order_by(Alarm.id)).all()
        occlusion.acknowledged_at, occlusion.acknowledged_by = fleet.clock(), "nurse1"
        air.acknowledged_at, air.acknowledged_by = fleet.clock(), "bedside"  # came as envelope
        ack_id = occlusion.id
    assert fwd.forward_acks() == 0  # not settled yet: a later commit could carry this time
    fleet.clock.advance(6)
    assert fwd.forward_acks() == 1
    assert fwd.forward_acks() == 0  # once
    row = fleet.outbox()[-1]
    assert row.message_type == "ORU^R40" and row.source.startswith(f"alarm:{ack_id} ")
    assert row.control_id.startswith("OA") and row.control_id.endswith("-0")
    msg = parse_message(row.payload)
    assert field_text(msg, segments(msg, "PID")[0], 3) == "MRN-ACK"
    assert "nurse1" in row.source
