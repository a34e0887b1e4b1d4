"""Signed protocol frames (docs/pump-protocol.md): RELIABILITY C-07, C-09, C-25, B-17.

Any change to any signed field breaks the signature; a wrong key, a stripped signature and
another pump's id are refused; a command is admitted once (also after a restart and never on
another pump) and only while fresh on the pump's monotonic clock.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openinfusion.errors import InputError
from openinfusion.security import (
    PrivateKey,
    generate_private_key,
    key_id,
)
from openinfusion.security.envelope import (
    FrameRejected,
    build_ack,
    build_challenge,
    build_command,
    build_envelope,
    build_hello,
    build_welcome,
    command_result_body,
    parse_frame,
    parse_utc,
    utc_text,
    verify_ack,
    verify_challenge,
    verify_command,
    verify_envelope,
    verify_hello,
    verify_welcome,
)
from openinfusion.security.replay import CommandRefused, MemorySeenStore, ReplayGuard

PUMP_KEY = generate_private_key()
SERVER_KEY = generate_private_key()
OTHER_KEY = generate_private_key()
T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def _envelope(**over: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "type": "status",
        "pump_id": "P-0001",
        "seq": 42,
        "body": {"channels": [{"channel": 1, "rate_ml_h": 13.125, "state": "running"}]},
        "sent_at": T0,
    }
    args.update(over)
    return build_envelope(PUMP_KEY, **args)


def _command(key: PrivateKey = SERVER_KEY, **over: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "pump_id": "P-0001",
        "channel": 1,
        "action": "pause",
        "params": {},
        "issued_by": "nurse.ana",
        "issued_at": T0,
        "ttl_s": 30.0,
    }
    args.update(over)
    return build_command(key, **args)


def test_envelope_round_trip_through_json_text() -> None:
    frame = parse_frame(json.dumps(_envelope()))
    env = verify_envelope(frame, PUMP_KEY.public_key(), pump_id="P-0001")
    assert (env.type, env.seq, env.pump_id) == ("status", 42, "P-0001")
    assert env.sent_at == T0
    assert env.key_id == key_id(PUMP_KEY)
    assert frame["sent_at"] == "2026-12-03T08:00:00.000Z"


_JSON_LEAF = st.one_of(st.integers(-(10**6), 10**6), st.text(max_size=8), st.booleans(), st.none())


@settings(max_examples=150, deadline=None)
@given(
    field=st.sampled_from(["v", "type", "pump_id", "seq", "sent_at", "body", "key_id"]),
    new=_JSON_LEAF,
)
def test_c09_any_change_to_any_envelope_field_breaks_it(field: str, new: object) -> None:
    """C-09: changing any signed field (to any other value) is refused."""
    frame = _envelope()
    if frame[field] == new:
        return
    tampered = copy.deepcopy(frame)
    tampered[field] = new
    with pytest.raises(FrameRejected):
        verify_envelope(tampered, PUMP_KEY.public_key(), pump_id="P-0001")


@settings(max_examples=100, deadline=None)
@given(rate=st.floats(0, 999, allow_nan=False), extra=st.text(min_size=1, max_size=6))
def test_c09_any_change_inside_the_body_breaks_it(rate: float, extra: str) -> None:
    frame = _envelope()
    body = frame["body"]["channels"][0]
    tampered = copy.deepcopy(frame)
    if rate != body["rate_ml_h"]:
        tampered["body"]["channels"][0]["rate_ml_h"] = rate
    else:
        tampered["body"][extra] = 1
    with pytest.raises(FrameRejected, match="does not verify"):
        verify_envelope(tampered, PUMP_KEY.public_key())


def test_added_field_is_refused_even_if_resigned_by_the_pump() -> None:
    frame = _envelope()
    frame["extra"] = 1
    with pytest.raises(FrameRejected, match="unknown fields"):
        verify_envelope(frame, PUMP_KEY.public_key())


def test_wrong_key_stripped_sig_and_other_pump_refused() -> None:
    frame = _envelope()
    with pytest.raises(FrameRejected, match="key_id"):
        verify_envelope(frame, OTHER_KEY.public_key())
    stripped = {k: v for k, v in frame.items() if k != "sig"}
    with pytest.raises(FrameRejected, match="unsigned"):
        verify_envelope(stripped, PUMP_KEY.public_key())
    with pytest.raises(FrameRejected, match="not this pump"):
        verify_envelope(frame, PUMP_KEY.public_key(), pump_id="P-0002")
    # A signature from another key, with the key id rewritten, still fails.
    forged = _envelope()
    forged["sig"] = build_envelope(
        OTHER_KEY, type="status", pump_id="P-0001", seq=42, body=frame["body"], sent_at=T0
    )["sig"]
    with pytest.raises(FrameRejected, match="does not verify"):
        verify_envelope(forged, PUMP_KEY.public_key())


def test_bad_fields_named_clearly() -> None:
    with pytest.raises(InputError, match="seq"):
        _envelope(seq=0)
    with pytest.raises(InputError, match="type"):
        _envelope(type="telemetry")
    with pytest.raises(InputError, match="time zone"):
        _envelope(sent_at=datetime(2026, 1, 1))
    frame = _envelope()
    frame["body"] = {"x": float("nan")}
    with pytest.raises(FrameRejected, match="non-finite"):
        verify_envelope(frame, PUMP_KEY.public_key())
    with pytest.raises(FrameRejected, match="UTC"):
        parse_utc("sent_at", "2026-12-03T09:00:00+01:00")


@pytest.mark.parametrize(
    "text, rule",
    [
        ('{"a": 1, "a": 2}', "duplicate"),
        ('{"a": NaN}', "NaN"),
        ("[1, 2]", "object"),
        ("{", "not JSON"),
        ("[" * 100_000, "nested|JSON"),
    ],
)
def test_b17_frames_parse_strictly(text: str, rule: str) -> None:
    with pytest.raises(FrameRejected, match=rule):
        parse_frame(text)
    with pytest.raises(FrameRejected, match="limit"):
        parse_frame("x" * 300_000)


def test_c09_handshake_mutual_and_bound_to_the_nonce() -> None:
    challenge = build_challenge(SERVER_KEY)
    got = verify_challenge(challenge, SERVER_KEY.public_key())
    hello = build_hello(PUMP_KEY, "P-0001", got.nonce, 7)
    assert verify_hello(hello, PUMP_KEY.public_key(), got.nonce).last_acked_seq == 7
    # A challenge from any other key is refused by the pump (pinned server key).
    with pytest.raises(FrameRejected):
        verify_challenge(build_challenge(OTHER_KEY), SERVER_KEY.public_key())
    # A hello replayed into a later connection (new nonce) is refused.
    later = verify_challenge(build_challenge(SERVER_KEY), SERVER_KEY.public_key())
    with pytest.raises(FrameRejected, match="challenge"):
        verify_hello(hello, PUMP_KEY.public_key(), later.nonce)
    with pytest.raises(FrameRejected):
        verify_hello(hello, OTHER_KEY.public_key(), got.nonce)
    tampered = dict(hello, last_acked_seq=8)
    with pytest.raises(FrameRejected, match="does not verify"):
        verify_hello(tampered, PUMP_KEY.public_key(), got.nonce)
    welcome = build_welcome(SERVER_KEY, "P-0001", 5)
    assert verify_welcome(welcome, SERVER_KEY.public_key(), "P-0001").last_stored_seq == 5
    with pytest.raises(FrameRejected, match="not this pump"):
        verify_welcome(welcome, SERVER_KEY.public_key(), "P-0002")


def test_ack_is_bound_to_its_pump() -> None:
    ack = build_ack(SERVER_KEY, "P-0001", 9)
    assert verify_ack(ack, SERVER_KEY.public_key(), "P-0001").seq == 9
    with pytest.raises(FrameRejected, match="not this pump"):
        verify_ack(ack, SERVER_KEY.public_key(), "P-0002")
    with pytest.raises(FrameRejected):
        verify_ack(dict(ack, seq=10), SERVER_KEY.public_key(), "P-0001")
    with pytest.raises(FrameRejected):
        verify_ack(build_ack(OTHER_KEY, "P-0001", 9), SERVER_KEY.public_key(), "P-0001")


@settings(max_examples=100, deadline=None)
@given(
    field=st.sampled_from(
        [
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
            "v",
        ]
    ),
    new=_JSON_LEAF,
)
def test_c09_any_change_to_a_command_breaks_it(field: str, new: object) -> None:
    frame = _command()
    if frame[field] == new:
        return
    with pytest.raises(FrameRejected):
        verify_command(dict(frame, **{field: new}), SERVER_KEY.public_key(), pump_id="P-0001")


def test_command_fields_and_binding() -> None:
    cmd = verify_command(_command(), SERVER_KEY.public_key(), pump_id="P-0001")
    assert (cmd.action, cmd.channel, cmd.ttl_s) == ("pause", 1, 30.0)
    with pytest.raises(FrameRejected, match="not this pump"):
        verify_command(_command(), SERVER_KEY.public_key(), pump_id="P-0002")
    with pytest.raises(FrameRejected):
        verify_command(_command(OTHER_KEY), SERVER_KEY.public_key(), pump_id="P-0001")
    with pytest.raises(InputError, match="ttl_s"):
        _command(ttl_s=61)
    with pytest.raises(InputError, match="action"):
        _command(action="silence_alarms")
    assert command_result_body("x", "rejected", "replay")["outcome"] == "rejected"
    with pytest.raises(InputError, match="outcome"):
        command_result_body("x", "done")


class _Clocks:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = T0 + timedelta(seconds=1)


def _guard(store: MemorySeenStore, clocks: _Clocks) -> ReplayGuard:
    return ReplayGuard(store, monotonic=lambda: clocks.mono, wall=lambda: clocks.wall)


def test_c07_replay_refused_immediately_after_restart_and_on_another_pump() -> None:
    """C-07: the same command is admitted once; a restarted guard on the same store refuses
    it; another pump refuses it by its binding."""
    store, clocks = MemorySeenStore(), _Clocks()
    frame = _command()
    cmd = verify_command(frame, SERVER_KEY.public_key(), pump_id="P-0001")
    _guard(store, clocks).admit(cmd)
    with pytest.raises(CommandRefused, match="replay"):
        _guard(store, clocks).admit(cmd)
    clocks.mono = 5.0  # the pump restarted: its monotonic clock starts over
    with pytest.raises(CommandRefused, match="replay"):
        _guard(store, clocks).admit(
            verify_command(frame, SERVER_KEY.public_key(), pump_id="P-0001")
        )
    with pytest.raises(FrameRejected, match="not this pump"):
        verify_command(frame, SERVER_KEY.public_key(), pump_id="P-0002")


def test_c07_a_new_id_with_a_used_nonce_is_a_replay() -> None:
    store, clocks = MemorySeenStore(), _Clocks()
    nonce = b"\x01" * 32
    _guard(store, clocks).admit(
        verify_command(_command(nonce=nonce), SERVER_KEY.public_key(), pump_id="P-0001")
    )
    second = verify_command(_command(nonce=nonce), SERVER_KEY.public_key(), pump_id="P-0001")
    with pytest.raises(CommandRefused):
        _guard(store, clocks).admit(second)


@settings(max_examples=100, deadline=None)
@given(ttl=st.floats(1, 60), elapsed=st.floats(0, 7200), wall_back_s=st.floats(0, 86400))
def test_c25_expiry_on_the_monotonic_clock_wall_cannot_extend(
    ttl: float, elapsed: float, wall_back_s: float
) -> None:
    """C-25: a command's life is its TTL from receipt on the monotonic clock, whatever the
    wall clock says afterwards (here set back by up to a day)."""
    store, clocks = MemorySeenStore(), _Clocks()
    guard = _guard(store, clocks)
    adm = guard.admit(
        verify_command(_command(ttl_s=ttl), SERVER_KEY.public_key(), pump_id="P-0001")
    )
    clocks.mono += elapsed
    clocks.wall -= timedelta(seconds=wall_back_s)
    if elapsed >= ttl:
        with pytest.raises(CommandRefused, match="monotonic"):
            guard.check_live(adm)
    else:
        guard.check_live(adm)
    assert guard.is_live(adm) == (elapsed < ttl)


def test_c25_wall_clock_only_shortens() -> None:
    store, clocks = MemorySeenStore(), _Clocks()
    clocks.wall = T0 + timedelta(hours=1)  # long past expires_at by the pump's clock
    with pytest.raises(CommandRefused, match="passed"):
        _guard(store, clocks).admit(
            verify_command(_command(), SERVER_KEY.public_key(), pump_id="P-0001")
        )
    clocks.wall = T0 - timedelta(hours=1)  # issued in the pump's future
    with pytest.raises(CommandRefused, match="future"):
        _guard(store, clocks).admit(
            verify_command(_command(), SERVER_KEY.public_key(), pump_id="P-0001")
        )


def test_utc_text_round_trip() -> None:
    when = datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=UTC)
    assert utc_text(when) == "2026-03-29T01:30:15.123Z"
    assert parse_utc("t", utc_text(when)) == when.replace(microsecond=123000)


@pytest.mark.parametrize("field", ["sig", "nonce"])
@pytest.mark.parametrize("value", ["!!!not base64", 42, "", "AAAA"])
def test_broken_base64_is_a_frame_rejection(field: str, value: object) -> None:
    """Every malformed frame is a FrameRejected (the pump answers it), never another error."""
    frame = dict(_command(), **{field: value})
    with pytest.raises(FrameRejected):
        verify_command(frame, SERVER_KEY.public_key(), pump_id="P-0001")
    challenge = dict(build_challenge(SERVER_KEY), **{field: value})
    with pytest.raises(FrameRejected):
        verify_challenge(challenge, SERVER_KEY.public_key())
