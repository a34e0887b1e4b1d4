"""The store under the gateway, without sockets: gap bookkeeping (hypothesis), idempotent
batches where any mix of replays stores each seq once (C-07), conflicts stopping a batch,
and the Alembic migration matching the models."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from openinfusion.security import build_envelope, generate_private_key, verify_envelope
from openinfusion.server.db import Database
from openinfusion.server.gaps import contiguous_until, note_stored
from openinfusion.server.migrate import upgrade_to_head
from openinfusion.server.models import Base, Pump, PumpMessage
from openinfusion.server.store import Incoming, store_batch

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 60), unique=True, max_size=60))
def test_gaps_are_exactly_the_missing_seqs(seqs: list[int]) -> None:
    gaps: list[list[int]] = []
    last = 0
    for seq in seqs:
        gaps, last = note_stored(gaps, last, seq)
    expected_missing = set(range(1, max(seqs, default=0) + 1)) - set(seqs)
    got = {s for lo, hi in gaps for s in range(lo, hi + 1)}
    assert got == expected_missing and last == max(seqs, default=0)
    assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(sorted(gaps)))  # disjoint
    first_missing = min(expected_missing, default=last + 1)
    assert contiguous_until(gaps, last) == first_missing - 1


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade_to_head(database.engine)
    yield database
    database.dispose()


_pump_counter = itertools.count(1)


def _pump(db: Database) -> tuple[str, object]:
    key = generate_private_key()
    pump_id = f"P-{next(_pump_counter):012d}"
    with db.write() as s:
        s.add(
            Pump(
                id=pump_id,
                serial=pump_id,
                model="M",
                kind="syringe",
                channel_count=1,
                unit=None,
                public_key="x",
                key_id="0" * 16,
                enrolled_at=NOW,
                last_seq=0,
                gaps=[],
            )
        )
    return pump_id, key


def _incoming(key: object, pump_id: str, seq: int, volume: float = 1.0) -> Incoming:
    frame = build_envelope(
        key,
        type="heartbeat",
        pump_id=pump_id,
        seq=seq,
        body={"v": volume},
        sent_at=NOW,
    )
    frame = json.loads(json.dumps(frame))  # as received off the wire
    return Incoming(frame, verify_envelope(frame, key.public_key(), pump_id=pump_id))


def test_c07_any_mix_of_replays_stores_each_seq_once(db: Database) -> None:
    @settings(max_examples=25, deadline=None)
    @given(st.lists(st.lists(st.integers(1, 12), max_size=8), min_size=1, max_size=6))
    def run(batches: list[list[int]]) -> None:
        pump_id, key = _pump(db)
        sent: set[int] = set()
        for batch in batches:
            with db.write() as s:
                out = store_batch(s, pump_id, [_incoming(key, pump_id, q) for q in batch], NOW)
            assert out.conflict_seq is None
            assert out.ack_seq == (max(batch) if batch else None)
            assert out.stored == len(set(batch) - sent)
            sent |= set(batch)
        with db.read() as s:
            stored = list(s.scalars(select(PumpMessage.seq).where(PumpMessage.pump_id == pump_id)))
            pump = s.get(Pump, pump_id)
            assert pump is not None
        assert sorted(stored) == sorted(sent)
        assert pump.last_seq == max(sent, default=0)

    run()


def test_conflict_stops_the_batch_and_stores_nothing_after(db: Database) -> None:
    pump_id, key = _pump(db)
    with db.write() as s:
        store_batch(s, pump_id, [_incoming(key, pump_id, 1)], NOW)
    batch = [
        _incoming(key, pump_id, 2),
        _incoming(key, pump_id, 1, volume=9.0),
        _incoming(key, pump_id, 3),
    ]
    with db.write() as s:
        out = store_batch(s, pump_id, batch, NOW)
    assert out.conflict_seq == 1 and out.ack_seq == 2 and out.stored == 1
    with db.read() as s:
        count = s.scalar(
            select(func.count()).select_from(PumpMessage).where(PumpMessage.pump_id == pump_id)
        )
    assert count == 2


def test_rolled_back_batch_leaves_nothing(db: Database) -> None:
    """Nothing of a batch survives a failure before commit, so no ack can have been sent
    for it: the pump keeps it in its outbox and sends it again."""
    pump_id, key = _pump(db)
    with pytest.raises(RuntimeError), db.write() as s:
        store_batch(s, pump_id, [_incoming(key, pump_id, q) for q in (1, 2, 3)], NOW)
        raise RuntimeError("power lost before commit")
    with db.read() as s:
        pump = s.get(Pump, pump_id)
        assert pump is not None and pump.last_seq == 0
        assert not list(s.scalars(select(PumpMessage).where(PumpMessage.pump_id == pump_id)))


def test_migration_matches_models(db: Database) -> None:
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
_channel = st.fixed_dictionaries(
    {},
    optional={
        "channel": st.integers(-2, 5) | st.text(max_size=3),
        "state": _json,
        "drug": _json,
        "dose": _json,
        "rate_ml_h": _json,
        "volume_infused_ml": _json,
        "dose_unit": _json,
    },
)
_bodies = st.one_of(
    st.dictionaries(st.text(max_size=12), _json, max_size=5),
    st.fixed_dictionaries({"channels": st.lists(_channel, max_size=3) | _json}),
    st.fixed_dictionaries(
        {},
        optional={
            "state": _json,
            "code": _json,
            "channel": _json,
            "priority": _json,
            "kind": _json,
            "data": _json,
            "command_id": _json,
            "outcome": _json,
        },
    ),
)


def test_any_signed_body_is_stored_without_breaking_derived_state(db: Database) -> None:
    """Pump bodies are signed but still untrusted content: whatever they hold, the batch is
    stored and acknowledged, and derivation never raises."""
    from openinfusion.server.gateway_batch import handle_batch

    class _Ctx:  # the parts of ServerContext the batch path uses
        def __init__(self) -> None:
            from openinfusion.server.events import LocalBus

            self.db, self.bus = db, LocalBus()

        def now(self) -> datetime:
            return NOW

        def audit(self, *args: object, **kw: object) -> None:
            raise AssertionError("nothing here should be refused")

    ctx = _Ctx()

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["status", "event", "alarm", "command_result", "heartbeat"]),
                _bodies,
            ),
            min_size=1,
            max_size=6,
        )
    )
    def run(messages: list[tuple[str, dict]]) -> None:
        pump_id, key = _pump(db)
        texts = [
            json.dumps(
                build_envelope(key, type=kind, pump_id=pump_id, seq=i + 1, body=body, sent_at=NOW)
            )
            for i, (kind, body) in enumerate(messages)
        ]
        result = handle_batch(ctx, pump_id, key.public_key(), texts, "test")  # type: ignore[arg-type]
        assert result.close_code is None and result.ack_seq == len(messages)
        assert result.stored == len(messages)

    run()


@pytest.fixture(scope="module")
def garbage_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path_factory.mktemp('garbage') / 'g.db'}")
    upgrade_to_head(database.engine)
    yield database
    database.dispose()


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=200) | _json.map(json.dumps))
def test_garbage_frames_are_refused_never_stored(garbage_db: Database, text: str) -> None:
    """Whatever arrives instead of an envelope closes the connection as a bad frame or an
    authentication failure, and stores nothing."""
    from openinfusion.server.gateway_batch import CLOSE_AUTH, CLOSE_BAD_FRAME, handle_batch

    db = garbage_db
    audits: list[str] = []

    class _Ctx:
        def __init__(self) -> None:
            from openinfusion.server.events import LocalBus

            self.db, self.bus = db, LocalBus()

        def now(self) -> datetime:
            return NOW

        def audit(self, _s: object, _actor: str, action: str, *_a: object, **_k: object) -> None:
            audits.append(action)

    pump_id, key = _pump(db)
    result = handle_batch(_Ctx(), pump_id, key.public_key(), [text], "test")  # type: ignore[arg-type]
    assert result.close_code in (CLOSE_BAD_FRAME, CLOSE_AUTH) and result.ack_seq is None
    assert audits == ["gateway.frame_rejected"]


def test_successive_infusions_on_one_channel_each_count_their_own_volume(db: Database) -> None:
    """The pump's volume counter runs over the channel's life; each infusion reports only
    what was delivered while it ran, and a new drug starts a new infusion."""
    from openinfusion.server.models import Infusion

    pump_id, key = _pump(db)

    def status(seq: int, state: str, drug: str, volume: float) -> Incoming:
        body = {
            "channels": [
                {
                    "channel": 1,
                    "state": state,
                    "drug": drug,
                    "volume_infused_ml": volume,
                    "rate_ml_h": 5.0,
                }
            ]
        }
        frame = json.loads(
            json.dumps(
                build_envelope(key, type="status", pump_id=pump_id, seq=seq, body=body, sent_at=NOW)
            )
        )
        return Incoming(frame, verify_envelope(frame, key.public_key(), pump_id=pump_id))

    steps = [
        (1, "running", "heparin", 4.0),
        (2, "running", "heparin", 10.0),
        (3, "complete", "heparin", 12.0),
        (4, "idle", "heparin", 12.0),
        (5, "running", "insulin", 12.5),
        (6, "running", "insulin", 14.0),
        (7, "running", "morphine", 15.0),
    ]
    for seq, state, drug, volume in steps:
        with db.write() as s:
            store_batch(s, pump_id, [status(seq, state, drug, volume)], NOW)
    with db.read() as s:
        rows = list(
            s.scalars(select(Infusion).where(Infusion.pump_id == pump_id).order_by(Infusion.id))
        )
    got = [(r.drug, round(r.volume_infused_ml, 6), r.ended_at is not None) for r in rows]
    assert got == [("heparin", 12.0, True), ("insulin", 2.0, True), ("morphine", 1.0, False)]


def test_channel_map_with_non_ascii_digit_keys_is_ignored(db: Database) -> None:
    pump_id, key = _pump(db)
    body = {"channels": {"²": {"state": "running"}, "1": {"state": "running", "drug": "x"}}}
    frame = json.loads(
        json.dumps(
            build_envelope(key, type="status", pump_id=pump_id, seq=1, body=body, sent_at=NOW)
        )
    )
    with db.write() as s:
        out = store_batch(
            s,
            pump_id,
            [Incoming(frame, verify_envelope(frame, key.public_key(), pump_id=pump_id))],
            NOW,
        )
    assert out.stored == 1


# One step of a pump's life as the server sees it: a status of channel 1 (state, drug,
# counter) or an event ending channel 1's infusion.
_steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("status"),
            st.sampled_from(["running", "paused", "idle", "complete", "bolus"]),
            st.sampled_from(["heparin", "insulin"]),
            st.floats(0, 50, allow_nan=False),
        ),
        st.tuples(
            st.just("event"), st.sampled_from(["stopped", "alarm"]), st.just(""), st.just(0.0)
        ),
    ),
    min_size=1,
    max_size=10,
)


def _derived(db: Database, pump_id: str) -> tuple[list[tuple], list[tuple]]:
    from openinfusion.server.models import Channel, Infusion

    with db.read() as s:
        chans = [
            (c.channel, c.state, c.drug, c.volume_infused_ml, c.updated_seq, c.infusion_id is None)
            for c in s.scalars(select(Channel).where(Channel.pump_id == pump_id))
        ]
        infs = [
            (i.drug, round(i.volume_infused_ml, 9), i.started_seq, i.ended_at is None, i.end_reason)
            for i in s.scalars(
                select(Infusion).where(Infusion.pump_id == pump_id).order_by(Infusion.started_seq)
            )
        ]
    return chans, infs


def test_derived_state_is_the_same_whatever_the_grouping(db: Database) -> None:
    """The group path applies every envelope in seq order in memory and writes once: the
    channel and infusion rows it leaves are exactly those of one envelope per transaction,
    for any sequence of statuses and ending events, any split into groups, any arrival
    order within a group, and other pumps sharing the group."""
    from openinfusion.server.store import store_group

    def incoming(key: object, pump_id: str, seq: int, step: tuple) -> Incoming:
        kind, state, drug, volume = step
        body: dict = (
            {
                "channels": [
                    {"channel": 1, "state": state, "drug": drug, "volume_infused_ml": volume}
                ]
            }
            if kind == "status"
            else {"kind": state, "channel": 1}
        )
        frame = json.loads(
            json.dumps(
                build_envelope(key, type=kind, pump_id=pump_id, seq=seq, body=body, sent_at=NOW)
            )
        )
        return Incoming(frame, verify_envelope(frame, key.public_key(), pump_id=pump_id))

    @settings(max_examples=40, deadline=None)
    @given(_steps, st.data())
    def run(steps: list[tuple], data: st.DataObject) -> None:
        alone_id, alone_key = _pump(db)
        grouped_id, grouped_key = _pump(db)
        other_id, other_key = _pump(db)
        for seq, step in enumerate(steps, 1):
            with db.write() as s:
                store_batch(s, alone_id, [incoming(alone_key, alone_id, seq, step)], NOW)
        items = [incoming(grouped_key, grouped_id, seq, step) for seq, step in enumerate(steps, 1)]
        cuts = sorted(
            c for c in data.draw(st.sets(st.integers(1, 9), max_size=3)) if c < len(items)
        )
        for lo, hi in itertools.pairwise([0, *cuts, len(items)]):
            group = data.draw(st.permutations(items[lo:hi]))
            noise = [incoming(other_key, other_id, lo + 1, ("status", "running", "x", 1.0))]
            with db.write() as s:
                outs = store_group(s, [(other_id, noise), (grouped_id, group)], NOW)
            assert outs[1].stored == hi - lo and outs[1].ack_seq == hi
        assert _derived(db, grouped_id) == _derived(db, alone_id)

    run()
