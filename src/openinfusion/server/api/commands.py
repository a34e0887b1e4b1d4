"""Remote commands to a pump: issue (signed, bound to pump and channel, 60 s) and list."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from openinfusion.security import COMMAND_ACTIONS
from openinfusion.server import commands
from openinfusion.server.api.deps import Principal, authenticate, get_ctx, require
from openinfusion.server.api.errors import ApiError, not_found
from openinfusion.server.api.pumps import PumpId, visible_pump
from openinfusion.server.api.views import command_view
from openinfusion.server.context import ServerContext
from openinfusion.server.models import Command
from openinfusion.server.permissions import ACTION_PERMISSION, Perm, allowed

router = APIRouter(tags=["commands"])


class CommandRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: int = Field(ge=1, le=4)
    action: str = Field(max_length=32)
    params: dict[str, Any] = Field(default_factory=dict)


def _view(c: Command, ctx: ServerContext) -> dict[str, Any]:
    out = command_view(c)
    out["expired"] = c.status == "unconfirmed" and ctx.now() > c.expires_at
    return out


@router.post("/api/pumps/{pump_id}/commands", status_code=202)
def issue_command(
    pump_id: PumpId,
    body: CommandRequest,
    request: Request,
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    principal = authenticate(request, ctx)
    if body.action not in COMMAND_ACTIONS:
        raise ApiError(422, "action", body.action, f"must be one of {', '.join(COMMAND_ACTIONS)}")
    perm = ACTION_PERMISSION.get(body.action, Perm.COMMANDS_CLINICAL)
    if not allowed(principal.role, perm):
        ctx.audit_alone(
            principal.username,
            "access.denied",
            request.url.path,
            role=principal.role,
            permission=perm.value,
            action=body.action,
        )
        raise ApiError(
            403, "permission", perm.value, f"role {principal.role} does not hold this permission"
        )
    refusal: commands.CommandRefusal | None = None
    now = ctx.now()
    with ctx.db.write() as session:
        pump = visible_pump(session, principal, pump_id)
        params = body.params
        try:
            commands.check_policy(session, pump, body.channel, body.action)
            if body.action == "activate_library":
                params = commands.library_params(session, body.params)
            commands.check_mass_action(
                session,
                principal.username,
                pump.id,
                now,
                ctx.settings.mass_action_pumps,
                ctx.settings.mass_action_window_s,
            )
        except commands.CommandRefusal as exc:
            refusal = exc
            ctx.audit(
                session,
                principal.username,
                "command.refused",
                f"pump:{pump.id}",
                channel=body.channel,
                action=body.action,
                reason=exc.rule,
            )
        else:
            command = commands.issue(
                session,
                ctx.server_key,
                pump,
                body.channel,
                body.action,
                params,
                principal.username,
                now,
                ctx.settings.command_ttl_s,
            )
            ctx.audit(
                session,
                principal.username,
                "command.issue",
                f"command:{command.id}",
                pump_id=pump.id,
                channel=body.channel,
                action=body.action,
                params=body.params,
            )
            ctx.bus.publish(
                session,
                {
                    "type": "command",
                    "command_id": command.id,
                    "pump_id": pump.id,
                    "unit": pump.unit,
                    "action": body.action,
                },
            )
            view = _view(command, ctx)
    if refusal is not None:
        raise ApiError(refusal.status, refusal.field, refusal.value, refusal.rule)
    return view


@router.get("/api/pumps/{pump_id}/commands")
def list_commands(
    pump_id: PumpId,
    principal: Principal = Depends(require(Perm.COMMANDS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        visible_pump(session, principal, pump_id)
        rows = session.scalars(
            select(Command)
            .where(Command.pump_id == pump_id)
            .order_by(Command.issued_at.desc())
            .limit(200)
        )
        return [_view(c, ctx) for c in rows]


@router.get("/api/commands/{command_id}")
def get_command(
    command_id: Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")],
    principal: Principal = Depends(require(Perm.COMMANDS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    with ctx.db.read() as session:
        command = session.get(Command, command_id)
        if command is None:
            raise not_found("command_id", command_id)
        try:
            visible_pump(session, principal, command.pump_id)
        except ApiError:
            raise not_found("command_id", command_id) from None
        return _view(command, ctx)
