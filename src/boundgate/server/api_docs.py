"""``/docs`` (Swagger UI) and ``/redoc`` with their scripts, styles and icon served by the
gateway itself, not from a CDN, so they work on a machine without internet, as the dashboard
does. The assets are the package data of ``fastapi-offline`` (Swagger UI 5, ReDoc); the pages
are FastAPI's own (``fastapi.openapi.docs``), as FastAPI's "Self-hosting JavaScript and CSS
for docs" recipe builds them.

fastapi-offline's ``FastAPIOffline`` factory is not used: its page handlers close over the
app they belong to, and an app built that way was never freed (about 120 MB a gateway,
embedder and pair model included; a test run that builds hundreds was killed for memory).
These handlers read the app from the request.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

DOCS_STATIC = "/docs/static"  # the pages' assets
ASSETS = Path(fastapi_offline.__file__).parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    app = request.app
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{root}{DOCS_STATIC}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{DOCS_STATIC}/swagger-ui.css",
        swagger_favicon_url=f"{root}{DOCS_STATIC}/favicon.png",
        swagger_ui_parameters=app.swagger_ui_parameters,
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    app = request.app
    root = request.scope.get("root_path", "")
    return get_redoc_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{root}{DOCS_STATIC}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{DOCS_STATIC}/favicon.png",
        with_google_fonts=False,
    )


def add_api_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` and their assets on ``app`` (built with
    ``docs_url=None, redoc_url=None``)."""
    app.mount(DOCS_STATIC, StaticFiles(directory=ASSETS), name="docs-static")
    app.include_router(router)
