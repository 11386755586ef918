"""The dashboard: one HTML shell for every page and its static files, under
``/dashboard`` so that nothing collides with Sematic's own dashboard (``/``,
``/pipelines/...``, ``/runs/...``) when the service fronts a Sematic server.
The pages read the JSON API; they hold no data themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

PREFIX = "/dashboard"
STATIC_DIR = Path(__file__).resolve().parent / "static"
INDEX = STATIC_DIR / "index.html"


async def page(request: Request) -> Response:
    return FileResponse(INDEX, headers={"Cache-Control": "no-cache"})


async def to_dashboard(request: Request) -> Response:
    return RedirectResponse(f"{PREFIX}/", status_code=307)


ROUTES: list[BaseRoute] = [
    Route(PREFIX, to_dashboard, methods=["GET"]),
    Route(f"{PREFIX}/", page, methods=["GET"]),
    Route(PREFIX + "/pipelines/{function_path:path}", page, methods=["GET"]),
    Route(PREFIX + "/runs/{run_id:path}", page, methods=["GET"]),
    Mount(f"{PREFIX}/static", app=StaticFiles(directory=STATIC_DIR, check_dir=False), name="static"),
]
# Without a Sematic server in front of it, the root opens the dashboard.
ROOT_ROUTES: list[BaseRoute] = [Route("/", to_dashboard, methods=["GET"])]
OPENAPI_SCHEMAS: list[type] = []
OPENAPI_PATHS: dict[str, dict[str, Any]] = {}
