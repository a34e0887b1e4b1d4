"""Open the server's database for a report, found as ``openinfusion serve`` finds it."""

from __future__ import annotations

from pathlib import Path

from openinfusion.errors import InputError
from openinfusion.server.config import check_db_url
from openinfusion.server.db import Database

DB_FILE = "openinfusion.db"


def database_url(db: str | None, data_dir: Path) -> str:
    """``db`` (SQLite or PostgreSQL URL), else the SQLite file in the server data dir."""
    if db is not None:
        return check_db_url(db)
    path = data_dir / DB_FILE
    if not path.is_file():
        raise InputError(
            "data_dir", str(data_dir), f"holds no server database ({DB_FILE}); give --db URL"
        )
    return f"sqlite:///{path}"


def open_database(db: str | None, data_dir: Path) -> Database:
    """The server database; reports only read from it."""
    return Database(database_url(db, data_dir))


__all__ = ["DB_FILE", "database_url", "open_database"]
