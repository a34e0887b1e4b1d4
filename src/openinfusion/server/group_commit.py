"""Group commit: the verified batches of every pump connection stored together.

Each commit of the store costs a disk flush (SQLite WAL with synchronous FULL; PostgreSQL's
WAL flush), and a pump sends a few envelopes at a time, so one transaction per connection
batch makes the flush rate the ingest rate. One writer thread takes every batch that is
waiting — from all connections — stores them in one transaction and then answers each
connection, which acks its pump only then (the ack still follows the commit). While one
group is being flushed the next one gathers, so there is no timer and no added wait when
the load is light.

If anything in a group raises, the group rolls back whole and each batch is retried alone
in its own transaction, so one pump's failure cannot lose or delay another pump's data.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass

from openinfusion.server.context import ServerContext
from openinfusion.server.gateway_batch import BatchResult, Verified, store_verified_group

log = logging.getLogger(__name__)

MAX_GROUP_ENVELOPES = 2000  # bounds one transaction (and the latency of its flush)


@dataclass(slots=True)
class _Job:
    pump_id: str
    verified: Verified
    address: str
    loop: asyncio.AbstractEventLoop
    done: asyncio.Future[BatchResult]


def _settle(answers: list[tuple[_Job, BatchResult | BaseException]]) -> None:
    """On the event loop: answer every connection of a committed group at once."""
    for job, answer in answers:
        if job.done.done():  # the connection went away meanwhile
            continue
        if isinstance(answer, BaseException):
            job.done.set_exception(answer)
        else:
            job.done.set_result(answer)


class GroupCommitter:
    """A writer thread for the gateway's store path (start it with the app, stop it after)."""

    def __init__(self, ctx: ServerContext, max_envelopes: int = MAX_GROUP_ENVELOPES) -> None:
        self.ctx = ctx
        self.max_envelopes = max_envelopes
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.groups = 0  # transactions committed (for tests and benchmarks)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Finish the batches already submitted, then end the thread."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(30)
            self._thread = None

    async def submit(self, pump_id: str, verified: Verified, address: str) -> BatchResult:
        """Store ``verified`` for ``pump_id``; returns once its group has committed."""
        if self._thread is None:
            raise RuntimeError("the group committer is not running")
        loop = asyncio.get_running_loop()
        job = _Job(pump_id, verified, address, loop, loop.create_future())
        self._jobs.put(job)
        return await job.done

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._jobs.get()
            if first is None:
                return
            group, size = [first], len(first.verified.items)
            while size < self.max_envelopes:
                try:
                    nxt = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                group.append(nxt)
                size += len(nxt.verified.items)
            answers = self._write(group)
            by_loop: dict[
                asyncio.AbstractEventLoop, list[tuple[_Job, BatchResult | BaseException]]
            ] = {}
            for job, answer in answers:
                by_loop.setdefault(job.loop, []).append((job, answer))
            for loop, settled in by_loop.items():
                if not loop.is_closed():  # one wake-up of each loop per group
                    loop.call_soon_threadsafe(_settle, settled)

    def _write(self, group: list[_Job]) -> list[tuple[_Job, BatchResult | BaseException]]:
        try:
            with self.ctx.db.write() as session:
                results = store_verified_group(
                    self.ctx, session, [(j.pump_id, j.verified, j.address) for j in group]
                )
        except Exception as exc:
            if len(group) == 1:
                return [(group[0], exc)]
            log.warning("group of %d batches failed; storing each alone", len(group))
            return [answer for job in group for answer in self._write([job])]
        self.groups += 1
        return list(zip(group, results, strict=True))
