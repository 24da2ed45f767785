"""Server-made ids: 24 lowercase hex characters, opaque to clients."""

import secrets


def new_id() -> str:
    return secrets.token_hex(12)
