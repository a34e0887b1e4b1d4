"""Live events for dashboards and for command delivery, seen by every server process.

:class:`EventBus` is the small interface: ``publish(session, event)`` delivers the event if
and only if the session's transaction commits, and ``subscribe()`` yields every event any
process published. :class:`LocalBus` serves a single process (SQLite); :class:`PostgresBus`
uses PostgreSQL LISTEN/NOTIFY, whose notifications are sent at commit, so every process on
one database sees the same events. Events are small JSON objects (ids, not bodies):
PostgreSQL caps a notification at 8000 bytes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any, Protocol

import psycopg
from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

CHANNEL = "openinfusion_events"
QUEUE_SIZE = 1000
MAX_EVENT_BYTES = 7000


class Subscription:
    """A bounded queue of events; when a slow reader lets it fill, it is marked lagging
    and newer events are dropped for it (the reader resynchronises by re-reading).
    ``types``, when given, limits it to those event types (and ``resync``)."""

    def __init__(self, types: frozenset[str] | None = None) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self.lagging = False
        self.types = None if types is None else types | {"resync"}

    def wants(self, kind: object) -> bool:
        return self.types is None or kind in self.types

    def offer(self, ev: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(ev)
        except asyncio.QueueFull:
            self.lagging = True

    def offer_many(self, events: list[dict[str, Any]]) -> None:
        for ev in events:
            self.offer(ev)

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self.queue.get()


class EventBus(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def publish(self, session: Session, event: dict[str, Any]) -> None: ...
    def publish_many(self, session: Session, events: list[dict[str, Any]]) -> None: ...
    def subscribe(self, types: frozenset[str] | None = None) -> Subscription: ...
    def unsubscribe(self, sub: Subscription) -> None: ...


class _Fanout:
    """Hands events to the subscribers of this process on the event loop's thread."""

    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def bind_loop(self) -> None:
        self._loop = asyncio.get_running_loop()

    def subscribe(self, types: frozenset[str] | None = None) -> Subscription:
        sub = Subscription(types)
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def dispatch(self, ev: dict[str, Any]) -> None:
        """Deliver from any thread."""
        self.dispatch_many([ev])

    def dispatch_many(self, events: list[dict[str, Any]]) -> None:
        """Deliver several events from any thread: one wake-up of the event loop per
        subscriber that wants any of them, none for a subscriber that wants none."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            wanted = (
                events if sub.types is None else [e for e in events if sub.wants(e.get("type"))]
            )
            if wanted:
                loop.call_soon_threadsafe(sub.offer_many, wanted)


def _encode(ev: dict[str, Any]) -> str:
    payload = json.dumps(ev, separators=(",", ":"), sort_keys=True)
    if len(payload.encode("utf-8")) > MAX_EVENT_BYTES:
        raise ValueError(f"event {ev.get('type')} is too large to publish")
    return payload


class LocalBus(_Fanout):
    """In-process bus: one server process (the SQLite deployment)."""

    async def start(self) -> None:
        self.bind_loop()

    async def stop(self) -> None:
        self._loop = None

    def publish(self, session: Session, event: dict[str, Any]) -> None:
        self.publish_many(session, [event])

    def publish_many(self, session: Session, events: list[dict[str, Any]]) -> None:
        """Queue ``events`` on the session; they are delivered together at its commit and
        dropped at a rollback (one pair of listeners per session, not one per event)."""
        payloads = [_encode(ev) for ev in events]
        pending: list[str] | None = session.info.get(self._pending_key)
        if pending is None:
            pending = session.info[self._pending_key] = []
            sa_event.listen(session, "after_commit", self._after_commit)
            sa_event.listen(session, "after_rollback", self._after_rollback)
        pending.extend(payloads)

    @property
    def _pending_key(self) -> str:
        return f"openinfusion.bus.{id(self)}"

    def _after_commit(self, session: Session) -> None:
        pending = session.info.get(self._pending_key)
        if pending:
            payloads = list(pending)
            pending.clear()
            self.dispatch_many([json.loads(p) for p in payloads])

    def _after_rollback(self, session: Session) -> None:
        pending = session.info.get(self._pending_key)
        if pending:
            pending.clear()


class PostgresBus(_Fanout):
    """LISTEN/NOTIFY: published inside the transaction, delivered to all processes at commit."""

    def __init__(self, conninfo: str) -> None:
        super().__init__()
        self._conninfo = conninfo
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listening = threading.Event()

    async def start(self) -> None:
        self.bind_loop()
        self._thread = threading.Thread(target=self._listen, name="pg-listen", daemon=True)
        self._thread.start()
        await asyncio.to_thread(self._listening.wait, 10.0)

    async def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)
        self._loop = None

    def publish(self, session: Session, event: dict[str, Any]) -> None:
        session.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": _encode(event)})

    def publish_many(self, session: Session, events: list[dict[str, Any]]) -> None:
        """One statement for all of ``events``: a notification each, in order."""
        if len(events) == 1:
            self.publish(session, events[0])
        elif events:
            session.execute(
                text(
                    "SELECT pg_notify(:c, p) FROM unnest(CAST(:ps AS text[])) WITH ORDINALITY AS t(p, n) ORDER BY n"
                ),
                {"c": CHANNEL, "ps": [_encode(ev) for ev in events]},
            )

    def _listen(self) -> None:
        reconnecting = False
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    if reconnecting:  # notifications sent meanwhile are lost: say so
                        self.dispatch({"type": "resync"})
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self.dispatch(json.loads(note.payload))
            except psycopg.Error as exc:  # reconnect: a restart of PostgreSQL is survivable
                log.warning("event listener lost its connection (%s); reconnecting", exc)
                reconnecting = True
                self._stop.wait(1.0)


def make_bus(sqlalchemy_url: str) -> EventBus:
    """The bus that fits the database: LISTEN/NOTIFY for PostgreSQL, local for SQLite."""
    if sqlalchemy_url.startswith("postgresql"):
        conninfo = sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)
        return PostgresBus(conninfo)
    return LocalBus()
