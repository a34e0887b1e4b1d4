"""What request handlers share: settings, database, server key, clock, event bus."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from openinfusion.security import PrivateKey, key_id
from openinfusion.server import audit_log
from openinfusion.server.clock import Clock, utc_now
from openinfusion.server.config import Settings
from openinfusion.server.db import Database
from openinfusion.server.events import EventBus

# Audited actions that also raise a live security alert for those who read the audit
# (RELIABILITY C-02, C-12, C-13, C-21, C-26: "audited ... alert").
SECURITY_ALERTS = frozenset(
    {
        "login.throttled",
        "gateway.conflicting_replay",
        "gateway.frame_rejected",
        "gateway.handshake_refused",
        "enrolment.refused",
        "enrolment.clone_refused",
        "library.rejected",
        "command.refused",
        "audit.verify_failed",
    }
)


@dataclass
class ServerContext:
    settings: Settings
    db: Database
    server_key: PrivateKey
    bus: EventBus
    clock: Clock = field(default=utc_now)

    @property
    def server_key_id(self) -> str:
        return key_id(self.server_key)

    def now(self) -> datetime:
        return self.clock()

    def audit(self, session: Session, actor: str, action: str, obj: str, /, **details: Any) -> None:
        """One audit entry in ``session``'s transaction, plus a live event for dashboards."""
        entry = audit_log.append(session, self.server_key, self.now(), actor, action, obj, details)
        self.bus.publish(session, {"type": "audit", "seq": entry.seq, "action": action})
        if action in SECURITY_ALERTS:
            self.bus.publish(
                session,
                {
                    "type": "security_alert",
                    "action": action,
                    "object": obj,
                    "actor": actor,
                    "seq": entry.seq,
                },
            )

    def audit_alone(self, actor: str, action: str, obj: str, /, **details: Any) -> None:
        """An audit entry in its own transaction (for refusals whose action rolls back)."""
        with self.db.write() as session:
            self.audit(session, actor, action, obj, **details)
