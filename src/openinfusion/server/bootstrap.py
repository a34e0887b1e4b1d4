"""First start: schema, server key, and one account per role with random passwords (C-05).

There are no default passwords: each account's password is generated from the OS CSPRNG on
the first start of an empty store, printed once by the CLI and written to
``DATA_DIR/demo-credentials.json`` (mode 600) for the demo.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from sqlalchemy import func, select

from openinfusion.security import generate_password, hash_password
from openinfusion.server.context import ServerContext
from openinfusion.server.models import User
from openinfusion.server.permissions import Role


@dataclass(frozen=True, slots=True)
class Credential:
    username: str
    password: str
    role: str


def create_first_accounts(ctx: ServerContext) -> list[Credential]:
    """Create one account per role when there are no users; [] when there already are."""
    now = ctx.now()
    created: list[Credential] = []
    with ctx.db.write() as session:
        if session.scalar(select(func.count()).select_from(User)):
            return []
        for role in Role:
            cred = Credential(f"{role.value}1", generate_password(), role.value)
            session.add(
                User(
                    username=cred.username,
                    password_hash=hash_password(cred.password),
                    role=role.value,
                    unit=None,
                    active=True,
                    created_at=now,
                    updated_at=now,
                )
            )
            created.append(cred)
        ctx.audit(
            session, "system", "users.bootstrap", "users", usernames=[c.username for c in created]
        )
    write_credentials_file(ctx, created)
    return created


def write_credentials_file(ctx: ServerContext, creds: list[Credential]) -> None:
    path = ctx.settings.credentials_path
    data = [{"username": c.username, "password": c.password, "role": c.role} for c in creds]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o600)
        json.dump(data, fh, indent=2)
        fh.write("\n")
