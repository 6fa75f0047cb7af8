"""The runnable examples in examples/python, against a real hub."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any

import pytest

from realtime_hub import Hub

from .support.hub import REPO_ROOT, HubProcess

EXAMPLES = REPO_ROOT / "examples" / "python"


def load(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # Django imports its ROOT_URLCONF by name
    spec.loader.exec_module(module)
    return module


def test_fastapi_example_publishes_from_a_route(
    hub: HubProcess, client: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    monkeypatch.setenv("HUB_URL", hub.url)
    before = {r.room: r.seq for r in client.rooms()}
    app: Any = load("fastapi_app").app
    with TestClient(app) as http:
        answer = http.post("/hotspots", json={"zone": 4, "severity": "high"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["seq"] == before["hotspots"] + 1
    last = client.history("hotspots", since=before["hotspots"]).events
    assert [e.data for e in last] == [{"zone": 4, "severity": "high"}]
    alerts = client.history("alerts", since=before["alerts"]).events
    assert [e.data for e in alerts] == [{"zone": 4, "level": "high"}]


def test_django_example_publishes_once_per_decision(
    hub: HubProcess, client: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("django")
    monkeypatch.setenv("HUB_URL", hub.url)
    load("django_app")
    import django
    from django.test import Client

    django.setup()
    before = {r.room: r.seq for r in client.rooms()}["recommendations"]
    http = Client()
    first = http.post("/recommendations/3/approve")
    again = http.post("/recommendations/3/approve")  # a double click
    assert first.status_code == 200, first.content
    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
    assert first.json()["seq"] == again.json()["seq"] == before + 1
    assert http.post("/recommendations/3/maybe").status_code == 400
    events = client.history("recommendations", since=before).events
    assert [e.data for e in events] == [{"id": 3, "status": "approved"}]
