"""Drug library publication: the server stores only packages a pharmacist signed.

Uploaded packages are verified against the pharmacy public keys the administrator placed
in ``DATA_DIR/pharmacy-keys/*.pem``; the server's own key is never among them, so a
compromised server cannot make a library pumps would accept (C-03, C-26). Versions only
go up (rollback refused, B-09). Pumps verify again before activating.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from openinfusion.errors import InputError
from openinfusion.library import VerifiedLibrary, verify_package
from openinfusion.library.schema import version_tuple
from openinfusion.security import PublicKey, key_id, load_public_key
from openinfusion.security.envelope import MAX_FRAME_BYTES
from openinfusion.server.models import PublishedLibrary

# A package travels inside a command frame to the pump: leave room for the frame itself.
MAX_PACKAGE_BYTES = MAX_FRAME_BYTES - 8 * 1024


def pharmacy_keys(data_dir: Path, server_key_id: str) -> list[PublicKey]:
    """Trusted pharmacist public keys (PEM files); the server's own key is refused."""
    keys = []
    folder = data_dir / "pharmacy-keys"
    for path in sorted(folder.glob("*.pem")) if folder.is_dir() else []:
        key = load_public_key(path)
        if key_id(key) == server_key_id:
            raise InputError("pharmacy-keys", path.name, "is the server's own key: refused")
        keys.append(key)
    return keys


def verify_upload(raw: bytes, trusted: list[PublicKey], today: datetime) -> VerifiedLibrary:
    if len(raw) > MAX_PACKAGE_BYTES:
        raise InputError(
            "package",
            f"{len(raw)} bytes",
            f"is over {MAX_PACKAGE_BYTES} bytes (it must fit in a command frame)",
        )
    if not trusted:
        raise InputError("package", None, "no pharmacy signing key is configured on the server")
    return verify_package(raw, trusted, today=today.date())


def check_newer(session: Session, version: str) -> None:
    newest = max(
        (version_tuple(v) for v in session.scalars(select(PublishedLibrary.version))), default=None
    )
    if newest is not None and version_tuple(version) <= newest:
        raise InputError(
            "package.signed.library.version",
            version,
            "must be newer than every published version (rollback refused)",
        )


def store(
    session: Session, verified: VerifiedLibrary, raw: bytes, username: str, now: datetime
) -> PublishedLibrary:
    row = PublishedLibrary(
        version=verified.library.version,
        name=verified.library.name,
        sha256=verified.sha256,
        key_id=verified.key_id,
        signer=verified.signer,
        signed_at=verified.signed_at,
        package=json.loads(raw),
        published_by=username,
        published_at=now,
    )
    session.add(row)
    session.flush()
    return row
