"""make_token against a hub with auth on: HS256 and ES256, claims enforced."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from realtime_hub import Event, Forbidden, Hub, Unauthorized, UserMessage, make_token

from .conftest import StartHub

SECRET = "test-secret-with-enough-bytes-0123456789"


def test_hs256_token_subscribes_and_receives_user_messages(start_hub: StartHub, room: str) -> None:
    secured = start_hub({"HUB_AUTH__JWT_SECRET": SECRET})
    token = make_token(SECRET, "alice", rooms=[room])
    with Hub(secured.url, trust_env=False) as c, c.subscribe(room, token=token) as sub:
        c.publish(room, "t", "for everyone")
        item = sub.get(timeout=10)
        assert isinstance(item, Event)
        assert item.data == "for everyone"
        assert c.publish_to_user("alice", "note", {"hi": 1}) == 1
        note = sub.get(timeout=10)
        assert isinstance(note, UserMessage)
        assert (note.user, note.type, note.data) == ("alice", "note", {"hi": 1})


def test_a_token_function_is_asked_for_each_connection(start_hub: StartHub, room: str) -> None:
    secured = start_hub({"HUB_AUTH__JWT_SECRET": SECRET})
    asked: list[str] = []

    def fresh() -> str:
        asked.append("x")
        return make_token(SECRET, "bob", ttl=60)

    with Hub(secured.url, trust_env=False) as c, c.subscribe(room, token=fresh) as sub:
        c.publish(room, "t", 1)
        assert isinstance(sub.get(timeout=10), Event)
    assert asked == ["x"]


def test_bad_tokens_and_rooms_outside_the_claim_are_refused(start_hub: StartHub, room: str) -> None:
    secured = start_hub({"HUB_AUTH__JWT_SECRET": SECRET})
    with Hub(secured.url, trust_env=False) as c:
        for token in (None, make_token("another-secret-of-enough-length-000", "eve")):
            with c.subscribe(room, token=token) as sub, pytest.raises(Unauthorized) as err:
                sub.get(timeout=10)
            assert err.value.status == 401
        narrow = make_token(SECRET, "carol", rooms=["other*"])
        with c.subscribe(room, token=narrow) as sub, pytest.raises(Forbidden):
            sub.get(timeout=10)


def test_es256_token_from_a_pem_key(start_hub: StartHub, room: str, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = tmp_path / "jwt.pub.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    secured = start_hub({"HUB_AUTH__JWT_PUBLIC_KEY_FILE": str(public)})
    with (
        Hub(secured.url, trust_env=False) as c,
        c.subscribe(room, token=make_token(private, "dave")) as sub,
    ):
        c.publish(room, "t", "signed")
        item = sub.get(timeout=10)
        assert isinstance(item, Event)
        assert item.data == "signed"


def test_make_token_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="sub"):
        make_token(SECRET, "")
    with pytest.raises(ValueError, match="ttl"):
        make_token(SECRET, "x", ttl=0)
