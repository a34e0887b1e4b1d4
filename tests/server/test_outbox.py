"""The pump's outbox: seq continuity, append-before-send, acks, replay, seen commands.

RELIABILITY F-01/F-03 (kill -9 of the pump process at random points while it sends: seqs
continuous, nothing lost, nothing stored twice or changed on the receiving side), C-05
(a private key per pump, mode 0600), C-07 (seen commands persist across restarts).
"""

from __future__ import annotations

import asyncio
import os
import random
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openinfusion.errors import InputError
from openinfusion.security import b64encode, key_id, public_bytes
from openinfusion.security.envelope import build_envelope, verify_envelope
from openinfusion.server.ward.link import PumpLink
from openinfusion.server.ward.outbox import KEY_FILE, Outbox
from openinfusion.server.ward.pumps import ScenarioPump
from tests.server._receiver import Receiver
from tests.server.test_link import PROFILE, SERVER_KEY

ROOT = Path(__file__).resolve().parents[2]


def _append(outbox: Outbox, kind: str = "heartbeat", body: dict[str, Any] | None = None) -> Any:
    return outbox.append(
        kind,
        lambda seq: build_envelope(
            outbox.key,
            type=kind,
            pump_id="P-1",
            seq=seq,
            body=body or {},
            sent_at=__import__("datetime").datetime.now(__import__("datetime").UTC),
        ),
    )


def test_c05_key_generated_once_private_and_unique(tmp_path: Path) -> None:
    a, b = Outbox(tmp_path / "a"), Outbox(tmp_path / "b")
    mode = stat.S_IMODE(os.stat(tmp_path / "a" / KEY_FILE).st_mode)
    assert mode == 0o600
    assert key_id(a.key) != key_id(b.key)
    a.close()
    assert key_id(Outbox(tmp_path / "a").key) == key_id(a.key)


def test_seq_survives_restart_ack_and_replay(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    frames = [_append(outbox) for _ in range(5)]
    assert [f["seq"] for f in frames] == [1, 2, 3, 4, 5]
    assert outbox.ack(3) == 3
    outbox.close()
    outbox = Outbox(tmp_path)
    assert outbox.next_seq == 6 and outbox.acked_seq == 3
    assert [f["seq"] for f in outbox.pending(after=3)] == [4, 5]
    assert [f["seq"] for f in outbox.pending(after=4)] == [5]
    verify_envelope(outbox.pending()[0], outbox.key.public_key(), pump_id="P-1")
    assert _append(outbox)["seq"] == 6
    with pytest.raises(InputError, match="beyond"):
        outbox.ack(7)
    assert outbox.integrity_ok()


def test_failed_build_consumes_no_seq(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)

    def broken(seq: int) -> dict[str, Any]:
        raise ValueError("no")

    with pytest.raises(ValueError):
        outbox.append("status", broken)
    assert _append(outbox)["seq"] == 1


@settings(max_examples=40, deadline=None)
@given(ops=st.lists(st.one_of(st.just("append"), st.integers(0, 30)), max_size=40))
def test_outbox_holds_exactly_the_unacked_in_order(tmp_path_factory: Any, ops: list[Any]) -> None:
    """Property: after any sequence of appends and acks, the outbox holds exactly the seqs
    above the highest ack, in order, and seqs are 1..n with no gap."""
    outbox = Outbox(tmp_path_factory.mktemp("o"))
    acked = 0
    for op in ops:
        if op == "append":
            _append(outbox)
        elif op < outbox.next_seq:
            outbox.ack(op)
            acked = max(acked, op)
    top = outbox.next_seq - 1
    assert [f["seq"] for f in outbox.pending()] == list(range(acked + 1, top + 1))
    outbox.close()


def test_c07_seen_store_persists(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    assert outbox.claim(["id:a", "nonce:x"], "t")
    assert not outbox.claim(["id:b", "nonce:x"], "t")
    assert "id:b" not in outbox  # nothing recorded from a refused claim
    outbox.close()
    again = Outbox(tmp_path)
    assert "id:a" in again and "nonce:x" in again
    assert not again.claim(["id:a"], "t")


def test_f01_kill_9_while_sending_loses_nothing_and_stores_nothing_twice(
    tmp_path: Path,
) -> None:
    """F-01/F-03: a real pump process is killed with SIGKILL at random points while it
    sends, and restarted, six times; then a last restart drains the outbox. The receiver
    holds every seq from 1 to the last one the pump ever took, each once, none changed;
    and, the pump recovering from its journal each time, the volume it reports never
    goes back (I2)."""
    rng = random.Random(20261203)
    data = tmp_path / "pump"
    outbox = Outbox(data)
    outbox.pin_server("P-KILL", b64encode(public_bytes(SERVER_KEY.public_key())), "")
    pump_key = outbox.key.public_key()
    outbox.close()

    async def main() -> None:
        receiver = Receiver(SERVER_KEY)
        await receiver.start()
        receiver.add_pump("P-KILL", pump_key)
        seed = Outbox(data)
        seed.pin_server(
            "P-KILL", b64encode(public_bytes(SERVER_KEY.public_key())), receiver.url
        )  # same key; only the address is new
        seed.close()
        record = receiver.pumps["P-KILL"]
        kills = 0
        try:
            for _ in range(6):
                before = len(record.stored)
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "tests.server._link_worker",
                    str(data),
                    cwd=ROOT,
                    stdout=asyncio.subprocess.PIPE,
                )
                assert proc.stdout is not None
                await asyncio.wait_for(proc.stdout.readline(), 30)
                await receiver.wait_for(lambda b=before: len(record.stored) > b + 5, 30)
                await asyncio.sleep(rng.uniform(0.0, 0.4))
                proc.kill()
                await proc.wait()
                kills += 1
            # last restart, in this process: drain the outbox
            final = Outbox(data)
            assert final.integrity_ok()
            top = final.next_seq - 1
            pump = ScenarioPump(PROFILE, "SER-KILL", random.Random(1), data / "journal.db")
            link = PumpLink(
                pump.bedside, final, backoff_min_s=0.02, status_every_s=60, heartbeat_every_s=60
            )
            stop = asyncio.Event()
            task = asyncio.create_task(link.run(stop))
            await receiver.wait_for(lambda: record.contiguous >= top and link.connected, 20)
            await receiver.wait_for(lambda: final.acked_seq >= top, 20)
            stop.set()
            await task
            assert sorted(record.stored) == list(range(1, max(record.stored) + 1))
            assert max(record.stored) >= top
            assert record.tampered == 0, "a seq was reused for other content"
            assert kills == 6 and len(record.stored) > 6 * 5
            # I2 across the kills: the pump recovered from its journal each time, so the
            # volume it reports never goes back, and it reported each restart.
            volumes = [
                f["body"]["channels"][0]["volume_infused_ml"] for f in record.of_type("status")
            ]
            assert volumes == sorted(volumes) and volumes[-1] > 0
            kinds = [f["body"]["kind"] for f in record.of_type("event")]
            assert kinds.count("recovered") >= 5
        finally:
            await receiver.stop()

    asyncio.run(main())
