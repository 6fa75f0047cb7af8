"""Minting the JWTs that browsers present to the hub (contract section 7)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import jwt


def _algorithm(key: str | bytes) -> str:
    text = key.decode("ascii", "replace") if isinstance(key, bytes) else key
    if "-----BEGIN" not in text:
        return "HS256"
    if "EC PRIVATE KEY" in text:
        return "ES256"
    if "RSA PRIVATE KEY" in text:
        return "RS256"
    # PKCS#8 ("PRIVATE KEY") does not say which: ask the key itself.
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    loaded = load_pem_private_key(text.encode(), password=None)
    return "ES256" if isinstance(loaded, ec.EllipticCurvePrivateKey) else "RS256"


def make_token(
    secret_or_key: str | bytes,
    sub: str,
    rooms: Sequence[str] | None = None,
    publish: Sequence[str] | None = None,
    ttl: float = 3600,
    *,
    claims: dict[str, Any] | None = None,
) -> str:
    """A token for user ``sub``, valid for ``ttl`` seconds.

    ``secret_or_key`` is the hub's ``auth.jwt_secret`` (HS256), or the PEM private
    key whose public half is ``auth.jwt_public_key_file`` (RS256 or ES256, by the
    key's type; needs ``pip install realtime-hub[crypto]``). ``rooms`` limits what
    the token may subscribe to (names or ``prefix*``; None = all), ``publish``
    what it may publish into from the socket (None = nothing). ``claims`` adds
    any others.
    """
    if not sub:
        raise ValueError("sub must be a non-empty user id")
    if not ttl > 0:
        raise ValueError(f"ttl must be > 0, got {ttl}")
    now = int(time.time())
    payload: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + int(ttl)}
    if rooms is not None:
        payload["rooms"] = list(rooms)
    if publish is not None:
        payload["publish"] = list(publish)
    if claims:
        payload.update(claims)
    return jwt.encode(payload, secret_or_key, algorithm=_algorithm(secret_or_key))
