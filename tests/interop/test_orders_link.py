"""RELIABILITY F-11 for EHR orders, with the real server and a real ward pump over a socket:
the link is cut after the server sends the order but before the pump's answer arrives, and
the other way round. Exactly one effect: the order shows "unconfirmed" until the pump's
answer is stored, the pump pre-populates it once, a re-sent order or a reconnect neither
pre-populates nor starts it twice, and it runs only after the bedside confirmation."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from pathlib import Path
from typing import Any

import httpx

from openinfusion.interop.order_tables import InfusionOrder
from openinfusion.interop.orders import OrderOutcome, live_status, submit_order
from openinfusion.interop.records import OrderRequest
from openinfusion.pump.channel import State
from openinfusion.server.app import create_app
from openinfusion.server.context import ServerContext
from openinfusion.server.models import Command, Pump
from openinfusion.server.permissions import Role
from openinfusion.server.ward.link import PumpLink, enrol
from openinfusion.server.ward.outbox import Outbox
from openinfusion.server.ward.pumps import ScenarioPump
from tests.interop.test_orders import OrderEnv
from tests.server._proxy import CuttingProxy
from tests.server._server_support import (
    LiveServer,
    cheap_password_hashing,  # noqa: F401 (autouse)
    make_settings,
)
from tests.server.test_link import PROFILE, RATE_ML_H

UNIT = "adult-icu"


def _status(ctx: ServerContext, order_id: int) -> str:
    with ctx.db.read() as s:
        row = s.get(InfusionOrder, order_id)
        assert row is not None
        return live_status(s, row).status


async def _until(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def test_f11_order_survives_cuts_in_both_directions(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        env = OrderEnv(client, app, app.state.ctx.now)  # type: ignore[arg-type]
        ctx: ServerContext = app.state.ctx

        async def body() -> None:
            proxy = CuttingProxy(server.port)
            await proxy.start()
            token = client.post(
                "/api/enrolment-tokens", headers=env.h[Role.BIOMED], json={"unit": UNIT}
            ).json()["token"]
            pump = ScenarioPump(PROFILE, "SER-F11", random.Random(5))
            outbox = Outbox(tmp_path / "pump")
            await enrol(
                outbox, proxy.url, token, serial="SER-F11", model="m", kind="syringe", channels=1
            )
            link = PumpLink(
                pump.bedside, outbox, status_every_s=0.2, heartbeat_every_s=0.5,
                backoff_min_s=1.5, backoff_max_s=2.0, seed=3,
            )  # fmt: skip
            pump.start()
            pump.device.stop(0)  # the bedside stopped the running syringe: the order replaces it
            patient = env.patient(weight_kg=80.0)
            env.associate(link.pump_id, 1, patient["id"])
            stop = asyncio.Event()
            task = asyncio.create_task(link.run(stop))
            try:
                with ctx.db.read() as s:
                    await _until(lambda: s.get(Pump, link.pump_id) is not None)

                def library_known() -> bool:
                    with ctx.db.read() as s2:
                        row = s2.get(Pump, link.pump_id)
                        return row is not None and row.library_version is not None

                await _until(library_known)
                # cut the link the moment the pump has the command, before it answers
                handle = link.handle_command

                def cut_after(frame: dict[str, Any]) -> dict[str, Any]:
                    out = handle(frame)
                    proxy.cut()
                    return out

                link.handle_command = cut_after  # type: ignore[method-assign]
                order = OrderRequest(
                    source="hl7",
                    placer_order_id="F11-1",
                    patient_mrn=patient["mrn"],
                    pump_serial="SER-F11",
                    channel=1,
                    drug_code=None,
                    drug_name="norepinephrine",
                    concentration="16 mg/250 mL",
                    dose="0.05 mcg/kg/min",
                    rate_ml_h=None,
                    vtbi_ml=None,
                    message_control_id="F11-MSG-1",
                    sending_application="EHR",
                )
                out: OrderOutcome = await asyncio.to_thread(
                    submit_order, ctx, order, actor="interface1"
                )
                assert out.accepted and out.order_id is not None
                await _until(lambda: 0 in pump.bedside.pending)
                assert proxy.cuts == 1
                # the pump has it; its answer has not reached the server: unconfirmed
                assert _status(ctx, out.order_id) == "unconfirmed"
                link.handle_command = handle  # type: ignore[method-assign]
                await _until(lambda: _status(ctx, out.order_id) == "pre-populated")
                assert pump.device.channels[0].state is not State.RUNNING  # never auto-started

                # the EHR sends the same message again, and the link drops once more
                again = await asyncio.to_thread(submit_order, ctx, order, actor="interface1")
                assert again.duplicate and again.command_id == out.command_id
                proxy.cut()
                await _until(lambda: link.connected and link.stats["connects"] >= 3)
                await asyncio.sleep(0.5)
                assert link.stats["commands"] == 1  # delivered once, never again
                with ctx.db.read() as s:
                    assert s.query(Command).filter(Command.pump_id == link.pump_id).count() == 1

                # the reverse: the pump confirms and the link is cut before the server's ack
                # of that confirmation reaches the pump
                acks = link._ack
                link._ack = lambda seq: None  # type: ignore[method-assign]
                link.confirm_at_bedside(1)
                assert pump.device.channels[0].state is State.RUNNING
                await _until(lambda: _status(ctx, out.order_id) in ("confirmed", "running"))
                proxy.cut()
                link._ack = acks  # type: ignore[method-assign]
                await _until(lambda: _status(ctx, out.order_id) == "running")
                await _until(lambda: outbox.acked_seq >= outbox.next_seq - 1)
                remote = [
                    r
                    for r in pump.device.records
                    if r.kind == "command" and r.data.get("command") == "program"
                    and r.data.get("remote") == out.command_id
                ]  # fmt: skip
                assert len(remote) == 1  # programmed once, whatever the link did
                assert pump.device.channels[0].rate_ml_h == RATE_ML_H / 2
                assert _status(ctx, out.order_id) == "running"
            finally:
                stop.set()
                await task
                await proxy.stop()

        asyncio.run(asyncio.wait_for(body(), 120))
        with contextlib.suppress(Exception):
            client.close()
