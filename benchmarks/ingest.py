"""Pump status messages stored per second end to end, beside raw SQLite inserts of the same rows.

Run: ``uv run python benchmarks/ingest.py`` (``--json`` for machine output; ``--pumps``
connections, ``--active`` of them streaming, ``--messages`` in all).

End to end: ``openinfusion serve`` in its own process on SQLite (WAL, synchronous FULL) and
a loopback port. ``--pumps`` simulated pumps enrol over REST (one-time tokens), open one
WebSocket each and pass the mutual handshake of docs/pump-protocol.md, and all stay
connected. Then ``--active`` of them stream ``--messages`` signed status envelopes in all,
each pump keeping at most ``--window`` unacknowledged, and the clock runs from the first send
to the last ack: stored/s counts envelopes the server acknowledged, which it does only after
its transaction commits (latency there is queueing, by construction). Then the fleet phase:
every connected pump sends one status every ``--period`` seconds (as pumps do), each signed
when due, for ``--fleet-seconds``; latency is send to ack of each (p50, p99) at that load. Envelopes are
signed before the timed phase: each real pump signs on its own CPU, and here one process
plays every pump on the same two cores as the server.

Baselines, same run: (1) raw: the same rows, read back from the server's database,
inserted into an empty copy of its ``pump_messages`` table (the server's own DDL) with
``executemany`` in transactions of ``--raw-batch`` rows, same pragmas; (2) the floor any
authenticated gateway pays: the same inserts, each transaction preceded by parsing and
Ed25519-verifying as many of the saturated phase's envelopes, in one process. The server's
CPU time per stored message (from /proc, both phases) is printed too: it does not depend on
what else the machine is running. Targets: stored/s ≥ 50 % of the raw rate; fleet p99 <
100 ms; every connection still open at the end, no sequence gap.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from openinfusion.security import (
    PublicKey,
    b64decode,
    b64encode,
    build_envelope,
    build_hello,
    generate_private_key,
    parse_frame,
    public_bytes,
    verify_challenge,
    verify_envelope,
    verify_welcome,
)

TARGET_RATIO = 0.5
TARGET_P99_MS = 100.0


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process ``pid`` has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status_body(i: int, k: int) -> dict[str, Any]:
    """A status body shaped like a ward syringe pump's."""
    return {
        "kind": "syringe",
        "t_s": 10.0 * k,
        "powered": True,
        "battery_percent": 90.0,
        "on_mains": True,
        "channels": [
            {
                "channel": 1,
                "state": "running",
                "drug": "norepinephrine",
                "therapy": "continuous",
                "dose": 0.1,
                "dose_unit": "mcg/kg/min",
                "rate_ml_h": 6.5 + (i % 7),
                "volume_infused_ml": 0.01 * k,
                "vtbi_ml": 50.0,
                "vtbi_remaining_ml": 50.0 - 0.01 * k,
                "time_remaining_min": 400.0,
            }
        ],
        "alarms": [],
        "library": {"name": "Sample", "version": "2026.11.0", "sha256": "00"},
    }


class Pump:
    """One simulated pump: its key, its enrolment and its WebSocket."""

    def __init__(self, serial: str) -> None:
        self.serial = serial
        self.key = generate_private_key()
        self.pump_id = ""
        self.server_key: PublicKey | None = None
        self.ws: ClientConnection | None = None

    async def enrol(self, client: httpx.AsyncClient, token: str) -> None:
        r = await client.post(
            "/api/gateway/enrol",
            json={
                "token": token,
                "serial": self.serial,
                "model": "Bench 1",
                "kind": "syringe",
                "channels": 1,
                "public_key": b64encode(public_bytes(self.key.public_key())),
            },
        )
        r.raise_for_status()
        self.pump_id = r.json()["pump_id"]
        raw = b64decode(r.json()["server_public_key"], "server_public_key")
        self.server_key = PublicKey.from_public_bytes(raw)

    async def connect(self, ws_url: str) -> None:
        assert self.server_key is not None
        self.ws = await connect(
            ws_url, open_timeout=60, max_size=1 << 20, ping_interval=None, compression=None
        )
        challenge = verify_challenge(parse_frame(await self.ws.recv()), self.server_key)
        await self.ws.send(json.dumps(build_hello(self.key, self.pump_id, challenge.nonce, 0)))
        verify_welcome(parse_frame(await self.ws.recv()), self.server_key, self.pump_id)

    async def report_periodically(
        self, index: int, first_seq: int, period_s: float, until: float, latencies: list[float]
    ) -> int:
        """Fleet load: one status every ``period_s`` (first at a random phase), each signed
        when due and timed to its ack; returns how many were acked."""
        assert self.ws is not None
        ws, seq, sent = self.ws, first_seq, 0
        await asyncio.sleep(period_s * ((index * 0.6180339887) % 1.0))
        while time.perf_counter() < until:
            frame = build_envelope(
                self.key, type="status", pump_id=self.pump_id, seq=seq,
                body=_status_body(index, seq), sent_at=datetime.now(UTC),
            )  # fmt: skip
            t0 = time.perf_counter()
            await ws.send(json.dumps(frame))
            while True:
                ack = parse_frame(await ws.recv())
                if ack.get("type") == "ack" and int(ack["seq"]) >= seq:
                    break
            latencies.append(time.perf_counter() - t0)
            seq, sent = seq + 1, sent + 1
            await asyncio.sleep(max(0.0, period_s - (time.perf_counter() - t0)))
        return sent

    def frames(self, n: int, index: int) -> list[str]:
        now = datetime.now(UTC)
        return [
            json.dumps(
                build_envelope(
                    self.key,
                    type="status",
                    pump_id=self.pump_id,
                    seq=k,
                    body=_status_body(index, k),
                    sent_at=now,
                )
            )
            for k in range(1, n + 1)
        ]

    async def stream(self, frames: list[str], window: int, latencies: list[float]) -> None:
        """Send ``frames`` keeping at most ``window`` unacked; record send-to-ack times."""
        assert self.ws is not None
        ws = self.ws
        sent_at: dict[int, float] = {}
        acked = 0
        next_seq = 1
        total = len(frames)
        while acked < total:
            while next_seq <= total and next_seq - acked <= window:
                sent_at[next_seq] = time.perf_counter()
                await ws.send(frames[next_seq - 1])
                next_seq += 1
            frame = parse_frame(await ws.recv())
            if frame.get("type") != "ack":
                continue
            upto = int(frame["seq"])
            now = time.perf_counter()
            for s in range(acked + 1, upto + 1):
                latencies.append(now - sent_at.pop(s))
            acked = max(acked, upto)


async def _gather_limited(coros: list[Any], limit: int) -> None:
    sem = asyncio.Semaphore(limit)

    async def run(c: Any) -> None:
        async with sem:
            await c

    await asyncio.gather(*(run(c) for c in coros))


async def _run(
    args: argparse.Namespace, url: str, creds: Path, server_pid: int
) -> tuple[dict[str, Any], list[tuple[PublicKey, str, str]]]:
    accounts = json.loads(creds.read_text(encoding="utf-8"))
    biomed = next(a for a in accounts if a["role"] == "biomed")
    pumps = [Pump(f"BENCH-{i:05d}") for i in range(args.pumps)]
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        r = await client.post(
            "/api/auth/token",
            data={"username": biomed["username"], "password": biomed["password"]},
        )
        r.raise_for_status()
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}

        async def enrol(p: Pump) -> None:
            for attempt in range(3):
                try:
                    t = await client.post("/api/enrolment-tokens", headers=auth)
                    t.raise_for_status()
                    await p.enrol(client, t.json()["token"])
                    return
                except httpx.TransportError:  # a kept-alive connection closed under us
                    if attempt == 2:
                        raise

        t0 = time.perf_counter()
        await _gather_limited([enrol(p) for p in pumps], 32)
        enrol_s = time.perf_counter() - t0

    ws_url = url.replace("http://", "ws://") + "/api/gateway/ws"
    t0 = time.perf_counter()
    await _gather_limited([p.connect(ws_url) for p in pumps], 64)
    connect_s = time.perf_counter() - t0

    active = pumps[: args.active]
    per_pump = max(1, args.messages // len(active))
    frames = [p.frames(per_pump, i) for i, p in enumerate(active)]
    latencies: list[float] = []
    cpu0 = _cpu_s(server_pid)
    t0 = time.perf_counter()
    await asyncio.gather(
        *(p.stream(f, args.window, latencies) for p, f in zip(active, frames, strict=True))
    )
    ingest_s = time.perf_counter() - t0
    ingest_cpu_s = _cpu_s(server_pid) - cpu0
    stored = per_pump * len(active)

    # Fleet load: every connected pump reports every --period seconds for --fleet-seconds.
    fleet_lat: list[float] = []
    until = time.perf_counter() + args.fleet_seconds
    firsts = [per_pump + 1 if i < len(active) else 1 for i in range(len(pumps))]
    cpu0 = _cpu_s(server_pid)
    t0 = time.perf_counter()
    fleet_sent = await asyncio.gather(
        *(p.report_periodically(i, firsts[i], args.period, until, fleet_lat)
          for i, p in enumerate(pumps))
    )  # fmt: skip
    fleet_s = time.perf_counter() - t0
    fleet_cpu_s = _cpu_s(server_pid) - cpu0
    fleet_lat.sort()

    still_open = sum(1 for p in pumps if p.ws is not None and p.ws.state.name == "OPEN")
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        monitor = next(a for a in accounts if a["role"] == "monitor")
        r = await client.post(
            "/api/auth/token",
            data={"username": monitor["username"], "password": monitor["password"]},
        )
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        listed = (await client.get("/api/pumps", headers=auth)).json()
    for p in pumps:
        if p.ws is not None:
            with contextlib.suppress(Exception):
                await p.ws.close()
    latencies.sort()
    signed = [
        (p.key.public_key(), p.pump_id, text)
        for p, fs in zip(active, frames, strict=True)
        for text in fs
    ]
    return {
        "pumps_connected": args.pumps,
        "connections_open_at_end": still_open,
        "pumps_online_on_server": sum(1 for p in listed if p.get("online")),
        "sequence_gaps": sum(len(p.get("gaps") or []) for p in listed),
        "enrol_s": round(enrol_s, 2),
        "connect_s": round(connect_s, 2),
        "active_pumps": len(active),
        "messages": stored,
        "ingest_s": round(ingest_s, 3),
        "stored_per_s": round(stored / ingest_s),
        "saturated_latency_p50_ms": round(1000 * statistics.median(latencies), 2),
        "saturated_latency_p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 2),
        "saturated_server_cpu_ms_per_message": round(1000 * ingest_cpu_s / stored, 3),
        "fleet_period_s": args.period,
        "fleet_messages": sum(fleet_sent),
        "fleet_per_s": round(sum(fleet_sent) / fleet_s),
        "latency_p50_ms": round(1000 * statistics.median(fleet_lat), 2),
        "latency_p99_ms": round(1000 * fleet_lat[int(0.99 * (len(fleet_lat) - 1))], 2),
        "fleet_server_cpu_ms_per_message": round(1000 * fleet_cpu_s / max(1, sum(fleet_sent)), 3),
        "fleet_server_cpu_share": round(fleet_cpu_s / fleet_s, 3),
    }, signed


def _raw_rate(
    server_db: Path, batch: int, signed: list[tuple[PublicKey, str, str]] | None = None
) -> tuple[float, int]:
    """Rows/s of plain batched inserts of the server's stored status rows into an empty
    copy of its pump_messages table (same DDL, WAL, synchronous FULL).

    With ``signed`` (public key, pump id, frame text of each saturated-phase envelope), the
    floor of any authenticated gateway instead: before each transaction the same number of
    envelopes is parsed and its Ed25519 signature verified (``verify_envelope``), in this
    process, and the rows inserted are the first ``len(signed)`` status rows."""
    src = sqlite3.connect(server_db)
    ddl = [
        row[0]
        for row in src.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'pump_messages' AND sql IS NOT NULL"
        )
    ]
    cols = [r[1] for r in src.execute("PRAGMA table_info(pump_messages)") if r[1] != "id"]
    rows = src.execute(
        f"SELECT {', '.join(cols)} FROM pump_messages WHERE type = 'status' ORDER BY id"
    ).fetchall()
    src.close()
    if signed is not None:
        rows = rows[: len(signed)]
    with tempfile.TemporaryDirectory() as tmp:
        dst = sqlite3.connect(Path(tmp) / "raw.db", isolation_level=None)
        dst.execute("PRAGMA journal_mode=WAL")
        dst.execute("PRAGMA synchronous=FULL")
        # The foreign key to pumps is not enforced here (no pumps table): the raw rate only
        # gains from that.
        for statement in ddl:
            dst.execute(statement)
        insert = (
            f"INSERT INTO pump_messages ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
        )
        t0 = time.perf_counter()
        for start in range(0, len(rows), batch):
            for key, pump_id, text in (signed or [])[start : start + batch]:
                verify_envelope(parse_frame(text), key, pump_id=pump_id)
            dst.execute("BEGIN")
            dst.executemany(insert, rows[start : start + batch])
            dst.execute("COMMIT")
        elapsed = time.perf_counter() - t0
        dst.close()
    return len(rows) / elapsed, len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pumps", type=int, default=5000, help="connections held")
    parser.add_argument("--active", type=int, default=500, help="pumps streaming")
    parser.add_argument("--messages", type=int, default=20000, help="status envelopes in all")
    parser.add_argument("--window", type=int, default=4, help="unacked envelopes per pump")
    parser.add_argument("--raw-batch", type=int, default=100, help="rows per raw transaction")
    parser.add_argument("--period", type=float, default=10.0, help="fleet: s between reports")
    parser.add_argument("--fleet-seconds", type=float, default=30.0, help="fleet phase length")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.active = min(args.active, args.pumps)

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "server"
        data.mkdir(mode=0o700)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "openinfusion.cli.main", "serve", "--port", str(port),
             "--data-dir", str(data)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 300  # a loaded machine imports slowly
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start")
                time.sleep(0.2)
            if os.environ.get("INGEST_SERVER_PID_FILE"):  # lets a profiler attach
                Path(os.environ["INGEST_SERVER_PID_FILE"]).write_text(str(server.pid))
            result, signed = asyncio.run(
                _run(args, url, data / "demo-credentials.json", server.pid)
            )
        finally:
            server.terminate()
            server.wait(30)
        db = next(data.glob("*.db"), None) or next(data.glob("*.sqlite*"))
        raw_per_s, raw_rows = _raw_rate(db, args.raw_batch)
        floor_per_s, _ = _raw_rate(db, args.raw_batch, signed)

    result["raw_rows"] = raw_rows
    result["raw_batch"] = args.raw_batch
    result["raw_insert_per_s"] = round(raw_per_s)
    result["ratio_to_raw"] = round(result["stored_per_s"] / raw_per_s, 3)
    result["verify_and_insert_per_s"] = round(floor_per_s)
    result["ratio_to_verify_and_insert"] = round(result["stored_per_s"] / floor_per_s, 3)
    result["meets_ratio_target"] = result["ratio_to_raw"] >= TARGET_RATIO
    result["meets_p99_target"] = result["latency_p99_ms"] < TARGET_P99_MS
    result["all_connections_held"] = result["connections_open_at_end"] == args.pumps
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"ingest benchmark: {args.pumps} pumps connected, {result['active_pumps']} streaming "
        f"{result['messages']} signed status envelopes (window {args.window})"
    )
    print(f"  enrol {result['enrol_s']} s, connect + handshake {result['connect_s']} s; "
          f"open at end {result['connections_open_at_end']}/{args.pumps}, online on server "
          f"{result['pumps_online_on_server']}, sequence gaps {result['sequence_gaps']}")  # fmt: skip
    print(
        f"  saturated, end to end (gateway, signed, SQLite): {result['stored_per_s']:,} "
        f"stored/s (queueing latency p50 {result['saturated_latency_p50_ms']} ms)"
    )
    print(
        f"  fleet load, every pump one status per {args.period:g} s: "
        f"{result['fleet_per_s']:,}/s, ack latency p50 {result['latency_p50_ms']} ms, "
        f"p99 {result['latency_p99_ms']} ms"
    )
    print(f"  server CPU per stored message: saturated "
          f"{result['saturated_server_cpu_ms_per_message']} ms, fleet "
          f"{result['fleet_server_cpu_ms_per_message']} ms "
          f"({result['fleet_server_cpu_share']:.0%} of one core)")  # fmt: skip
    print(f"  raw SQLite executemany ({args.raw_batch}/tx): {result['raw_insert_per_s']:>9,} rows/s "
          f"({raw_rows} rows)")  # fmt: skip
    print(f"  floor of an authenticated gateway (Ed25519 verify + the same inserts, one "
          f"process): {result['verify_and_insert_per_s']:,} rows/s; end to end is "
          f"{result['ratio_to_verify_and_insert']:.1%} of it")  # fmt: skip
    print(
        f"  ratio {result['ratio_to_raw']:.1%} of raw (target >= {TARGET_RATIO:.0%}: "
        f"{'met' if result['meets_ratio_target'] else 'NOT met'}); p99 target < "
        f"{TARGET_P99_MS:.0f} ms: {'met' if result['meets_p99_target'] else 'NOT met'}"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
