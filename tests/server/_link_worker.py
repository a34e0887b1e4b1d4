"""A pump process for the kill -9 tests: one simulated syringe pump with its crash-safe
journal and its link, sending fast (status every 10 ms, heartbeat every 20 ms, a minute of
pump time every 10 ms) until SIGTERM or SIGKILL; restarted, it recovers from the journal.

Usage: python -m tests.server._link_worker DATA_DIR
"""

from __future__ import annotations

import asyncio
import random
import signal
import sys
from pathlib import Path

from openinfusion.server.ward.link import PumpLink
from openinfusion.server.ward.outbox import Outbox
from openinfusion.server.ward.pumps import ScenarioPump
from tests.server.test_link import PROFILE


async def main(data_dir: Path) -> None:
    pump = ScenarioPump(PROFILE, "SER-KILL", random.Random(1), data_dir / "journal.db")
    outbox = Outbox(data_dir)
    link = PumpLink(
        pump.bedside,
        outbox,
        status_every_s=0.01,
        heartbeat_every_s=0.02,
        backoff_min_s=0.02,
        backoff_max_s=0.1,
        seed=1,
    )
    pump.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def drive() -> None:
        t = pump.device.t_s  # recovered from the journal after a kill
        while not stop.is_set():
            t += 60.0
            pump.advance_to(t)
            await asyncio.sleep(0.01)

    print("ready", flush=True)
    await asyncio.gather(link.run(stop), drive())


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
