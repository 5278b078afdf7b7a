"""Random values that requests carry: nonces and device ids for the providers that sign
their requests (FlowGpt, for one), from :mod:`secrets`."""

from __future__ import annotations

import secrets
import string

__all__ = ["random_string", "random_hex"]

_ALPHABET = string.ascii_lowercase + string.digits


def random_string(length: int = 10) -> str:
    """``length`` random characters from ``[a-z0-9]``."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def random_hex() -> str:
    """32 random lowercase hex characters."""
    return secrets.token_hex(16)
