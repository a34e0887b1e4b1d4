"""Order intake on PostgreSQL (the scale-out store): accepted, refused, a message sent again
and two copies of one message raced from two threads are answered alike and act once; the
status follows the pump's results; a merge flags the open association."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from openinfusion.interop.merge import merge_patients
from openinfusion.interop.records import PatientRef
from openinfusion.server.app import create_app
from tests.interop.test_orders import OrderEnv
from tests.interop.test_orders_status import result, status
from tests.server._server_support import (
    FakeClock,
    cheap_password_hashing,  # noqa: F401 (autouse)
    make_settings,
)
from tests.server.test_app_postgres import pg_url  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def oenv(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderEnv]:  # noqa: F811
    clock = FakeClock(datetime(2026, 12, 3, 14, 0, tzinfo=UTC))
    tmp: Path = tmp_path_factory.mktemp("orders-pg")
    app = create_app(make_settings(tmp, db_url=pg_url), clock=clock)
    with TestClient(app) as client:
        yield OrderEnv(client, app, clock)


def test_intake_on_postgresql(oenv: OrderEnv) -> None:
    pump_id, serial, patient = oenv.bed()
    order = oenv.order(serial, patient["mrn"])
    before = oenv.counts()
    with ThreadPoolExecutor(2) as pool:  # the same message from two connections at once
        first, second = pool.map(oenv.submit, [order, order])
    assert first.accepted and second.accepted
    assert first.order_id == second.order_id and first.command_id == second.command_id
    assert sorted([first.duplicate, second.duplicate]) == [False, True]  # one acted
    assert oenv.counts()[0] == before[0] + 1
    refused = oenv.submit(oenv.order(serial, patient["mrn"], dose="60 mcg/kg/min"))
    assert not refused.accepted and refused.issues[0].field == "dose"
    assert first.order_id is not None and first.command_id is not None
    result(oenv, pump_id, first.command_id, "awaiting_confirmation")
    assert status(oenv, first.order_id)[0] == "pre-populated"
    surviving = oenv.patient()
    merged = merge_patients(oenv.ctx, patient["mrn"], PatientRef(surviving["mrn"]), actor="i")
    assert merged.merged and len(merged.flagged) == 1
