"""Remote commands: policy checks, signing with the server key, and the mass-action limit.

The pump has the last word (it re-checks every command against its own DERS and hard
limits), but the server refuses early what policy forbids: a library switch while any
channel infuses (C-24), and one user commanding too many pumps in a short time (C-26).
``program``, ``start`` and ``bolus`` are only ever pre-populated on the pump and wait for a
bedside confirmation (C-17); the server records them as needing it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from openinfusion.security import build_command
from openinfusion.server.derive import IN_PROGRESS
from openinfusion.server.models import Channel, Command, PublishedLibrary, Pump

BEDSIDE_CONFIRMED = frozenset({"program", "start", "bolus"})


class CommandRefusal(Exception):
    def __init__(self, status: int, field: str, value: Any, rule: str) -> None:
        super().__init__(rule)
        self.status, self.field, self.value, self.rule = status, field, value, rule


def check_policy(session: Session, pump: Pump, channel: int, action: str) -> None:
    if pump.decommissioned_at is not None:
        raise CommandRefusal(409, "pump_id", pump.id, "is decommissioned")
    if not 1 <= channel <= pump.channel_count:
        raise CommandRefusal(
            422, "channel", channel, f"must be between 1 and {pump.channel_count} for this pump"
        )
    if action == "activate_library":
        busy = session.scalars(
            select(Channel.channel).where(
                Channel.pump_id == pump.id, Channel.state.in_(IN_PROGRESS)
            )
        ).first()
        if busy is not None:
            raise CommandRefusal(
                409, "action", action, f"refused while channel {busy} is infusing (C-24)"
            )


def library_params(session: Session, params: dict[str, Any]) -> dict[str, Any]:
    """``activate_library`` names a published version; the pump gets the signed package."""
    version = params.get("version")
    row = (
        session.scalars(select(PublishedLibrary).where(PublishedLibrary.version == version)).first()
        if isinstance(version, str)
        else None
    )
    if row is None:
        raise CommandRefusal(422, "params.version", version, "is not a published library version")
    return {"version": row.version, "package": row.package}


def check_mass_action(
    session: Session,
    username: str,
    pump_id: str,
    now: datetime,
    max_pumps: int,
    window_s: float,
) -> None:
    """Refuse a command that would make ``username`` command more than ``max_pumps``
    different pumps within ``window_s`` seconds (C-26)."""
    since = now - timedelta(seconds=window_s)
    recent = select(Command.pump_id).where(Command.issued_by == username, Command.issued_at > since)
    if session.scalar(
        select(func.count()).select_from(recent.where(Command.pump_id == pump_id).subquery())
    ):
        return
    count = (
        session.scalar(
            select(func.count(distinct(Command.pump_id))).where(
                Command.issued_by == username, Command.issued_at > since
            )
        )
        or 0
    )
    if count >= max_pumps:
        raise CommandRefusal(
            429,
            "pump_id",
            pump_id,
            f"{username} already commanded {count} pumps in the last "
            f"{window_s:g} s (mass-action limit)",
        )


def issue(
    session: Session,
    server_key: Any,
    pump: Pump,
    channel: int,
    action: str,
    params: dict[str, Any],
    username: str,
    now: datetime,
    ttl_s: float,
) -> Command:
    """Sign the command for this pump and channel and store it as ``unconfirmed``."""
    frame = build_command(
        server_key,
        pump_id=pump.id,
        channel=channel,
        action=action,
        params=params,
        issued_by=username,
        issued_at=now,
        ttl_s=ttl_s,
    )
    command = Command(
        id=frame["command_id"],
        pump_id=pump.id,
        channel=channel,
        action=action,
        params=params,
        issued_by=username,
        issued_at=now,
        expires_at=now + timedelta(seconds=ttl_s),
        nonce=frame["nonce"],
        status="unconfirmed",
        envelope=frame,
    )
    session.add(command)
    session.flush()
    return command
