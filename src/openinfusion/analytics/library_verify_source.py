"""Where a library version to verify comes from: a package published on the server."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from openinfusion.errors import InputError
from openinfusion.library import Library
from openinfusion.library.schema import version_tuple
from openinfusion.library.signing import package_bytes, unverified_library
from openinfusion.server.db import Database
from openinfusion.server.models import PublishedLibrary

DB_FILE = "openinfusion.db"


def published_library(session: Session, version: str) -> Library | None:
    """The library of published ``version`` (its signature was verified on upload), or None."""
    version_tuple(version)  # refuses anything that is not a dotted version
    row = session.scalars(
        select(PublishedLibrary).where(PublishedLibrary.version == version)
    ).first()
    return None if row is None else unverified_library(package_bytes(row.package))


def database_for(db_url: str | None, data_dir: Path) -> Database:
    """The server database from a URL, else ``openinfusion.db`` in ``data_dir`` (read only)."""
    if db_url:
        return Database(db_url)
    path = data_dir / DB_FILE
    if not path.is_file():
        raise InputError("data-dir", str(data_dir), f"holds no server database ({DB_FILE})")
    return Database(f"sqlite:///{path}")


def load_published(db_url: str | None, data_dir: Path, version: str) -> Library:
    """Published library ``version`` from the server database; an error if it is not there."""
    db = database_for(db_url, data_dir)
    try:
        with db.read() as session:
            lib = published_library(session, version)
    finally:
        db.engine.dispose()
    if lib is None:
        raise InputError("version", version, "is not a library version published on the server")
    return lib


__all__ = ["database_for", "load_published", "published_library"]
