"""Tables of the order intake: EHR orders and their status, inbound HL7 control ids, patient merges.

Declared on the server's one SQLAlchemy ``Base`` (so Alembic and the schema check see them);
``openinfusion.server.models`` imports this module at its end.
"""

from __future__ import annotations

from openinfusion.server.models import Base

__all__ = ["Base"]
