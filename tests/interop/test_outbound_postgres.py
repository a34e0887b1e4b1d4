"""The outbound feed on PostgreSQL with two server processes' worth of services on one
database (two contexts, two connection pools): forwarders racing on the same envelopes and
two senders for one destination still deliver every message once, in order (the cursor's
compare-and-set, the unique control id and the per-destination advisory lock). Skips with
the reason when PostgreSQL is unreachable, fails under CI=true."""

from __future__ import annotations

import asyncio
from pathlib import Path

from openinfusion.server.app import open_context
from openinfusion.server.clock import utc_now
from tests.interop._ehr import FakeEHR
from tests.interop.test_outbound import Fleet, _service, _until
from tests.server._server_support import status_body
from tests.server.test_app_postgres import pg_url  # noqa: F401 (fixture)


def test_two_processes_deliver_each_message_once_in_order(
    pg_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    with FakeEHR() as ehr:
        fleet = Fleet(tmp_path, [ehr.destination], utc_now, db_url=pg_url)
        other, _ = open_context(fleet.ctx.settings, utc_now)  # the second process
        pump = fleet.pump()
        try:

            async def main() -> None:
                services = [_service(fleet.ctx, ehr.destination), _service(other, ehr.destination)]
                for s in services:
                    await s.start()
                try:
                    for i in range(30):
                        fleet.send(pump, "status", status_body(rate=float(i + 1)))
                        if i % 5 == 0:
                            await asyncio.sleep(0.05)
                    await _until(
                        lambda: (
                            len(fleet.outbox()) == 30
                            and all(r.status == "acked" for r in fleet.outbox())
                        ),
                        timeout=60,
                    )
                finally:
                    for s in services:
                        await s.stop()

            asyncio.run(main())
            rows = fleet.outbox()
            assert ehr.control_ids() == [r.control_id for r in rows]  # once each, in order
            assert len({r.source.split()[0] for r in rows}) == 30  # one per envelope
        finally:
            other.db.dispose()
            fleet.close()
