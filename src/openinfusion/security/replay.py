"""Replay and freshness protection for server commands, on the pump's own clocks.

RELIABILITY C-07 (replay) and C-25 (freshness with clock skew). A command is admitted once:
its ``command_id`` and ``nonce`` are claimed in a durable :class:`SeenStore` (the pump's
outbox database), so a replay is refused immediately, after a restart, and — because the
signature binds the pump id — on any other pump. Ids and nonces are claimed as soon as the
signature verifies, even if the command is then refused for another reason.

Its life is measured on the pump's *monotonic* clock from receipt: ``deadline = received +
(expires_at − issued_at)``, the granted time-to-live being at most 60 s. The wall clock may
only shorten that life (a command already past ``expires_at`` by the pump's wall clock, or
issued in its future, beyond :data:`WALL_SKEW_TOLERANCE_S`, is refused); setting the wall
clock back never extends it. Seen ids are kept for good: commands are rare, and forgetting
one would re-open it to replay.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from openinfusion.security.envelope import (
    WALL_SKEW_TOLERANCE_S,
    Command,
    FrameRejected,
    utc_text,
)
from openinfusion.security.keys import b64encode


class CommandRefused(FrameRejected):
    """A verified command that may not be applied (replayed, expired or stale)."""


class SeenStore(Protocol):
    """Durable set of seen command ids and nonces."""

    def claim(self, keys: Sequence[str], received_at: str) -> bool:
        """Record all ``keys`` atomically; False (and nothing recorded) if any was seen."""
        ...

    def __contains__(self, key: object) -> bool: ...


class MemorySeenStore:
    """A :class:`SeenStore` in memory (tests, and pumps that do not persist)."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}
        self._lock = threading.Lock()

    def claim(self, keys: Sequence[str], received_at: str) -> bool:
        with self._lock:
            if any(k in self._seen for k in keys):
                return False
            for k in keys:
                self._seen[k] = received_at
            return True

    def __contains__(self, key: object) -> bool:
        return key in self._seen


@dataclass(frozen=True, slots=True)
class Admission:
    """A command admitted once, with its life on the pump's monotonic clock (seconds)."""

    command: Command
    received_mono_s: float
    deadline_mono_s: float

    def remaining_s(self, now_mono_s: float) -> float:
        return self.deadline_mono_s - now_mono_s


def seen_keys(command: Command) -> list[str]:
    """The store keys a command claims: its id and its nonce."""
    return [f"id:{command.command_id}", f"nonce:{b64encode(command.nonce)}"]


class ReplayGuard:
    """Admit each verified command at most once and only while it is fresh.

    ``monotonic`` returns seconds on a clock that never jumps (``time.monotonic`` on a pump);
    ``wall`` returns the pump's aware wall-clock time.
    """

    def __init__(
        self,
        store: SeenStore,
        *,
        monotonic: Callable[[], float],
        wall: Callable[[], datetime],
        skew_tolerance_s: float = WALL_SKEW_TOLERANCE_S,
    ) -> None:
        self._store = store
        self._monotonic = monotonic
        self._wall = wall
        self._skew = timedelta(seconds=skew_tolerance_s)

    def admit(self, command: Command) -> Admission:
        """Claim the command's id and nonce, then check freshness; raise if refused."""
        received = self._monotonic()
        now_wall = self._wall()
        if not self._store.claim(seen_keys(command), utc_text(now_wall)):
            raise CommandRefused(
                "command.command_id", command.command_id, "was already received (replay refused)"
            )
        if command.issued_at > now_wall + self._skew:
            raise CommandRefused(
                "command.issued_at",
                utc_text(command.issued_at),
                f"is in the future by this pump's clock ({utc_text(now_wall)})",
            )
        if command.expires_at + self._skew < now_wall:
            raise CommandRefused(
                "command.expires_at",
                utc_text(command.expires_at),
                f"has passed by this pump's clock ({utc_text(now_wall)})",
            )
        return Admission(command, received, received + command.ttl_s)

    def check_live(self, admission: Admission) -> None:
        """Raise if the admitted command's life on the monotonic clock is over."""
        now = self._monotonic()
        if now >= admission.deadline_mono_s:
            raise CommandRefused(
                "command.expires_at",
                utc_text(admission.command.expires_at),
                f"expired {now - admission.deadline_mono_s:.1f} s ago on the pump's "
                "monotonic clock (wall time cannot extend it)",
            )

    def is_live(self, admission: Admission) -> bool:
        return self._monotonic() < admission.deadline_mono_s
