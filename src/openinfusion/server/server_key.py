"""The server's own Ed25519 key (signs challenges, acks and commands; never libraries)."""

from __future__ import annotations

from openinfusion.security import PrivateKey, generate_private_key, load_private_key
from openinfusion.security import save_private_key as _save
from openinfusion.server.config import Settings


def load_or_create_server_key(settings: Settings) -> tuple[PrivateKey, bool]:
    """The key in ``DATA_DIR/server-key.pem``, created (mode 600) on first start."""
    path = settings.server_key_path
    if path.exists():
        return load_private_key(path), False
    key = generate_private_key()
    _save(key, path)
    return key, True
