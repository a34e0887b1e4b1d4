"""Request dependencies: the server context, the authenticated principal, permission checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, Request

from openinfusion.server.api.errors import ApiError, unauthorized
from openinfusion.server.context import ServerContext
from openinfusion.server.models import Pump
from openinfusion.server.permissions import UNIT_SCOPED_ROLES, Perm, Role, allowed
from openinfusion.server.tokens import resolve_token


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    role: str
    unit: str | None

    @property
    def unit_scope(self) -> str | None:
        """The only care unit this user may see, or None for every unit."""
        return self.unit if Role(self.role) in UNIT_SCOPED_ROLES else None

    def sees(self, pump: Pump) -> bool:
        scope = self.unit_scope
        return scope is None or pump.unit == scope


def get_ctx(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def authenticate(request: Request, ctx: ServerContext) -> Principal:
    """The principal behind the bearer token, or 401 (audited, C-02)."""
    raw = bearer_token(request)
    if raw is not None:
        with ctx.db.read() as session:
            user = resolve_token(session, raw, ctx.now())
            if user is not None:
                return Principal(user.id, user.username, user.role, user.unit)
    address = client_address(request)
    suppressed = request.app.state.unauth_sampler.admit(address, ctx.now())
    if suppressed is not None:
        ctx.audit_alone(
            "anonymous",
            "access.unauthenticated",
            request.url.path,
            address=address,
            method=request.method,
            token_presented=raw is not None,
            suppressed_since_last=suppressed,
        )
    raise unauthorized()


def require(perm: Perm) -> Callable[..., Principal]:
    """Dependency: an authenticated principal holding ``perm`` (403 and audit otherwise)."""

    def dependency(request: Request, ctx: ServerContext = Depends(get_ctx)) -> Principal:
        principal = authenticate(request, ctx)
        if not allowed(principal.role, perm):
            ctx.audit_alone(
                principal.username,
                "access.denied",
                request.url.path,
                role=principal.role,
                permission=perm.value,
                method=request.method,
            )
            raise ApiError(
                403,
                "permission",
                perm.value,
                f"role {principal.role} does not hold this permission",
            )
        return principal

    dependency.__name__ = f"require_{perm.name.lower()}"
    dependency.required_permission = perm  # type: ignore[attr-defined]
    return dependency
