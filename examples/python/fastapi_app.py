"""A FastAPI service that publishes into the hub from its routes.

    pip install ./clients/python fastapi uvicorn
    HUB_URL=http://127.0.0.1:8080 python examples/python/fastapi_app.py   # serves :8000
    curl -X POST localhost:8000/hotspots -H 'content-type: application/json' \
         -d '{"zone": 4, "severity": "high"}'

One AsyncHub for the whole app (a connection pool), opened and closed with it.
Each publish carries an idempotency key, so the SDK's retries through a hub
restart or a timeout never raise the same alert twice.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel

from realtime_hub import AsyncHub, HubError, RetryPolicy


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with AsyncHub(
        os.environ.get("HUB_URL", "http://127.0.0.1:8080"),
        os.environ.get("HUB_API_KEY") or None,
        retry=RetryPolicy(deadline=5.0),  # what a request handler can afford to wait
    ) as hub:
        app.state.hub = hub
        yield


app = FastAPI(lifespan=lifespan)


class Hotspot(BaseModel):
    zone: int
    severity: str


@app.post("/hotspots")
async def report_hotspot(hotspot: Hotspot, request: Request) -> dict[str, object]:
    hub: AsyncHub = request.app.state.hub
    try:
        detected = await hub.publish("hotspots", "hotspot_detected", hotspot.model_dump())
        if hotspot.severity == "high":
            await hub.publish("alerts", "alert_raised", {"zone": hotspot.zone, "level": "high"})
    except HubError as err:
        raise HTTPException(status_code=502, detail=f"realtime hub: {err}") from err
    return {"room": detected.room, "seq": detected.seq, "delivered": detected.delivered}


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
