"""Signed frames of the pump ⇄ server protocol (docs/pump-protocol.md, version 1).

One implementation for both ends. Every frame is a JSON object whose ``sig`` is the
sender's Ed25519 signature over :func:`canonical_json` of the frame without ``sig``. Each
frame kind has an exact field set (no field more, none less), so a frame of one kind can
never be read as another. Server-signed: ``challenge``, ``welcome``, ``ack``, ``command``.
Pump-signed: ``hello`` and the envelopes (``status``, ``event``, ``alarm``, ``heartbeat``,
``command_result``).

Verification never trusts a field before the signature checks out, and every refusal is a
:class:`FrameRejected` naming the field, the value and the rule. Times on the wire are UTC
ISO 8601 with milliseconds and a ``Z`` (``2026-12-03T08:00:00.000Z``). Durations are
seconds.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from openinfusion.errors import InputError
from openinfusion.security.keys import (
    PrivateKey,
    PublicKey,
    b64decode,
    b64encode,
    canonical_json,
    key_id,
    sign,
    verify,
)

PROTOCOL_VERSION: Final = 1
#: Largest frame either end parses, in bytes of UTF-8 (RELIABILITY C-19: bounded parsing).
MAX_FRAME_BYTES: Final = 256 * 1024
#: A command lives at most this long after issue, in seconds (spec: "at most 60 s").
MAX_COMMAND_TTL_S: Final = 60.0
#: Wall-clock disagreement tolerated before a command counts as future-dated or stale, s.
#: Wall time may only shorten a command's life, never lengthen it (RELIABILITY C-25, B-17).
WALL_SKEW_TOLERANCE_S: Final = 300.0
NONCE_BYTES: Final = 32

PUMP_MESSAGE_TYPES: Final = ("status", "event", "alarm", "heartbeat", "command_result")
COMMAND_ACTIONS: Final = (
    "pause",
    "resume",
    "stop",
    "titrate",
    "program",
    "start",
    "bolus",
    "activate_library",
    "silence_remote_view",
)
COMMAND_OUTCOMES: Final = ("accepted", "rejected", "awaiting_confirmation")

_ENVELOPE_FIELDS = frozenset({"v", "type", "pump_id", "seq", "sent_at", "body", "key_id", "sig"})
_COMMAND_FIELDS = frozenset(
    {
        "v",
        "type",
        "command_id",
        "pump_id",
        "channel",
        "action",
        "params",
        "issued_by",
        "issued_at",
        "expires_at",
        "nonce",
        "key_id",
        "sig",
    }
)
_CHALLENGE_FIELDS = frozenset({"type", "nonce", "server_key_id", "sig"})
_HELLO_FIELDS = frozenset({"type", "pump_id", "nonce", "last_acked_seq", "sig"})
_WELCOME_FIELDS = frozenset({"type", "pump_id", "last_stored_seq", "sig"})
_ACK_FIELDS = frozenset({"type", "pump_id", "seq", "sig"})
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_ID_TEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_SIG_BYTES = 64


class FrameRejected(InputError):
    """A frame failed parsing or verification; ``field`` says where, ``rule`` why."""


# --------------------------------------------------------------------------------- helpers


def utc_text(when: datetime) -> str:
    """``when`` as wire text: UTC, milliseconds, trailing ``Z``."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise InputError("time", when.isoformat(), "must carry a time zone")
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_utc(field: str, text: object) -> datetime:
    """Parse wire time text; it must be ISO 8601 in UTC (``Z`` or ``+00:00``)."""
    if not isinstance(text, str) or not 10 <= len(text) <= 40:
        raise FrameRejected(field, _short(text), "must be an ISO 8601 UTC time text")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise FrameRejected(field, text, "is not an ISO 8601 time") from None
    if when.tzinfo is None or when.utcoffset() != timedelta(0):
        raise FrameRejected(field, text, "must be in UTC (end in Z)")
    return when


def new_nonce() -> bytes:
    """32 bytes from the operating system's CSPRNG."""
    return os.urandom(NONCE_BYTES)


def parse_frame(text: str | bytes) -> dict[str, Any]:
    """Strictly parse one frame: size-bounded, UTF-8, a JSON object, no duplicate keys, no
    NaN/Infinity. No signature is checked here."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if len(raw) > MAX_FRAME_BYTES:
        raise FrameRejected("frame", f"{len(raw)} bytes", f"over the {MAX_FRAME_BYTES}-byte limit")
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FrameRejected("frame", "", "is not UTF-8 text") from None
    try:
        value = json.loads(decoded, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise FrameRejected("frame", "", f"is not JSON ({exc.msg} at {exc.pos})") from None
    except RecursionError:
        raise FrameRejected("frame", "", "is nested too deeply") from None
    if not isinstance(value, dict):
        raise FrameRejected("frame", type(value).__name__, "must be a JSON object")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise FrameRejected("frame", k, "has a duplicate key")
        out[k] = v
    return out


def _no_constants(name: str) -> Any:
    raise FrameRejected("frame", name, "NaN and Infinity are not JSON")


def _short(value: object) -> object:
    if isinstance(value, str) and len(value) > 60:
        return value[:60] + "…"
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return type(value).__name__


def _signed_bytes(frame: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in frame.items() if k != "sig"}
    try:
        return canonical_json(body)
    except ValueError:
        raise FrameRejected("frame", "", "holds a non-finite number (NaN or Infinity)") from None
    except TypeError as exc:
        raise FrameRejected("frame", "", f"holds a value JSON cannot carry ({exc})") from None


def _signed(key: PrivateKey, frame: dict[str, Any]) -> dict[str, Any]:
    frame["sig"] = b64encode(sign(key, _signed_bytes(frame)))
    return frame


def _check_fields(frame: Mapping[str, Any], expected: frozenset[str], kind: str) -> None:
    if not isinstance(frame, Mapping):
        raise FrameRejected(kind, type(frame).__name__, "must be a JSON object")
    missing = expected - set(frame)
    if "sig" in missing:
        raise FrameRejected(f"{kind}.sig", None, "is missing: unsigned frames are refused")
    if missing:
        raise FrameRejected(kind, ", ".join(sorted(missing)), "missing fields")
    extra = set(frame) - expected
    if extra:
        raise FrameRejected(kind, ", ".join(sorted(extra)), "unknown fields")


def _b64(text: object, field: str) -> bytes:
    """Base64 decoded, or :class:`FrameRejected` naming the field."""
    try:
        return b64decode(text, field)
    except FrameRejected:
        raise
    except InputError as exc:
        raise FrameRejected(exc.field, exc.value, exc.rule) from None


def _check_sig(frame: Mapping[str, Any], key: PublicKey, kind: str) -> None:
    text = frame.get("sig")
    sig = _b64(text, f"{kind}.sig") if isinstance(text, str) else None
    if sig is None or len(sig) != _SIG_BYTES or b64encode(sig) != text:
        raise FrameRejected(f"{kind}.sig", _short(text), "is not a canonical base64 signature")
    if not verify(key, sig, _signed_bytes(frame)):
        raise FrameRejected(
            f"{kind}.sig", _short(text), "does not verify: wrong key or the frame was changed"
        )


def _text(frame: Mapping[str, Any], field: str, kind: str, pattern: re.Pattern[str]) -> str:
    value = frame.get(field)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise FrameRejected(f"{kind}.{field}", _short(value), f"must match {pattern.pattern}")
    return value


def _count(frame: Mapping[str, Any], field: str, kind: str, minimum: int) -> int:
    value = frame.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FrameRejected(f"{kind}.{field}", _short(value), f"must be an integer ≥ {minimum}")
    return value


def _nonce(frame: Mapping[str, Any], field: str, kind: str) -> bytes:
    text = frame.get(field)
    raw = _b64(text, f"{kind}.{field}")
    if len(raw) != NONCE_BYTES or b64encode(raw) != text:
        raise FrameRejected(
            f"{kind}.{field}", _short(text), f"must be {NONCE_BYTES} bytes in canonical base64"
        )
    return raw


def _pump_id_matches(kind: str, got: str, expected: str | None) -> None:
    if expected is not None and got != expected:
        raise FrameRejected(f"{kind}.pump_id", got, f"is not this pump ({expected})")


# ------------------------------------------------------------------------------- handshake


@dataclass(frozen=True, slots=True)
class Challenge:
    nonce: bytes
    server_key_id: str


@dataclass(frozen=True, slots=True)
class Hello:
    pump_id: str
    nonce: bytes
    last_acked_seq: int


@dataclass(frozen=True, slots=True)
class Welcome:
    pump_id: str
    last_stored_seq: int


@dataclass(frozen=True, slots=True)
class Ack:
    pump_id: str
    seq: int


def build_challenge(server_key: PrivateKey, nonce: bytes | None = None) -> dict[str, Any]:
    """The server's first frame: a fresh nonce the pump must sign back."""
    raw = new_nonce() if nonce is None else nonce
    if len(raw) != NONCE_BYTES:
        raise InputError("nonce", len(raw), f"must be {NONCE_BYTES} bytes")
    frame = {"type": "challenge", "nonce": b64encode(raw), "server_key_id": key_id(server_key)}
    return _signed(server_key, frame)


def verify_challenge(frame: Mapping[str, Any], server_key: PublicKey) -> Challenge:
    """Check a challenge against the pinned server key."""
    _check_fields(frame, _CHALLENGE_FIELDS, "challenge")
    if frame["type"] != "challenge":
        raise FrameRejected("challenge.type", _short(frame["type"]), "must be 'challenge'")
    kid = _text(frame, "server_key_id", "challenge", _KEY_ID)
    if kid != key_id(server_key):
        raise FrameRejected("challenge.server_key_id", kid, "is not the pinned server key")
    _check_sig(frame, server_key, "challenge")
    return Challenge(nonce=_nonce(frame, "nonce", "challenge"), server_key_id=kid)


def build_hello(
    pump_key: PrivateKey, pump_id: str, nonce: bytes, last_acked_seq: int
) -> dict[str, Any]:
    """The pump's answer: the server's nonce signed with the pump key."""
    frame = {
        "type": "hello",
        "pump_id": pump_id,
        "nonce": b64encode(nonce),
        "last_acked_seq": last_acked_seq,
    }
    return _signed(pump_key, frame)


def hello_pump_id(frame: Mapping[str, Any]) -> str:
    """The pump id a hello claims, unverified: the server uses it to look up the key."""
    _check_fields(frame, _HELLO_FIELDS, "hello")
    return _text(frame, "pump_id", "hello", _ID_TEXT)


def verify_hello(frame: Mapping[str, Any], pump_key: PublicKey, expected_nonce: bytes) -> Hello:
    """Check a hello against the enrolled pump key and the nonce this connection sent."""
    pump_id = hello_pump_id(frame)
    if frame["type"] != "hello":
        raise FrameRejected("hello.type", _short(frame["type"]), "must be 'hello'")
    _check_sig(frame, pump_key, "hello")
    nonce = _nonce(frame, "nonce", "hello")
    if nonce != expected_nonce:
        raise FrameRejected("hello.nonce", frame["nonce"], "is not this connection's challenge")
    seq = _count(frame, "last_acked_seq", "hello", 0)
    return Hello(pump_id=pump_id, nonce=nonce, last_acked_seq=seq)


def build_welcome(server_key: PrivateKey, pump_id: str, last_stored_seq: int) -> dict[str, Any]:
    frame = {"type": "welcome", "pump_id": pump_id, "last_stored_seq": last_stored_seq}
    return _signed(server_key, frame)


def verify_welcome(frame: Mapping[str, Any], server_key: PublicKey, pump_id: str) -> Welcome:
    _check_fields(frame, _WELCOME_FIELDS, "welcome")
    if frame["type"] != "welcome":
        raise FrameRejected("welcome.type", _short(frame["type"]), "must be 'welcome'")
    _check_sig(frame, server_key, "welcome")
    got = _text(frame, "pump_id", "welcome", _ID_TEXT)
    _pump_id_matches("welcome", got, pump_id)
    return Welcome(pump_id=got, last_stored_seq=_count(frame, "last_stored_seq", "welcome", 0))


def build_ack(server_key: PrivateKey, pump_id: str, seq: int) -> dict[str, Any]:
    """Server: envelopes of ``pump_id`` up to ``seq`` are durably stored."""
    return _signed(server_key, {"type": "ack", "pump_id": pump_id, "seq": seq})


def verify_ack(frame: Mapping[str, Any], server_key: PublicKey, pump_id: str) -> Ack:
    """Pump: an ack is bound to its pump id, so one pump's ack never deletes another's data."""
    _check_fields(frame, _ACK_FIELDS, "ack")
    if frame["type"] != "ack":
        raise FrameRejected("ack.type", _short(frame["type"]), "must be 'ack'")
    _check_sig(frame, server_key, "ack")
    got = _text(frame, "pump_id", "ack", _ID_TEXT)
    _pump_id_matches("ack", got, pump_id)
    return Ack(pump_id=got, seq=_count(frame, "seq", "ack", 0))


# ------------------------------------------------------------------------------- envelopes


@dataclass(frozen=True, slots=True)
class Envelope:
    """A verified pump → server envelope."""

    type: str
    pump_id: str
    seq: int
    sent_at: datetime
    body: dict[str, Any]
    key_id: str


def build_envelope(
    pump_key: PrivateKey,
    *,
    type: str,
    pump_id: str,
    seq: int,
    body: Mapping[str, Any],
    sent_at: datetime,
) -> dict[str, Any]:
    """A signed envelope, ready to be stored in the outbox and sent."""
    if type not in PUMP_MESSAGE_TYPES:
        raise InputError("type", type, f"must be one of {', '.join(PUMP_MESSAGE_TYPES)}")
    if not _ID_TEXT.fullmatch(pump_id):
        raise InputError("pump_id", pump_id, f"must match {_ID_TEXT.pattern}")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise InputError("seq", seq, "must be an integer ≥ 1")
    frame = {
        "v": PROTOCOL_VERSION,
        "type": type,
        "pump_id": pump_id,
        "seq": seq,
        "sent_at": utc_text(sent_at),
        "body": dict(body),
        "key_id": key_id(pump_key),
    }
    return _signed(pump_key, frame)


def envelope_pump_id(frame: Mapping[str, Any]) -> str:
    """The pump id an envelope claims, unverified (to look up the key)."""
    _check_fields(frame, _ENVELOPE_FIELDS, "envelope")
    return _text(frame, "pump_id", "envelope", _ID_TEXT)


def verify_envelope(
    frame: Mapping[str, Any], pump_key: PublicKey, *, pump_id: str | None = None
) -> Envelope:
    """Check an envelope's fields and signature; ``pump_id`` binds it to one pump."""
    got = envelope_pump_id(frame)
    if frame["v"] != PROTOCOL_VERSION or isinstance(frame["v"], bool):
        raise FrameRejected("envelope.v", _short(frame["v"]), f"must be {PROTOCOL_VERSION}")
    kind = frame["type"]
    if kind not in PUMP_MESSAGE_TYPES:
        raise FrameRejected(
            "envelope.type", _short(kind), f"must be one of {', '.join(PUMP_MESSAGE_TYPES)}"
        )
    kid = _text(frame, "key_id", "envelope", _KEY_ID)
    if kid != key_id(pump_key):
        raise FrameRejected("envelope.key_id", kid, "is not the enrolled key of this pump")
    _check_sig(frame, pump_key, "envelope")
    _pump_id_matches("envelope", got, pump_id)
    body = frame["body"]
    if not isinstance(body, dict):
        raise FrameRejected("envelope.body", _short(body), "must be a JSON object")
    return Envelope(
        type=kind,
        pump_id=got,
        seq=_count(frame, "seq", "envelope", 1),
        sent_at=parse_utc("envelope.sent_at", frame["sent_at"]),
        body=body,
        key_id=kid,
    )


def envelope_digest(frame: Mapping[str, Any]) -> str:
    """Hex SHA-256 of what an envelope signs: equal for a faithful replay, differs otherwise."""
    return hashlib.sha256(_signed_bytes(frame)).hexdigest()


# -------------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class Command:
    """A server → pump command whose signature and fields checked out."""

    command_id: str
    pump_id: str
    channel: int
    action: str
    params: dict[str, Any]
    issued_by: str
    issued_at: datetime
    expires_at: datetime
    nonce: bytes

    @property
    def ttl_s(self) -> float:
        """Life the issuer granted, seconds (expires_at − issued_at)."""
        return (self.expires_at - self.issued_at).total_seconds()


def build_command(
    server_key: PrivateKey,
    *,
    pump_id: str,
    channel: int,
    action: str,
    params: Mapping[str, Any],
    issued_by: str,
    issued_at: datetime,
    ttl_s: float = MAX_COMMAND_TTL_S,
    command_id: str | None = None,
    nonce: bytes | None = None,
) -> dict[str, Any]:
    """A signed command for one pump and channel, alive ``ttl_s`` (≤ 60) seconds."""
    if action not in COMMAND_ACTIONS:
        raise InputError("action", action, f"must be one of {', '.join(COMMAND_ACTIONS)}")
    if not 0 < ttl_s <= MAX_COMMAND_TTL_S:
        raise InputError("ttl_s", ttl_s, f"must be in (0, {MAX_COMMAND_TTL_S:g}] seconds")
    if isinstance(channel, bool) or not isinstance(channel, int) or channel < 1:
        raise InputError("channel", channel, "must be an integer ≥ 1")
    if not issued_by.strip():
        raise InputError("issued_by", issued_by, "must name the user who issued the command")
    raw_nonce = new_nonce() if nonce is None else nonce
    frame = {
        "v": PROTOCOL_VERSION,
        "type": "command",
        "command_id": command_id or str(uuid.uuid4()),
        "pump_id": pump_id,
        "channel": channel,
        "action": action,
        "params": dict(params),
        "issued_by": issued_by.strip(),
        "issued_at": utc_text(issued_at),
        "expires_at": utc_text(issued_at + timedelta(seconds=ttl_s)),
        "nonce": b64encode(raw_nonce),
        "key_id": key_id(server_key),
    }
    return _signed(server_key, frame)


def command_id_of(frame: Mapping[str, Any]) -> str | None:
    """The command id a frame claims, unverified (to answer even a refused command)."""
    value = frame.get("command_id") if isinstance(frame, Mapping) else None
    return value if isinstance(value, str) and len(value) <= 64 else None


def verify_command(frame: Mapping[str, Any], server_key: PublicKey, *, pump_id: str) -> Command:
    """Check a command's fields, signature (pinned server key) and pump binding.

    Freshness and replay are the :class:`ReplayGuard`'s job, on the pump's clocks.
    """
    _check_fields(frame, _COMMAND_FIELDS, "command")
    if frame["type"] != "command":
        raise FrameRejected("command.type", _short(frame["type"]), "must be 'command'")
    if frame["v"] != PROTOCOL_VERSION or isinstance(frame["v"], bool):
        raise FrameRejected("command.v", _short(frame["v"]), f"must be {PROTOCOL_VERSION}")
    kid = _text(frame, "key_id", "command", _KEY_ID)
    if kid != key_id(server_key):
        raise FrameRejected("command.key_id", kid, "is not the pinned server key")
    _check_sig(frame, server_key, "command")
    got = _text(frame, "pump_id", "command", _ID_TEXT)
    _pump_id_matches("command", got, pump_id)
    command_id = frame["command_id"]
    try:
        uuid.UUID(str(command_id))
    except ValueError:
        raise FrameRejected("command.command_id", _short(command_id), "must be a UUID") from None
    action = frame["action"]
    if action not in COMMAND_ACTIONS:
        raise FrameRejected(
            "command.action", _short(action), f"must be one of {', '.join(COMMAND_ACTIONS)}"
        )
    params = frame["params"]
    if not isinstance(params, dict):
        raise FrameRejected("command.params", _short(params), "must be a JSON object")
    issued_by = frame["issued_by"]
    if not isinstance(issued_by, str) or not issued_by.strip() or len(issued_by) > 128:
        raise FrameRejected("command.issued_by", _short(issued_by), "must name a user")
    issued_at = parse_utc("command.issued_at", frame["issued_at"])
    expires_at = parse_utc("command.expires_at", frame["expires_at"])
    ttl = (expires_at - issued_at).total_seconds()
    if not 0 < ttl <= MAX_COMMAND_TTL_S:
        raise FrameRejected(
            "command.expires_at",
            frame["expires_at"],
            f"must be within (0, {MAX_COMMAND_TTL_S:g}] s after issued_at (is {ttl:g} s)",
        )
    return Command(
        command_id=str(command_id),
        pump_id=got,
        channel=_count(frame, "channel", "command", 1),
        action=action,
        params=params,
        issued_by=issued_by,
        issued_at=issued_at,
        expires_at=expires_at,
        nonce=_nonce(frame, "nonce", "command"),
    )


def command_result_body(
    command_id: str | None, outcome: str, reason: str = "", **extra: Any
) -> dict[str, Any]:
    """Body of a ``command_result`` envelope (``outcome`` one of :data:`COMMAND_OUTCOMES`)."""
    if outcome not in COMMAND_OUTCOMES:
        raise InputError("outcome", outcome, f"must be one of {', '.join(COMMAND_OUTCOMES)}")
    body: dict[str, Any] = {"command_id": command_id, "outcome": outcome, "reason": reason}
    body.update(extra)
    return body


def finite_number(field: str, value: object) -> float:
    """A JSON number that is finite (booleans refused), as float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FrameRejected(field, _short(value), "must be a number")
    number = float(value)
    if not math.isfinite(number):
        raise FrameRejected(field, value, "must be finite")
    return number
