"""Gateway store throughput: envelopes per second through the server's batch path, beside
raw SQLite batched inserts of the same rows.

Run: ``uv run python benchmarks/gateway_store.py`` (add ``--json`` for machine output).

The server path is what a pump connection does per batch (``gateway_batch.handle_batch``):
parse and verify each Ed25519 signature, look up already-stored seqs, insert, update gaps,
derive channel and infusion state, publish, commit — one transaction per batch, SQLite in
WAL mode with synchronous=FULL. The baseline, measured in the same run on the same kind of
file, is ``sqlite3.executemany`` of the same rows in one transaction per batch, nothing else.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openinfusion.security import build_envelope, generate_private_key
from openinfusion.security.envelope import envelope_digest
from openinfusion.server.app import open_context
from openinfusion.server.config import Settings
from openinfusion.server.gateway_batch import handle_batch
from openinfusion.server.models import Pump


def _status(i: int) -> dict[str, Any]:
    return {
        "kind": "syringe",
        "battery_percent": 90.0,
        "on_mains": True,
        "channels": [
            {
                "channel": 1,
                "state": "running",
                "drug": "heparin",
                "dose": 18.0,
                "dose_unit": "units/kg/h",
                "rate_ml_h": 12.6,
                "volume_infused_ml": 0.01 * i,
                "vtbi_remaining_ml": 100.0,
                "time_remaining_min": 480.0,
            }
        ],
    }


def _frames(pumps: int, per_pump: int) -> dict[str, tuple[Any, list[dict[str, Any]]]]:
    now = datetime(2026, 12, 3, 8, tzinfo=UTC)
    out = {}
    for p in range(pumps):
        key = generate_private_key()
        pid = f"P-bench{p:05d}"
        out[pid] = (
            key,
            [
                build_envelope(
                    key, type="status", pump_id=pid, seq=s + 1, body=_status(s), sent_at=now
                )
                for s in range(per_pump)
            ],
        )
    return out


def server_path(frames: dict[str, Any], batch: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "d"
        data.mkdir(mode=0o700)
        ctx, _ = open_context(Settings(data_dir=data))
        now = datetime.now(UTC)
        with ctx.db.write() as s:
            for pid in frames:
                s.add(
                    Pump(
                        id=pid,
                        serial=pid,
                        model="B",
                        kind="syringe",
                        channel_count=1,
                        unit=None,
                        public_key="-",
                        key_id="0" * 16,
                        enrolled_at=now,
                        last_seq=0,
                        gaps=[],
                    )
                )
        texts = {pid: [json.dumps(f) for f in fs] for pid, (_k, fs) in frames.items()}
        n = sum(len(t) for t in texts.values())
        t0 = time.perf_counter()
        for pid, (key, _f) in frames.items():
            for i in range(0, len(texts[pid]), batch):
                r = handle_batch(ctx, pid, key.public_key(), texts[pid][i : i + batch], "bench")
                assert r.close_code is None
        elapsed = time.perf_counter() - t0
        ctx.db.dispose()
        return n / elapsed


def raw_sqlite(frames: dict[str, Any], batch: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(Path(tmp) / "raw.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(
            "CREATE TABLE m (id INTEGER PRIMARY KEY, pump_id TEXT, seq INTEGER, type TEXT,"
            " sent_at TEXT, received_at TEXT, body TEXT, digest TEXT, signature TEXT,"
            " UNIQUE (pump_id, seq))"
        )
        rows = {
            pid: [
                (
                    pid,
                    f["seq"],
                    f["type"],
                    f["sent_at"],
                    "now",
                    json.dumps(f["body"]),
                    envelope_digest(f),
                    f["sig"],
                )
                for f in fs
            ]
            for pid, (_k, fs) in frames.items()
        }
        n = sum(len(r) for r in rows.values())
        t0 = time.perf_counter()
        for pump_rows in rows.values():
            for i in range(0, len(pump_rows), batch):
                db.execute("BEGIN")
                db.executemany(
                    "INSERT INTO m (pump_id, seq, type, sent_at, received_at, body,"
                    " digest, signature) VALUES (?,?,?,?,?,?,?,?)",
                    pump_rows[i : i + batch],
                )
                db.execute("COMMIT")
        elapsed = time.perf_counter() - t0
        db.close()
        return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pumps", type=int, default=20)
    ap.add_argument("--per-pump", type=int, default=200)
    ap.add_argument("--batch", type=int, default=50, help="envelopes per transaction")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    frames = _frames(args.pumps, args.per_pump)
    ours = statistics.median(server_path(frames, args.batch) for _ in range(args.repeats))
    raw = statistics.median(raw_sqlite(frames, args.batch) for _ in range(args.repeats))
    result = {
        "envelopes": args.pumps * args.per_pump,
        "batch": args.batch,
        "server_envelopes_per_s": round(ours),
        "raw_sqlite_rows_per_s": round(raw),
        "ratio_raw_over_server": round(raw / ours, 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['envelopes']} status envelopes, {args.batch} per transaction:")
        print(f"  server batch path   {ours:10,.0f} envelopes/s (verify, store, derive, commit)")
        print(f"  raw SQLite inserts  {raw:10,.0f} rows/s (executemany, commit)")
        print(f"  raw / server        {raw / ours:10.2f}x")


if __name__ == "__main__":
    main()
