"""Keys, signatures and canonical bytes. Imports only layer 0, so every layer may use it."""

from openinfusion.security.keys import (
    PrivateKey,
    PublicKey,
    b64decode,
    b64encode,
    canonical_json,
    generate_private_key,
    key_id,
    load_private_key,
    load_public_key,
    public_bytes,
    save_private_key,
    save_public_key,
    sign,
    verify,
)

__all__ = [
    "PrivateKey",
    "PublicKey",
    "b64decode",
    "b64encode",
    "canonical_json",
    "generate_private_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "public_bytes",
    "save_private_key",
    "save_public_key",
    "sign",
    "verify",
]
