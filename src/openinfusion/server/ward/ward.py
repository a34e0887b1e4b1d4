"""Run the simulated ward: N pumps, each with its own outbox and its own link to the server.

Pump time runs at ``speed`` × wall time: every ``tick_s`` of wall time each pump's engine
jumps (event-driven) to ``speed`` × the wall time elapsed since the ward started. Wall time
only decides *when* envelopes are sent; what a pump delivers depends on pump time alone.
A nurse confirms a pre-populated remote change after ``confirm_after_s`` wall seconds (with
probability ``confirm_probability``; otherwise it expires on the pump).

Two ways to run (``mode``): ``tasks`` — every pump an asyncio task in this process (the
demo default, light on a small machine); ``processes`` — every pump its own OS process
(``python -m openinfusion.server.ward.one_pump``), so killing one pump's process touches
no other pump.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from openinfusion.errors import InputError
from openinfusion.security import PublicKey
from openinfusion.server.ward.beds import PROFILES, build_pump, plan_ward
from openinfusion.server.ward.degradation import apply_wear
from openinfusion.server.ward.link import PumpLink, enrol
from openinfusion.server.ward.outbox import Outbox
from openinfusion.server.ward.pumps import SimPump

log = logging.getLogger("openinfusion.ward")


@dataclass(slots=True)
class WardOptions:
    server_url: str
    data_dir: Path
    pumps: int = 8
    speed: float = 60.0
    seed: int = 1
    tokens: list[str] = field(default_factory=list)
    credentials: Path | None = None
    duration_s: float | None = None  # wall seconds; None runs until stopped
    status_every_s: float = 5.0
    heartbeat_every_s: float = 10.0
    tick_s: float = 0.5
    confirm_after_s: float = 5.0
    confirm_probability: float = 0.8
    mode: str = "tasks"
    trusted_pharmacy_keys: Sequence[PublicKey] = ()
    only: int | None = None  # run just this pump of the ward (0-based; processes mode)

    def check(self) -> None:
        if not 1 <= self.pumps <= 500:
            raise InputError("pumps", self.pumps, "must be 1 to 500")
        if not 0 < self.speed <= 3600:
            raise InputError("speed", self.speed, "must be above 0 and at most 3600")
        if self.mode not in ("tasks", "processes"):
            raise InputError("mode", self.mode, "must be 'tasks' or 'processes'")
        if self.only is not None and not 0 <= self.only < self.pumps:
            raise InputError("only", self.only, f"must be 0 to {self.pumps - 1}")
        if not self.server_url.startswith(("http://", "https://")):
            raise InputError("server", self.server_url, "must start with http:// or https://")


async def bearer_token(client: httpx.AsyncClient, server_url: str, credentials: Path) -> str:
    """Log in with a biomed (or admin) account from a ``demo-credentials.json`` list."""
    try:
        accounts = json.loads(credentials.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError("credentials", str(credentials), f"cannot be read ({exc})") from None
    if not isinstance(accounts, list):
        raise InputError("credentials", str(credentials), "must be a list of accounts")
    chosen = None
    for role in ("biomed", "biomedical", "admin"):
        chosen = next((a for a in accounts if isinstance(a, dict) and a.get("role") == role), None)
        if chosen is not None:
            break
    if chosen is None:
        raise InputError("credentials", str(credentials), "holds no biomed or admin account")
    response = await client.post(
        server_url.rstrip("/") + "/api/auth/token",
        data={"username": chosen.get("username", ""), "password": chosen.get("password", "")},
    )
    if response.status_code != 200:
        raise InputError(
            "credentials", chosen.get("username"), f"login refused ({response.status_code})"
        )
    token = response.json().get("access_token")
    if not isinstance(token, str):
        raise InputError("credentials", chosen.get("username"), "no access_token in the answer")
    return token


async def enrolment_token(client: httpx.AsyncClient, server_url: str, bearer: str) -> str:
    """Ask the server for a one-time enrolment token (biomed or admin)."""
    response = await client.post(
        server_url.rstrip("/") + "/api/enrolment-tokens",
        headers={"Authorization": f"Bearer {bearer}"},
        json={},
    )
    if response.status_code not in (200, 201):
        raise InputError(
            "enrolment-tokens", response.status_code, f"refused: {response.text[:200]}"
        )
    token = response.json().get("token")
    if not isinstance(token, str):
        raise InputError("enrolment-tokens", "", "no token in the answer")
    return token


@dataclass(slots=True)
class WardPump:
    pump: SimPump
    outbox: Outbox
    link: PumpLink


class Ward:
    """The pumps of the ward and the tasks that run them (``tasks`` mode)."""

    def __init__(self, options: WardOptions) -> None:
        options.check()
        self.options = options
        self.pumps: list[WardPump] = []
        self.stop = asyncio.Event()
        self._confirm_rng = random.Random(f"{options.seed}:nurse")

    async def enrol_all(self) -> None:
        """Build every pump and enrol those not yet enrolled (tokens given or asked for)."""
        o = self.options
        tokens = list(o.tokens)
        plan = plan_ward(o.pumps, o.seed)
        if o.only is not None:
            plan = [plan[o.only]]
        async with httpx.AsyncClient(timeout=10.0) as client:
            bearer = None
            for name, serial, rng in plan:
                outbox = Outbox(o.data_dir / serial)
                pump = build_pump(name, serial, rng, o.data_dir / serial / "journal.db")
                apply_wear(pump)  # self-tests, and worn parts on some pumps
                if pump.device.checkpoint_s is not None:
                    # A journal checkpoint at least every wall second (every minute of
                    # pump time at 60x): faster time would make it thousands of fsyncs.
                    pump.device.checkpoint_s = max(60.0, o.speed)
                if outbox.enrolment() is None:
                    if tokens:
                        token = tokens.pop(0)
                    elif o.credentials is not None:
                        bearer = bearer or await bearer_token(client, o.server_url, o.credentials)
                        token = await enrolment_token(client, o.server_url, bearer)
                    else:
                        raise InputError(
                            "token",
                            "",
                            f"pump {serial} is not enrolled: give one --token per new pump or "
                            "--credentials of a biomed account",
                        )
                    await enrol(
                        outbox,
                        o.server_url,
                        token,
                        serial=serial,
                        model=PROFILES[name].model,
                        kind=PROFILES[name].kind,
                        channels=pump.channels,
                        client=client,
                    )
                link = PumpLink(
                    pump.bedside,
                    outbox,
                    status_every_s=o.status_every_s,
                    heartbeat_every_s=o.heartbeat_every_s,
                    seed=rng.randrange(2**32),
                )
                pump.bedside.trusted = list(o.trusted_pharmacy_keys)
                self.pumps.append(WardPump(pump, outbox, link))

    async def _drive(self, wp: WardPump, started: float) -> None:
        """Advance one pump's engine with wall time; the nurse confirms remote changes."""
        o = self.options
        wp.pump.start()
        t0 = wp.pump.device.t_s  # a recovered pump goes on from its own time
        seen: dict[int, float] = {}
        while not self.stop.is_set():
            elapsed = time.monotonic() - started
            wp.pump.advance_to(t0 + elapsed * o.speed)
            for index in list(wp.pump.bedside.pending):
                first = seen.setdefault(index, time.monotonic())
                if time.monotonic() - first >= o.confirm_after_s:
                    seen.pop(index, None)
                    if self._confirm_rng.random() < o.confirm_probability:
                        wp.link.confirm_at_bedside(index + 1)
            for index in list(seen):
                if index not in wp.pump.bedside.pending:
                    seen.pop(index)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), o.tick_s)

    async def run(self) -> dict[str, Any]:
        """Enrol, connect and run until stopped (or ``duration_s``); returns a summary."""
        await self.enrol_all()
        started = time.monotonic()
        cpu_started = time.process_time()
        tasks = []
        for wp in self.pumps:
            tasks.append(asyncio.create_task(wp.link.run(self.stop)))
            tasks.append(asyncio.create_task(self._drive(wp, started)))
        try:
            if self.options.duration_s is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), self.options.duration_s)
            else:
                await self.stop.wait()
        finally:
            self.stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            for wp in self.pumps:  # records of the last moments are kept for next time
                wp.link.flush_records()
        return self.summary(time.monotonic() - started, time.process_time() - cpu_started)

    def summary(self, wall_s: float, cpu_s: float = 0.0) -> dict[str, Any]:
        """Per pump and for the ward; ``cpu_s`` is this process's CPU time while running
        (after enrolment), so ``cpu_s / wall_s`` is the load the ward puts on one core."""
        pumps = []
        for wp in self.pumps:
            d = wp.pump.device
            pumps.append(
                {
                    "serial": wp.pump.serial,
                    "pump_id": wp.link.pump_id,
                    "profile": wp.pump.profile.name,
                    "pump_time_h": d.t_s / 3600.0,
                    "delivered_ml": sum(ch.pumped_ml for ch in d.channels),
                    "states": [ch.state.value for ch in d.channels],
                    "alarms_raised": sum(1 for r in d.records if r.kind == "alarm"),
                    "envelopes_sent": wp.link.stats["sent"],
                    "envelopes_acked": wp.link.stats["acked"],
                    "outbox_pending": wp.outbox.pending_count(),
                    "last_seq": wp.outbox.next_seq - 1,
                    "connects": wp.link.stats["connects"],
                    "commands": wp.link.stats["commands"],
                }
            )
        return {
            "server": self.options.server_url,
            "pumps": pumps,
            "wall_s": wall_s,
            "cpu_s": cpu_s,
            "envelopes_sent": sum(p["envelopes_sent"] for p in pumps),
            "speed": self.options.speed,
            "mode": self.options.mode,
        }


async def tokens_per_pump(options: WardOptions) -> list[str]:
    """One enrolment token per pump not yet enrolled ("" for the others), asked once for the
    whole ward with the biomed credentials (``processes`` mode: one login, not N)."""
    out: list[str] = []
    given = list(options.tokens)
    async with httpx.AsyncClient(timeout=10.0) as client:
        bearer = None
        for _, serial, _ in plan_ward(options.pumps, options.seed):
            db = options.data_dir / serial / "outbox.db"
            if db.exists():
                outbox = Outbox(options.data_dir / serial)
                enrolled = outbox.enrolment() is not None
                outbox.close()
                if enrolled:
                    out.append("")
                    continue
            if given:
                out.append(given.pop(0))
            elif options.credentials is not None:
                bearer = bearer or await bearer_token(
                    client, options.server_url, options.credentials
                )
                out.append(await enrolment_token(client, options.server_url, bearer))
            else:
                raise InputError(
                    "token", "", f"pump {serial} is not enrolled: give --token or --credentials"
                )
    return out


RESTART_DELAY_S = 1.0


async def run_processes(
    options: WardOptions,
    argv_for: Callable[[int, float | None], list[str]],
    stop: asyncio.Event | None = None,
) -> dict[str, Any]:
    """``processes`` mode: one OS process per pump, supervised. A pump process that dies
    (killed, crashed) is started again after ``RESTART_DELAY_S`` and recovers from its
    journal and outbox; one that exits 0 (its duration is over) or 2 (bad input) is not.
    ``argv_for(index, duration_s)`` gives a process's arguments. Returns per-pump restarts
    and the worst exit code."""
    stop = stop or asyncio.Event()
    deadline = None if options.duration_s is None else time.monotonic() + options.duration_s
    restarts = [0] * options.pumps

    async def supervise(index: int) -> int:
        while True:
            left = None if deadline is None else max(1.0, deadline - time.monotonic())
            proc = await asyncio.create_subprocess_exec(sys.executable, *argv_for(index, left))
            waiting = asyncio.create_task(proc.wait())
            stopping = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stopping in done:
                if proc.returncode is None:
                    proc.terminate()
                await waiting
                return 0
            stopping.cancel()
            code = proc.returncode or 0
            if code in (0, 2) or (deadline is not None and time.monotonic() >= deadline):
                return code
            restarts[index] += 1
            log.warning("pump process %d ended with %d: restarting", index, code)
            await asyncio.sleep(RESTART_DELAY_S)

    codes = await asyncio.gather(*(supervise(i) for i in range(options.pumps)))
    return {
        "mode": "processes",
        "pumps": options.pumps,
        "restarts": restarts,
        "exit_code": max((abs(c) for c in codes), default=0),
    }
