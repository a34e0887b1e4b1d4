"""Tables of outbound HL7: the durable outbox of PCD-01/PCD-04 messages and the forwarder's cursor.

Declared on the server's one SQLAlchemy ``Base`` (so Alembic and the schema check see them);
``openinfusion.server.models`` imports this module at its end.
"""

from __future__ import annotations

from openinfusion.server.models import Base

__all__ = ["Base"]
