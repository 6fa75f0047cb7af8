"""Presence (PROTOCOL section 13): Hub.presence() and the join/leave items.
Skipped on a hub that has no presence rooms yet."""

from __future__ import annotations

from pathlib import Path

from realtime_hub import Hub, PresenceChange, PresenceUser, make_token

from .conftest import StartHub, start_or_skip

SECRET = "presence-secret-with-enough-bytes-0123"
CONFIG = """
[[rooms.declare]]
name = "lobby"
presence = true
"""


def test_presence_lists_users_and_tells_joins(start_hub: StartHub, tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(CONFIG)
    hub = start_or_skip(
        start_hub,
        "presence (PROTOCOL section 13)",
        "presence",
        env={"HUB_AUTH__JWT_SECRET": SECRET},
        config=config,
    )
    with (
        Hub(hub.url, trust_env=False) as c,
        c.subscribe("lobby", token=make_token(SECRET, "alice")) as alice,
    ):
        alice.wait_subscribed(timeout=10)
        with c.subscribe("lobby", token=make_token(SECRET, "bob")) as bob:
            bob.wait_subscribed(timeout=10)
            joined = alice.get(timeout=10)
            while isinstance(joined, PresenceChange) and joined.user == "alice":
                joined = alice.get(timeout=10)
            assert joined == PresenceChange("lobby", "bob", joined=True)
            now = c.presence("lobby")
            assert sorted(now.users, key=lambda u: u.user) == [
                PresenceUser("alice", 1),
                PresenceUser("bob", 1),
            ]
            assert now.anonymous == 0
        assert alice.get(timeout=10) == PresenceChange("lobby", "bob", joined=False)
