"""Driver protocol: the engine's account is cross-checked against the mechanism's counter."""

from __future__ import annotations

from openinfusion.pump.channel import State
from openinfusion.pump.codes import Alarm
from openinfusion.pump.device import Device
from openinfusion.pump.drivers import DriverMonitor, Outcome, SimulatedDriver
from openinfusion.pump.mechanics import lvp
from openinfusion.pump.plan import Plan, Step, StepKind


def _running(rate: float = 100.0) -> Device:
    device = Device([lvp()])
    device.program(0, Plan("continuous", [Step(StepKind.CONTINUOUS, rate)]))
    device.start(0)
    return device


def run(device: Device, monitor: DriverMonitor, until_s: float, step_s: float = 60.0) -> None:
    t = device.t_s
    while t < until_s:
        t = min(until_s, t + step_s)
        device.advance_to(t)
        monitor.sync()


def test_healthy_drive_agrees_with_the_engine() -> None:
    device = _running()
    driver = SimulatedDriver()
    monitor = DriverMonitor(device, driver)
    monitor.sync()
    run(device, monitor, 3600.0)
    assert abs(driver.counter_ml(0, 3600.0) - 100.0) < 1e-6
    assert device.channels[0].state is State.RUNNING


def test_f17_missing_steps_raise_motor_fault_and_stop_flow() -> None:
    """RELIABILITY F-17: a drive that slips 10 % is caught and delivery stops."""
    device = _running()
    monitor = DriverMonitor(device, SimulatedDriver(slip=0.10))
    monitor.sync()
    run(device, monitor, 3600.0)
    assert device.board.is_active(Alarm.MOTOR_FAULT, 0)
    assert device.channels[0].state is State.ALARM
    alarm = next(r for r in device.records if r.kind == "alarm" and r.data["code"] == "motor_fault")
    assert alarm.t_s <= 120.0  # first check past tolerance: 0.05 mL / 10 % slip at 100 mL/h


def test_uncertain_commands_are_resent_not_assumed() -> None:
    device = _running(60.0)
    driver = SimulatedDriver(drop_every=2)
    monitor = DriverMonitor(device, driver)
    monitor.sync()  # first command confirmed
    device.titrate(0, 30.0)
    monitor.sync()  # second command lost in transit: uncertain, so not recorded as sent
    assert monitor.uncertain == 1
    monitor.sync()  # resent and confirmed
    before = driver.counter_ml(0, device.t_s)
    run(device, monitor, device.t_s + 3600.0)
    assert abs(driver.counter_ml(0, device.t_s) - before - 30.0) < 1e-6
    assert not device.board.is_active(Alarm.MOTOR_FAULT, 0)
    assert Outcome.UNCERTAIN.value == "uncertain"
