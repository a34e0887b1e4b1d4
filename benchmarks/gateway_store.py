"""Gateway store throughput: envelopes per second through the server's group-commit store
path, beside raw SQLite batched inserts of the same rows.

Run: ``uv run python benchmarks/gateway_store.py`` (add ``--json`` for machine output).

The server path is what the gateway does, split in its two halves. Verification
(``gateway_batch.verify_frames``: parse, check fields, Ed25519, digest) runs per connection;
the store (``gateway_batch.store_verified_group``: replay check, insert, seq bookkeeping,
derived channel and infusion state, live events, commit) runs in the group committer, many
connections' batches per transaction. Groups here are shaped like a fleet: ``--group``
pumps with one status envelope each per transaction (the hardest case: no envelope shares
its transaction's costs with another of its pump). SQLite in WAL mode, synchronous=FULL.
The baseline, measured in the same run on the same kind of file, is
``sqlite3.executemany`` of the same rows, ``--group`` per transaction, nothing else.
CPU times (``time.process_time``) are printed beside wall rates: they hold on a busy machine.
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
from openinfusion.server.gateway_batch import Verified, store_verified_group, verify_frames
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


Frames = dict[str, tuple[Any, list[dict[str, Any]]]]


def _frames(pumps: int, per_pump: int) -> Frames:
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


def verify_path(frames: Frames) -> tuple[dict[str, list[Verified]], float]:
    """Every envelope verified alone (a fleet connection's batch); CPU s per envelope."""
    out: dict[str, list[Verified]] = {}
    c0 = time.process_time()
    for pid, (key, fs) in frames.items():
        public = key.public_key()
        out[pid] = [verify_frames(pid, public, [json.dumps(f)]) for f in fs]
    n = sum(len(fs) for _k, fs in frames.values())
    return out, (time.process_time() - c0) / n


def store_path(
    frames: Frames, verified: dict[str, list[Verified]], group: int
) -> tuple[float, float]:
    """Envelopes/s and CPU s per envelope of the group store (verification excluded)."""
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
        # round k holds envelope k of every pump; a group is `group` pumps of one round
        jobs = [
            (pid, verified[pid][k], "bench")
            for k in range(max(len(v) for v in verified.values()))
            for pid in verified
            if k < len(verified[pid])
        ]
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, len(jobs), group):
            with ctx.db.write() as session:
                results = store_verified_group(ctx, session, jobs[i : i + group])
            assert all(r.close_code is None and r.stored == 1 for r in results)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        ctx.db.dispose()
        return len(jobs) / wall, cpu / len(jobs)


def raw_sqlite(frames: Frames, group: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(Path(tmp) / "raw.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(
            "CREATE TABLE m (id INTEGER PRIMARY KEY, pump_id TEXT, seq INTEGER, type TEXT,"
            " sent_at TEXT, received_at TEXT, body TEXT, digest TEXT, signature TEXT,"
            " UNIQUE (pump_id, seq))"
        )
        rows = [
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
            for pid, (_k, fs) in frames.items()
            for f in fs
        ]
        t0 = time.perf_counter()
        for i in range(0, len(rows), group):
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO m (pump_id, seq, type, sent_at, received_at, body,"
                " digest, signature) VALUES (?,?,?,?,?,?,?,?)",
                rows[i : i + group],
            )
            db.execute("COMMIT")
        elapsed = time.perf_counter() - t0
        db.close()
        return len(rows) / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pumps", type=int, default=200)
    ap.add_argument("--per-pump", type=int, default=10)
    ap.add_argument("--group", type=int, default=100, help="pumps (envelopes) per transaction")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    frames = _frames(args.pumps, args.per_pump)
    verified, verify_cpu = verify_path(frames)
    runs = [store_path(frames, verified, args.group) for _ in range(args.repeats)]
    store_rate = statistics.median(r[0] for r in runs)
    store_cpu = statistics.median(r[1] for r in runs)
    raw = statistics.median(raw_sqlite(frames, args.group) for _ in range(args.repeats))
    result = {
        "envelopes": args.pumps * args.per_pump,
        "group": args.group,
        "verify_cpu_us_per_envelope": round(verify_cpu * 1e6, 1),
        "store_cpu_us_per_envelope": round(store_cpu * 1e6, 1),
        "store_envelopes_per_s": round(store_rate),
        "raw_sqlite_rows_per_s": round(raw),
        "store_over_raw": round(store_rate / raw, 3),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['envelopes']} status envelopes, {args.group} pumps per transaction:")
        print(
            f"  verify (per connection)  {result['verify_cpu_us_per_envelope']:10,.1f} µs CPU each"
        )
        print(
            f"  group store              {result['store_cpu_us_per_envelope']:10,.1f} µs CPU each, "
            f"{store_rate:,.0f} envelopes/s (insert, bookkeeping, derive, events, commit)"
        )
        print(f"  raw SQLite inserts       {raw:10,.0f} rows/s (executemany, commit)")
        print(f"  group store / raw        {store_rate / raw:10.1%}")


if __name__ == "__main__":
    main()
