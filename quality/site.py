"""Serving the reports: the quality page and its JSON, and the Great Expectations Data Docs, as static files.

``create_app(settings)`` is a small ASGI app (``hub quality serve`` runs it; the exchange API can mount
it): ``/quality/`` the page, ``/quality.json`` the figures for monitoring, ``/data_docs/`` the Data Docs.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from hub.settings import Settings, get_settings
from quality.report import report_dirs


def create_app(settings: Settings | None = None) -> Starlette:
    """The report site of ``settings`` (default: the process settings)."""
    settings = settings or get_settings()
    page_dir, docs_dir, _gx = report_dirs(settings)
    page_dir.mkdir(parents=True, exist_ok=True)
    docs_dir.mkdir(parents=True, exist_ok=True)

    async def report_json(_request: Request) -> Response:
        path = page_dir / "quality.json"
        if not path.exists():
            return JSONResponse({"error": "no quality report yet: run the pipeline (hub run) or hub quality report"},
                                status_code=404)
        return FileResponse(path, media_type="application/json")

    async def root(_request: Request) -> Response:
        return RedirectResponse("/quality/")

    return Starlette(routes=[
        Route("/", root),
        Route("/quality.json", report_json),
        Mount("/quality", StaticFiles(directory=page_dir, html=True), name="quality"),
        Mount("/data_docs", StaticFiles(directory=docs_dir, html=True), name="data_docs"),
    ])
