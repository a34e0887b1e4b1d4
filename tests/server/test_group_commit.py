"""Group commit under the gateway: many connections' batches in few transactions, each
batch answered only after its group committed, and one pump's failure isolated."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from openinfusion.security import build_envelope
from openinfusion.server.db import Database
from openinfusion.server.events import LocalBus
from openinfusion.server.gateway_batch import store_verified_group, verify_frames
from openinfusion.server.group_commit import GroupCommitter
from openinfusion.server.migrate import upgrade_to_head
from openinfusion.server.models import Pump, PumpMessage
from tests.server.test_gateway_store import NOW, _pump


class _Ctx:
    """The parts of ServerContext the store path uses."""

    def __init__(self, db: Database) -> None:
        self.db, self.bus = db, LocalBus()
        self.audited: list[str] = []

    def now(self) -> datetime:
        return NOW

    def audit(self, _session: object, _actor: str, action: str, *_a: object, **_k: object) -> None:
        self.audited.append(action)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'group.db'}")
    upgrade_to_head(database.engine)
    yield database
    database.dispose()


def _texts(key: object, pump_id: str, seqs: range) -> list[str]:
    return [
        json.dumps(
            build_envelope(key, type="heartbeat", pump_id=pump_id, seq=s, body={}, sent_at=NOW)
        )
        for s in seqs
    ]


def test_batches_of_many_pumps_share_transactions_and_all_are_stored(db: Database) -> None:
    """40 pumps x 5 batches of 3 envelopes, submitted concurrently: every envelope is stored
    once, every batch is acked to its last seq, and there are fewer commits than batches."""
    ctx = _Ctx(db)
    committer = GroupCommitter(ctx)  # type: ignore[arg-type]
    pumps = [_pump(db) for _ in range(40)]

    async def pump_stream(pump_id: str, key: object) -> list[int | None]:
        acks = []
        for b in range(5):
            texts = _texts(key, pump_id, range(3 * b + 1, 3 * b + 4))
            verified = verify_frames(pump_id, key.public_key(), texts)  # type: ignore[attr-defined]
            result = await committer.submit(pump_id, verified, "test")
            acks.append(result.ack_seq)
        return acks

    async def main() -> list[list[int | None]]:
        return await asyncio.gather(*(pump_stream(p, k) for p, k in pumps))

    committer.start()
    try:
        acks = asyncio.run(main())
    finally:
        committer.stop()
    assert all(a == [3, 6, 9, 12, 15] for a in acks)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(PumpMessage)) == 40 * 15
        assert all(p.last_seq == 15 and not p.gaps for p in s.scalars(select(Pump)))
    assert 0 < committer.groups < 40 * 5


def test_one_failing_batch_does_not_cost_the_others_their_data(db: Database) -> None:
    """A batch for a pump that is not enrolled raises inside the group: it alone fails; the
    batches that shared its group are stored and answered."""
    ctx = _Ctx(db)
    committer = GroupCommitter(ctx)  # type: ignore[arg-type]
    good = [_pump(db) for _ in range(5)]
    _, stray_key = _pump(db)

    async def main() -> list[object]:
        jobs = []
        for pump_id, key in good:
            v = verify_frames(pump_id, key.public_key(), _texts(key, pump_id, range(1, 4)))  # type: ignore[attr-defined]
            jobs.append(committer.submit(pump_id, v, "test"))
        bad = verify_frames(
            "P-not-enrolled",
            stray_key.public_key(),  # type: ignore[attr-defined]
            _texts(stray_key, "P-not-enrolled", range(1, 2)),
        )
        jobs.insert(2, committer.submit("P-not-enrolled", bad, "test"))
        return await asyncio.gather(*jobs, return_exceptions=True)

    committer.start()
    try:
        results = asyncio.run(main())
    finally:
        committer.stop()
    assert isinstance(results[2], LookupError)
    assert [r.ack_seq for i, r in enumerate(results) if i != 2] == [3] * 5  # type: ignore[union-attr]
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(PumpMessage)) == 15


def test_group_events_are_delivered_at_commit_and_only_to_who_wants_them(db: Database) -> None:
    """The live events of a whole group reach a reader together, after the commit; a
    rolled-back group delivers nothing; the command hub's filtered subscription never sees
    pump updates."""
    ctx = _Ctx(db)
    pumps = [_pump(db) for _ in range(3)]

    async def main() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
        bus = ctx.bus
        await bus.start()
        everything = bus.subscribe()
        commands_only = bus.subscribe(frozenset({"command", "pump_decommissioned"}))
        jobs = [
            (
                pump_id,
                verify_frames(pump_id, key.public_key(), _texts(key, pump_id, range(1, 3))),
                "t",
            )  # type: ignore[attr-defined]
            for pump_id, key in pumps
        ]
        with pytest.raises(RuntimeError), db.write() as session:
            store_verified_group(ctx, session, jobs)  # type: ignore[arg-type]
            raise RuntimeError("the commit fails")
        await asyncio.sleep(0.05)
        assert everything.queue.empty()  # rolled back: nothing was published
        with db.write() as session:
            store_verified_group(ctx, session, jobs)  # type: ignore[arg-type]
            bus.publish(session, {"type": "command", "pump_id": pumps[0][0], "command_id": "c"})
            await asyncio.sleep(0.05)
            assert everything.queue.empty()  # not before the commit
        await asyncio.sleep(0.05)
        got = [everything.queue.get_nowait() for _ in range(everything.queue.qsize())]
        filtered = [commands_only.queue.get_nowait() for _ in range(commands_only.queue.qsize())]
        await bus.stop()
        return got, filtered

    got, filtered = asyncio.run(main())
    assert [(e["type"], e["pump_id"], e["last_seq"]) for e in got[:3]] == [
        ("pump_update", pump_id, 2) for pump_id, _k in pumps
    ]
    assert [e["type"] for e in got[3:]] == ["command"]
    assert [e["type"] for e in filtered] == ["command"]
