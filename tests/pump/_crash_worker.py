"""A journaled pump running a scripted infusion until it is killed (tests/pump/test_fault_loop.py).

Usage: ``python _crash_worker.py JOURNAL start|resume [STEP_DELAY_S]``

- ``start``: a new journal; channel 0 heparin (loading dose, then maintenance, clinician
  bolus, titration), channel 1 PCA morphine (loading dose, basal, patient demands).
- ``resume``: recover the journal after a crash, confirm both channels, resume and carry
  on with the rest of the schedule (a second crash then tests recovery of a recovery).

Pump time advances in fixed steps of ``STEP_S`` with a short real sleep between steps
(longer while a loading dose or a bolus runs, so that kills land there too), so the work
is deterministic and only the moment of the kill is random. After each step the
worker prints ``t ideal0 ideal1`` (displacement of each channel, mL) and flushes: what was
printed had certainly been displaced when the process died.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

from openinfusion.pump.channel import CommandRejected
from openinfusion.pump.codes import Alarm
from openinfusion.pump.device import Device
from openinfusion.pump.journal import SqliteJournal, recover
from openinfusion.pump.mechanics import lvp, pca_pump
from openinfusion.pump.plan import DrugInfo, Envelope, PcaSettings, Plan, Step, StepKind

STEP_S = 10.0
END_S = 2 * 3600.0
CHECKPOINT_S = 30.0
BUSY_DELAY_S = 0.02
HEPARIN_RATE = 12.0
PCA_BASAL = 1.0
# (pump time s, channel, action, args)
SCHEDULE: list[tuple[float, int, str, tuple[float, ...]]] = [
    (20.0, 1, "demand", ()),
    (120.0, 1, "demand", ()),
    (400.0, 1, "demand", ()),
    (600.0, 0, "bolus", (2.0, 300.0)),
    (780.0, 1, "demand", ()),
    (1200.0, 0, "titrate", (15.0,)),
    (1500.0, 1, "demand", ()),
    (2400.0, 0, "bolus", (1.5, 300.0)),
    (3000.0, 1, "demand", ()),
    (3700.0, 1, "demand", ()),
    (4500.0, 0, "titrate", (10.0,)),
    (5000.0, 1, "demand", ()),
]


def heparin() -> Plan:
    return Plan(
        "continuous",
        [
            Step(StepKind.LOADING, 300.0, volume_ml=5.0, label="loading dose"),
            Step(StepKind.CONTINUOUS, HEPARIN_RATE, label="maintenance"),
        ],
        vtbi_ml=40.0,
        drug=DrugInfo("heparin", 100.0, "units"),
        envelope=Envelope(
            max_rate_ml_h=30.0, max_bolus_ml=3.0, window_s=3600.0, window_max_amount=3000.0
        ),
    )


def morphine_pca() -> Plan:
    return Plan(
        "pca",
        [
            Step(StepKind.LOADING, 150.0, volume_ml=2.0, label="loading dose"),
            Step(StepKind.CONTINUOUS, PCA_BASAL, label="basal"),
        ],
        kvo_at_end=False,
        drug=DrugInfo("morphine", 1.0, "mg"),
        envelope=Envelope(max_rate_ml_h=4.0, max_bolus_ml=3.0),
        pca=PcaSettings(demand_ml=1.5, lockout_s=360.0, limits=((3600.0, 9.0), (14400.0, 24.0))),
    )


def busy(device: Device) -> bool:
    """A loading dose or a bolus is running: linger, so that kills land there too."""
    for ch in device.channels:
        if [o for o in ch.overlays if o.adds]:
            return True
        if ch.plan is not None and ch.plan.steps[ch.step_i].kind is StepKind.LOADING:
            return ch.rate_ml_h > 0
    return False


def apply(device: Device, channel: int, action: str, args: tuple[float, ...]) -> None:
    try:
        if action == "demand":
            device.demand(channel)
        elif action == "bolus":
            device.bolus(channel, args[0], args[1])
        elif action == "titrate":
            device.titrate(channel, args[0])
    except CommandRejected:
        pass  # journaled as rejected; the script goes on


def main(path: str, mode: str, delay_s: float) -> None:
    if mode == "start":
        device = Device(
            [lvp(), pca_pump()], journal=SqliteJournal(Path(path)), checkpoint_s=CHECKPOINT_S
        )
        print("READY", flush=True)
        device.program(0, heparin())
        device.program(1, morphine_pca())
        device.start(0)
        device.start(1)
    else:
        device = recover(path).device
        print("READY", flush=True)
        for ch in (0, 1):
            device.confirm_recovery(ch)
            device.acknowledge(ch, Alarm.CRASH_RECOVERED)
            with contextlib.suppress(CommandRejected):
                device.resume(ch)
    pending = [e for e in SCHEDULE if e[0] > device.t_s]
    t = device.t_s
    while t < END_S:
        t = min(END_S, t + STEP_S)
        while pending and pending[0][0] <= t:
            at, channel, action, args = pending.pop(0)
            device.advance_to(at)
            apply(device, channel, action, args)
        device.advance_to(t)
        ideal = " ".join(repr(ch.ideal_ml) for ch in device.channels)
        print(f"{t!r} {ideal}", flush=True)
        time.sleep(BUSY_DELAY_S if delay_s and busy(device) else delay_s)
    print("DONE", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 0.002)
