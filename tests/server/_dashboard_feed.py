"""Pumps for the dashboard tests, speaking docs/pump-protocol.md to the real server.

Each :class:`FeedPump` enrols with a one-time token, completes the mutual handshake over
``/api/gateway/ws`` and sends signed, sequence-numbered envelopes, waiting for the server's
ack of each one so that a test knows the record is stored before it looks at the page.
The bodies are the ones the protocol names (status per channel, alarm raised/cleared).
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from websockets.sync.client import ClientConnection, connect

from openinfusion.security import generate_private_key
from openinfusion.security.envelope import (
    build_envelope,
    build_hello,
    parse_frame,
    verify_ack,
    verify_challenge,
    verify_welcome,
)
from openinfusion.security.keys import b64decode, b64encode, public_bytes


def enrolment_token(base_url: str, token: str, unit: str | None = None) -> str:
    """A one-time enrolment token issued by an account with the enrol permission."""
    response = httpx.post(
        f"{base_url}/api/enrolment-tokens",
        headers={"Authorization": f"Bearer {token}"},
        json={"unit": unit} if unit else None,
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["token"])


class FeedPump:
    """One pump on the wire: enrol, connect, send envelopes one by one (each acked)."""

    def __init__(
        self,
        base_url: str,
        enrol_token: str,
        *,
        serial: str,
        kind: str,
        model: str = "test pump",
        channels: int = 1,
    ) -> None:
        self.base_url = base_url
        self.key = generate_private_key()
        response = httpx.post(
            f"{base_url}/api/gateway/enrol",
            json={
                "token": enrol_token,
                "serial": serial,
                "model": model,
                "kind": kind,
                "channels": channels,
                "public_key": b64encode(public_bytes(self.key.public_key())),
            },
            timeout=10,
        )
        response.raise_for_status()
        enrolled = response.json()
        self.pump_id: str = enrolled["pump_id"]
        raw = b64decode(enrolled["server_public_key"], "server_public_key")
        self.server_key = Ed25519PublicKey.from_public_bytes(raw)
        self.seq = 0
        self.ws: ClientConnection | None = None
        self._stack = contextlib.ExitStack()

    def connect(self) -> None:
        url = self.base_url.replace("http://", "ws://", 1) + "/api/gateway/ws"
        ws = self._stack.enter_context(connect(url, open_timeout=10))
        challenge = verify_challenge(parse_frame(ws.recv(timeout=10)), self.server_key)
        ws.send(json.dumps(build_hello(self.key, self.pump_id, challenge.nonce, self.seq)))
        welcome = verify_welcome(parse_frame(ws.recv(timeout=10)), self.server_key, self.pump_id)
        self.seq = max(self.seq, welcome.last_stored_seq)
        self.ws = ws

    def send(self, kind: str, body: dict[str, Any], sent_at: datetime | None = None) -> int:
        """Send one envelope and wait until the server acks it (stored); returns its seq."""
        return self.send_many([(kind, body, sent_at)])

    def send_many(self, items: list[tuple[str, dict[str, Any], datetime | None]]) -> int:
        """Send envelopes back to back, as a pump replays its outbox after a time without
        a link (``sent_at`` is then in the past), and wait for the ack of the last."""
        if self.ws is None:
            self.connect()
        assert self.ws is not None
        for kind, body, sent_at in items:
            self.seq += 1
            frame = build_envelope(
                self.key,
                type=kind,
                pump_id=self.pump_id,
                seq=self.seq,
                body=body,
                sent_at=sent_at or datetime.now(UTC),
            )
            self.ws.send(json.dumps(frame))
        while True:
            reply = parse_frame(self.ws.recv(timeout=10))
            ack = reply.get("type") == "ack"
            if ack and verify_ack(reply, self.server_key, self.pump_id).seq >= self.seq:
                return self.seq
            # A command frame may arrive in between; these tests never send any.

    def status(self, channels: list[dict[str, Any]], **extra: Any) -> int:
        return self.send("status", {"channels": channels, **extra})

    def alarm(
        self, code: str, priority: str, channel: int | None, state: str = "raised", **extra: Any
    ) -> int:
        return self.send(
            "alarm",
            {"code": code, "priority": priority, "channel": channel, "state": state, **extra},
        )

    def close(self) -> None:
        self._stack.close()
        self.ws = None


def channel(
    number: int,
    drug: str,
    *,
    rate_ml_h: float,
    infused_ml: float,
    vtbi_left_ml: float | None,
    dose: float | None = None,
    dose_unit: str | None = None,
    state: str = "running",
) -> dict[str, Any]:
    """One channel of a status body, with time remaining worked out from rate and VTBI."""
    left_min = None
    if vtbi_left_ml is not None and rate_ml_h > 0:
        left_min = vtbi_left_ml / rate_ml_h * 60.0
    return {
        "channel": number,
        "state": state,
        "drug": drug,
        "dose": dose,
        "dose_unit": dose_unit,
        "rate_ml_h": rate_ml_h,
        "volume_infused_ml": infused_ml,
        "vtbi_remaining_ml": vtbi_left_ml,
        "time_remaining_min": left_min,
    }
