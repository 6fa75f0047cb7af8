"""The README's publishing examples run as written (against a hub of their own)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from realtime_hub import Hub

from .conftest import StartHub
from .support.hub import REPO_ROOT

README = (REPO_ROOT / "clients" / "python" / "README.md").read_text()


def block_after(heading: str, nth: int = 0) -> str:
    section = README[README.index(heading) :]
    blocks: list[str] = re.findall(r"```python\n(.*?)```", section, re.S)
    return blocks[nth]


def test_publishing_examples_run(start_hub: StartHub) -> None:
    hub = start_hub()
    sync_code = block_after("## Publishing", 0).replace("http://127.0.0.1:8080", hub.url)
    async_code = block_after("## Publishing", 1).replace("http://127.0.0.1:8080", hub.url)
    exec(compile(sync_code, "README.md", "exec"), {})
    scope: dict[str, Any] = {}
    exec(compile(async_code, "README.md", "exec"), scope)
    asyncio.run(scope["main"]())
    with Hub(hub.url, trust_env=False) as c:
        seqs = {r.room: r.seq for r in c.rooms()}
        assert seqs["alerts"] == 1
        assert seqs["recommendations"] == 2
        assert seqs["hotspots"] == 2  # the batch's and the async example's
