"""The alarm board: latching, temporary silence, escalation, IEC 60601-1-8 priorities.

HOSPITAL_REFERENCE §3 "Alarm UX" (GIP 3.1-3.2; Open PCA §6.4): priorities per IEC
60601-1-8, temporary silence that comes back by itself (GIP: at most 2 min), no way to
disable an alarm for good; RELIABILITY F-20: high priority is never downgraded.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openinfusion.pump.alarms import ESCALATE_S, INDICATORS, SILENCE_S, AlarmBoard
from openinfusion.pump.codes import Alarm, Event, Priority
from openinfusion.pump.device import Device
from openinfusion.pump.mechanics import lvp
from openinfusion.pump.plan import Plan, Step, StepKind

HIGH = Alarm.OCCLUSION_DOWNSTREAM
MEDIUM = Alarm.VTBI_COMPLETE
LOW = Alarm.RESERVOIR_LOW


def test_silence_is_at_most_two_minutes() -> None:
    assert SILENCE_S == 120.0  # GIP 3.2: temporary silence <= 2 min
    assert ESCALATE_S == 300.0


# ---- latching ---------------------------------------------------------------------------------


def test_high_priority_latches_until_acknowledged() -> None:
    board = AlarmBoard()
    assert board.raise_(HIGH, 0.0, 0)
    assert board.condition_cleared(HIGH, 0) is False  # still shown: latched
    assert board.is_active(HIGH, 0) and not board.condition(HIGH, 0)
    assert not board.any_stopping(0)  # the condition is over: flow may be resumed
    assert board.acknowledge(HIGH, 0)
    assert not board.is_active(HIGH, 0)


def test_acknowledged_high_alarm_leaves_when_its_condition_ends() -> None:
    board = AlarmBoard()
    board.raise_(HIGH, 0.0, 0)
    board.acknowledge(HIGH, 0)
    assert board.is_active(HIGH, 0) and board.any_stopping(0)  # condition still there
    assert board.condition_cleared(HIGH, 0) is True
    assert not board.is_active(HIGH, 0)


@pytest.mark.parametrize("alarm", [MEDIUM, LOW])
def test_medium_and_low_do_not_latch(alarm: Alarm) -> None:
    board = AlarmBoard()
    board.raise_(alarm, 0.0, 1)
    assert board.condition_cleared(alarm, 1) is True
    assert not board.is_active(alarm, 1)


def test_no_duplicate_annunciation_and_condition_comes_back() -> None:
    board = AlarmBoard()
    assert board.raise_(HIGH, 0.0, 0) is True
    assert board.raise_(HIGH, 5.0, 0) is False  # already shown
    board.condition_cleared(HIGH, 0)
    assert not board.condition(HIGH, 0)
    board.silence(HIGH, 8.0, 0)
    assert board.raise_(HIGH, 9.0, 0) is True  # the condition returns while latched
    assert board.condition(HIGH, 0) and board.any_stopping(0)
    assert board.active()[0].audible  # a new occurrence sounds again


def test_alarms_are_per_channel_and_device_alarms_stop_every_channel() -> None:
    board = AlarmBoard()
    board.raise_(HIGH, 0.0, 0)
    assert board.any_stopping(0) and not board.any_stopping(1)
    board.raise_(Alarm.BATTERY_DEPLETED, 0.0, None)
    assert board.any_stopping(1)


# ---- silence --------------------------------------------------------------------------------


def test_silence_times_out_and_re_annunciates() -> None:
    board = AlarmBoard()
    board.raise_(HIGH, 10.0, 0)
    assert board.silence(HIGH, 20.0, 0)
    (alarm,) = board.active()
    assert not alarm.audible
    assert board.next_event_s() == 20.0 + SILENCE_S
    board.update(20.0 + SILENCE_S - 1e-6)
    assert not alarm.audible
    board.update(20.0 + SILENCE_S)
    assert alarm.audible and board.is_active(HIGH, 0)  # silenced, never removed


def test_silence_of_an_inactive_alarm_does_nothing() -> None:
    assert AlarmBoard().silence(HIGH, 0.0, 0) is False


@settings(max_examples=50)
@given(st.lists(st.floats(0.0, 500.0), min_size=1, max_size=20))
def test_silence_never_disables_an_alarm(presses: list[float]) -> None:
    """Whatever the pattern of silence presses, the alarm sounds again within
    ``SILENCE_S`` of the last press and stays on the board."""
    board = AlarmBoard()
    board.raise_(HIGH, 0.0, 0)
    t = 0.0
    for gap in presses:
        t += gap
        board.update(t)
        board.silence(HIGH, t, 0)
        (alarm,) = board.active()
        assert alarm.silenced_until_s is not None and alarm.silenced_until_s <= t + SILENCE_S
    board.update(t + SILENCE_S)
    assert board.active()[0].audible


def test_device_silence_expires_on_pump_time() -> None:
    device = Device([lvp()])
    device.program(0, Plan("c", [Step(StepKind.CONTINUOUS, 10.0)]))
    device.start(0)
    device.inject(0, "door_open")
    device.silence(0, Alarm.DOOR_OPEN)
    assert [r.kind for r in device.records].count(Event.ALARM_SILENCED.value) == 1
    device.advance_to(SILENCE_S - 1.0)
    assert not device.board.active(0)[0].audible
    device.advance_to(SILENCE_S)
    assert device.board.active(0)[0].audible


# ---- escalation ------------------------------------------------------------------------------


def test_unacknowledged_medium_escalates_to_high_after_300_s() -> None:
    board = AlarmBoard()
    board.raise_(MEDIUM, 100.0, 0)
    assert board.next_event_s() == 100.0 + ESCALATE_S
    assert board.update(100.0 + ESCALATE_S - 1e-6) == []
    (escalated,) = board.update(100.0 + ESCALATE_S)
    assert escalated.priority is Priority.HIGH
    # never downgraded: now it latches like any high alarm
    assert board.condition_cleared(MEDIUM, 0) is False
    assert board.active()[0].priority is Priority.HIGH


def test_escalation_sounds_a_silenced_alarm_again() -> None:
    board = AlarmBoard()
    board.raise_(MEDIUM, 0.0, 0)
    board.silence(MEDIUM, ESCALATE_S - 10.0, 0)
    board.update(ESCALATE_S)
    (alarm,) = board.active()
    assert alarm.priority is Priority.HIGH and alarm.audible


def test_acknowledged_medium_and_low_alarms_do_not_escalate() -> None:
    board = AlarmBoard()
    board.raise_(MEDIUM, 0.0, 0)
    board.acknowledge(MEDIUM, 0)
    board.raise_(LOW, 0.0, 1)
    assert board.update(10 * ESCALATE_S) == []
    assert {a.priority for a in board.active()} == {Priority.MEDIUM, Priority.LOW}


def test_device_records_the_escalation() -> None:
    device = Device([lvp()])
    device.program(0, Plan("c", [Step(StepKind.CONTINUOUS, 60.0)], vtbi_ml=1.0))
    device.start(0)
    device.advance_to(3600.0)
    codes = [
        (round(r.t_s), r.data["code"], r.data["priority"])
        for r in device.records
        if r.kind == "alarm"
    ]
    assert codes == [(60, "vtbi_complete", "medium"), (360, "vtbi_complete", "high")]


# ---- priorities ------------------------------------------------------------------------------


def test_priorities_follow_iec_60601_1_8() -> None:
    """Every condition that stops flow (FAIL-SAFE) is high priority; indicators follow
    IEC 60601-1-8: high red flashing 1.4-2.8 Hz, medium yellow 0.4-0.8 Hz, low cyan
    constant."""
    for alarm in Alarm:
        assert isinstance(alarm.priority, Priority)
        if alarm.stops_flow:
            assert alarm.priority is Priority.HIGH, alarm
    assert INDICATORS[Priority.HIGH].colour == "red"
    assert INDICATORS[Priority.HIGH].flash_hz == (1.4, 2.8)
    assert INDICATORS[Priority.MEDIUM].colour == "yellow"
    assert INDICATORS[Priority.MEDIUM].flash_hz == (0.4, 0.8)
    assert INDICATORS[Priority.LOW].flash_hz is None
    assert len({a.code for a in Alarm}) == len(Alarm)


def test_active_alarms_are_listed_by_priority_then_age() -> None:
    board = AlarmBoard()
    board.raise_(LOW, 0.0, 0)
    board.raise_(MEDIUM, 1.0, 0)
    board.raise_(HIGH, 2.0, 0)
    board.raise_(Alarm.AIR_IN_LINE, 1.5, 0)
    assert [a.alarm for a in board.active()] == [Alarm.AIR_IN_LINE, HIGH, MEDIUM, LOW]
    assert board.active()[0].indicator.colour == "red"
