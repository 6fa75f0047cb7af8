"""A Django view that publishes when a recommendation is approved or rejected.

    pip install ./clients/python django
    HUB_URL=http://127.0.0.1:8080 python examples/python/django_app.py runserver 8000
    curl -X POST localhost:8000/recommendations/3/approve

A single-file Django project, to keep the example short; in a real project the
view goes in views.py and the Hub in a module of its own. The view passes its
own idempotency key, derived from what happened ("recommendation 3 approved"):
a double click or a re-sent form publishes once, not twice, and a retry by the
SDK after a lost answer does too.
"""

from __future__ import annotations

import functools
import os
import sys

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from realtime_hub import Hub, HubError

if not settings.configured:
    settings.configure(
        DEBUG=os.environ.get("DEBUG") == "1",
        SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret"),
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["127.0.0.1", "localhost", "testserver"],
    )


@functools.lru_cache(maxsize=1)
def hub() -> Hub:
    """One blocking client per process (it holds a connection pool)."""
    return Hub(os.environ.get("HUB_URL", "http://127.0.0.1:8080"), os.environ.get("HUB_API_KEY"))


@csrf_exempt  # an API endpoint for the example; keep CSRF on for browser forms
@require_POST
def decide(request: HttpRequest, rec_id: int, decision: str) -> HttpResponse:
    if decision not in ("approve", "reject"):
        return JsonResponse({"error": "decision must be approve or reject"}, status=400)
    status = "approved" if decision == "approve" else "rejected"
    try:
        published = hub().publish(
            "recommendations",
            "recommendation_updated",
            {"id": rec_id, "status": status},
            idempotency_key=f"recommendation-{rec_id}-{status}",
        )
    except HubError as err:
        return JsonResponse({"error": f"realtime hub: {err}"}, status=502)
    return JsonResponse(
        {"id": rec_id, "status": status, "seq": published.seq, "duplicate": published.duplicate}
    )


urlpatterns = [path("recommendations/<int:rec_id>/<str:decision>", decide)]


if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
