"""Server settings, checked before anything starts (an insecure data dir is refused)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from openinfusion.errors import InputError

DEFAULT_PORT = 8080


class Settings(BaseModel):
    """Everything the server needs to start. ``db_url`` defaults to SQLite in ``data_dir``."""

    model_config = ConfigDict(frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=1, le=65535)
    data_dir: Path
    db_url: str | None = None
    token_lifetime_s: int = Field(8 * 3600, ge=60, le=7 * 24 * 3600)
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    max_frame_bytes: int = Field(256 * 1024, ge=1024)
    online_window_s: float = 30.0
    command_ttl_s: int = Field(60, ge=5, le=60)  # the protocol caps command life at 60 s
    enrolment_token_ttl_s: int = Field(15 * 60, ge=60, le=3600)
    # C-26: one user may command at most this many distinct pumps per window.
    mass_action_pumps: int = Field(5, ge=1)
    mass_action_window_s: float = Field(60.0, gt=0)
    # C-13: failures allowed before back-off, then 2**k seconds, capped.
    login_free_failures: int = Field(3, ge=1)
    login_backoff_cap_s: float = Field(900.0, gt=0)
    gateway_batch_max: int = Field(500, ge=1)
    # HL7 v2 over MLLP (docs/hl7-transport.md). Inbound: orders from the EHR, when a port
    # is given. Outbound: PCD-01/PCD-04 to each "host:port" destination.
    hl7_listen_host: str = "127.0.0.1"
    hl7_listen_port: int | None = Field(None, ge=0, le=65535)
    hl7_max_frame_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    hl7_frame_timeout_s: float = Field(30.0, gt=0)
    hl7_idle_timeout_s: float = Field(300.0, gt=0)
    hl7_max_connections: int = Field(64, ge=1, le=10_000)
    hl7_destinations: tuple[str, ...] = Field((), max_length=16)
    hl7_status_interval_s: float = Field(60.0, ge=0)
    hl7_ack_timeout_s: float = Field(10.0, gt=0)
    hl7_retry_base_s: float = Field(1.0, gt=0)
    hl7_retry_max_s: float = Field(300.0, gt=0)
    hl7_ae_retries: int = Field(3, ge=0)
    hl7_forward_interval_s: float = Field(1.0, gt=0)

    @property
    def database_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{self.data_dir / 'openinfusion.db'}"

    @property
    def server_key_path(self) -> Path:
        return self.data_dir / "server-key.pem"

    @property
    def credentials_path(self) -> Path:
        return self.data_dir / "demo-credentials.json"


def prepare_data_dir(settings: Settings) -> Path:
    """Create the data dir (mode 700) or refuse one other users can read or write."""
    path = settings.data_dir
    if not path.exists():
        path.mkdir(parents=True, mode=0o700)
        os.chmod(path, 0o700)
    if not path.is_dir():
        raise InputError("data_dir", str(path), "must be a directory")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise InputError(
            "data_dir",
            str(path),
            f"has mode {mode:o}: group or others can access it (run chmod 700 on it)",
        )
    if path.stat().st_uid != os.getuid():
        raise InputError("data_dir", str(path), "must belong to the user running the server")
    return path


def check_db_url(url: str) -> str:
    """Accept SQLite and PostgreSQL (psycopg 3) URLs only, naming the rule otherwise."""
    if url.startswith("sqlite:///"):
        return url
    if url.startswith(("postgresql://", "postgresql+psycopg://")):
        return url.replace("postgresql://", "postgresql+psycopg://", 1)
    raise InputError(
        "db", url.rsplit("@", maxsplit=1)[-1], "must be sqlite:///PATH or postgresql://..."
    )
