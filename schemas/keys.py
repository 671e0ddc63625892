"""API keys: generated at random, stored only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import secrets


def new_api_key() -> str:
    return secrets.token_urlsafe(32)


def hash_api_key(key: str) -> bytes:
    # Keys are 256-bit random strings (or long client-chosen ones), so a fast hash
    # is enough: there is nothing to brute-force that a slow hash would protect.
    return hashlib.sha256(key.encode()).digest()


def key_prefix(key: str) -> str:
    return key[:6]
