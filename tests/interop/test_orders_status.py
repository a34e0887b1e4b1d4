"""An order's status follows what the pump reported, and only forwards (RELIABILITY F-11):
unconfirmed until the pump answers, pre-populated, confirmed at the bedside, running,
completed or stopped; rejected or expired with the reason; results the pump sends again
after a reconnect, or its refusal of a replayed command, change nothing."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openinfusion.interop.order_tables import InfusionOrder
from openinfusion.interop.orders import current_order_for, live_status
from openinfusion.server.app import create_app
from openinfusion.server.permissions import Role
from tests.interop.test_orders import OrderEnv
from tests.server._server_support import (
    FakeClock,
    cheap_password_hashing,  # noqa: F401 (autouse)
    make_settings,
)


@pytest.fixture(scope="module")
def oenv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderEnv]:
    clock = FakeClock(datetime(2026, 12, 3, 9, 0, tzinfo=UTC))
    app = create_app(make_settings(tmp_path_factory.mktemp("order-status")), clock=clock)
    with TestClient(app) as client:
        yield OrderEnv(client, app, clock)


def placed(env: OrderEnv, **fields: Any) -> tuple[str, int, str]:
    """(pump id, order id, command id) of an accepted order on a fresh bed."""
    pump_id, serial, patient = env.bed()
    out = env.submit(env.order(serial, patient["mrn"], **fields))
    assert out.accepted and out.order_id is not None and out.command_id is not None
    return pump_id, out.order_id, out.command_id


def result(
    env: OrderEnv, pump_id: str, command_id: str, outcome: str, reason: str = "", **extra: Any
) -> int:
    body = {"command_id": command_id, "outcome": outcome, "reason": reason, "channel": 1, **extra}
    return env.send(pump_id, "command_result", {**body, "action": "program"})


def status(env: OrderEnv, order_id: int) -> tuple[str, str | None]:
    with env.ctx.db.read() as s:
        row = s.get(InfusionOrder, order_id)
        assert row is not None
        live = live_status(s, row, env.clock())
        return live.status, live.reason


def test_full_life_of_an_order(oenv: OrderEnv) -> None:
    pump_id, order_id, command_id = placed(oenv)
    assert status(oenv, order_id) == ("unconfirmed", None)
    result(oenv, pump_id, command_id, "awaiting_confirmation", "pre-populated: waits")
    assert status(oenv, order_id)[0] == "pre-populated"
    # the link dropped before the server's ack: the pump sends the same result again
    result(oenv, pump_id, command_id, "awaiting_confirmation", "pre-populated: waits")
    # the command arrived twice: the pump refuses the replay; the order is not rejected
    result(
        oenv, pump_id, command_id, "rejected", "command_id: was already received (replay refused)"
    )
    assert status(oenv, order_id)[0] == "pre-populated"
    oenv.clock.advance(20)
    result(
        oenv, pump_id, command_id, "accepted", "programmed and started", confirmed_at_bedside=True
    )
    assert status(oenv, order_id)[0] == "confirmed"
    oenv.status(pump_id, state="running", drug="dopamine", rate_ml_h=15.0, volume_infused_ml=0.0)
    assert status(oenv, order_id)[0] == "running"
    with oenv.ctx.db.read() as s:
        assert current_order_for(s, pump_id, 1, oenv.clock()) is not None
    # a late duplicate of the first answer does not move it back
    result(oenv, pump_id, command_id, "awaiting_confirmation", "pre-populated: waits")
    assert status(oenv, order_id)[0] == "running"
    oenv.send(pump_id, "event", {"kind": "infusion_completed", "channel": 1})
    oenv.status(pump_id, state="completed", drug="dopamine", rate_ml_h=0.0, volume_infused_ml=250.0)
    assert status(oenv, order_id) == ("completed", "infusion_completed")
    with oenv.ctx.db.read() as s:
        assert current_order_for(s, pump_id, 1, oenv.clock()) is None
    view = oenv.client.get(f"/api/orders/{order_id}", headers=oenv.h[Role.NURSE]).json()
    assert view["status"] == "completed" and view["confirmed_at"] is not None


def test_stopped_at_the_bedside(oenv: OrderEnv) -> None:
    pump_id, order_id, command_id = placed(oenv)
    result(oenv, pump_id, command_id, "awaiting_confirmation")
    result(oenv, pump_id, command_id, "accepted", confirmed_at_bedside=True)
    oenv.status(pump_id, state="running", drug="dopamine", rate_ml_h=15.0)
    oenv.status(pump_id, state="stopped", drug="dopamine", rate_ml_h=0.0)
    assert status(oenv, order_id) == ("stopped", "stopped")


def test_refused_by_the_pump_and_dropped(oenv: OrderEnv) -> None:
    pump_id, order_id, command_id = placed(oenv)
    result(oenv, pump_id, command_id, "rejected", "drug: is not in the library for Adult ICU")
    assert status(oenv, order_id) == ("rejected", "drug: is not in the library for Adult ICU")
    pump_id, order_id, command_id = placed(oenv)
    result(oenv, pump_id, command_id, "awaiting_confirmation")
    result(oenv, pump_id, command_id, "rejected", "pre-populated change dropped: replaced by x")
    assert status(oenv, order_id)[0] == "rejected"


def test_expired_on_the_pump_or_unanswered(oenv: OrderEnv) -> None:
    pump_id, order_id, command_id = placed(oenv)
    result(oenv, pump_id, command_id, "awaiting_confirmation")
    result(
        oenv,
        pump_id,
        command_id,
        "rejected",
        "not confirmed at the bedside before the command expired",
    )
    assert status(oenv, order_id)[0] == "expired"
    # no answer at all (the link was cut after the server sent): unconfirmed, then expired
    _pump, order_id, _command = placed(oenv)
    oenv.clock.advance(60)
    assert status(oenv, order_id)[0] == "unconfirmed"
    oenv.clock.advance(200)
    assert status(oenv, order_id) == (
        "expired",
        "no answer from the pump before the command deadline",
    )


OUTCOMES = st.sampled_from(
    [
        ("awaiting_confirmation", "pre-populated: waits for confirmation at the bedside"),
        ("accepted", "programmed and started"),
        ("rejected", "command_id: was already received (replay refused)"),
        ("rejected", "not confirmed at the bedside before the command expired"),
        ("rejected", "drug: refused"),
    ]
)
ORDER = ["unconfirmed", "pre-populated", "confirmed", "running"]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(results=st.lists(OUTCOMES, min_size=1, max_size=6))
def test_status_never_goes_back_and_start_needs_a_confirmation(
    oenv: OrderEnv, results: list[tuple[str, str]]
) -> None:
    """Whatever the pump sends, in whatever repetition, an order never moves backwards,
    and it is confirmed only if the pump reported the bedside confirmation."""
    pump_id, order_id, command_id = placed(oenv)
    seen: list[str] = []
    for outcome, reason in results:
        result(
            oenv, pump_id, command_id, outcome, reason, confirmed_at_bedside=outcome == "accepted"
        )
        seen.append(status(oenv, order_id)[0])
    for a, b in itertools.pairwise(seen):
        if a in ("rejected", "expired", "confirmed"):
            assert b == a, seen
        if a in ORDER and b in ORDER:
            assert ORDER.index(b) >= ORDER.index(a), seen
    if "confirmed" in seen:
        assert any(o == "accepted" for o, _ in results)
