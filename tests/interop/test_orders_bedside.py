"""The bedside end of an EHR order: the pump only pre-populates it; a soft-limit crossing is
shown and overridden only at the bedside with a reason; the simulated nurse confirms after a
seeded delay of pump time that fits in the command's life (RELIABILITY C-17, B-04)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from openinfusion.pump.channel import State
from openinfusion.server.ward.pumps import ORDER_CONFIRM_S, ScenarioPump
from openinfusion.server.ward.ward import WardOptions
from tests.server.test_link import (
    PROFILE,
    RATE_ML_H,
    Receiver,
    _admit,
    _cmd,
    _pump,
    _result_for,
    _results,
    _run,
    _running,
)

PROGRAM = {"drug": "norepinephrine", "concentration": "16 mg/250 mL", "dose": "0.05 mcg/kg/min"}


def _stopped_pump() -> tuple[ScenarioPump, Any]:
    pump = ScenarioPump(PROFILE, "SER-BEDSIDE", random.Random(3))
    pump.start()
    admission, guard = _admit(_cmd("stop"))
    assert pump.bedside.apply(admission, guard).outcome == "accepted"
    return pump, guard


def test_soft_limit_order_is_prepopulated_and_needs_a_bedside_reason() -> None:
    pump, _ = _stopped_pump()
    soft = {**PROGRAM, "dose": "1.5 mcg/kg/min"}  # above the soft maximum, below the hard one
    admission, guard = _admit(_cmd("program", soft))
    outcome = pump.bedside.apply(admission, guard)
    assert outcome.outcome == "awaiting_confirmation" and "soft limit" in outcome.reason
    assert outcome.extra["soft_limits"] and "soft limit" in outcome.extra["soft_limits"][0]
    status = pump.bedside.channel_status(0)
    assert status["pending_remote"] == "program" and status["pending_soft_limits"]
    # without a reason the confirmation is refused and the order stays pre-populated
    refused = pump.bedside.confirm_at_bedside(0, guard)
    assert refused.outcome == "rejected" and refused.extra == {"kept": True}
    assert 0 in pump.bedside.pending and pump.device.channels[0].state is not State.RUNNING
    done = pump.bedside.confirm_at_bedside(0, guard, "checked with the prescriber")
    assert done.outcome == "accepted" and "overridden" in done.reason
    assert pump.device.channels[0].state is State.RUNNING
    assert pump.bedside.programmed[0].override is not None
    assert pump.bedside.programmed[0].override.reason == "checked with the prescriber"


def test_hard_limit_order_is_still_refused_by_the_pump() -> None:
    pump, _ = _stopped_pump()
    admission, guard = _admit(_cmd("program", {**PROGRAM, "dose": "5 mcg/kg/min"}))
    outcome = pump.bedside.apply(admission, guard)
    assert outcome.outcome == "rejected" and "hard" in outcome.reason
    assert not pump.bedside.pending


def test_nurse_confirms_after_a_seeded_pump_time_delay(tmp_path: Path) -> None:
    """The nurse arrives 20-45 s of pump time after the order appears and confirms it
    through the link (the confirmation is reported as the command's result), overriding a
    soft limit with a reason; nothing runs before she does."""

    async def body(receiver: Receiver) -> None:
        pump, _, link, _ = _pump(tmp_path, receiver)
        async with _running(link):
            await receiver.wait_for(lambda: "P-0001" in receiver.connections)
            stop = _cmd("stop")
            await receiver.send("P-0001", stop)
            await _result_for(receiver, stop["command_id"])
            order = _cmd("program", {**PROGRAM, "dose": "1.5 mcg/kg/min"})
            await receiver.send("P-0001", order)
            first = await _result_for(receiver, order["command_id"])
            assert first["outcome"] == "awaiting_confirmation"
            t0 = pump.device.t_s
            pump.advance_to(t0 + ORDER_CONFIRM_S[0] - 0.5)
            assert pump.device.channels[0].state is not State.RUNNING  # not before the nurse
            pump.advance_to(t0 + ORDER_CONFIRM_S[1] + 0.5)
            assert pump.device.channels[0].state is State.RUNNING
            await receiver.wait_for(
                lambda: sum(r["command_id"] == order["command_id"] for r in _results(receiver)) == 2
            )
        results = [r for r in _results(receiver) if r["command_id"] == order["command_id"]]
        assert results[1]["outcome"] == "accepted" and results[1]["confirmed_at_bedside"]
        assert results[1]["soft_limit_overridden"] is True
        assert pump.device.channels[0].rate_ml_h == pytest.approx(RATE_ML_H * 15)
        assert any("nurse confirms the order" in label for _, label in pump.log)

    _run(body)


@pytest.mark.parametrize("speed", [1.0, 60.0])
def test_nurse_delay_fits_the_command_life(speed: float) -> None:
    """At the ward's slowest and default time acceleration, the latest nurse arrives well
    inside the longest command life the server grants (command_ttl_s <= 60 s of wall time,
    the pump's monotonic clock), with room for the link."""
    from openinfusion.server.config import Settings

    ttl_max = Settings.model_fields["command_ttl_s"].metadata
    cap = next(m.le for m in ttl_max if hasattr(m, "le"))
    assert cap == 60
    assert WardOptions(server_url="http://x", data_dir=Path("."), speed=speed).speed == speed
    latest_wall_s = ORDER_CONFIRM_S[1] / speed
    assert latest_wall_s <= cap - 10
