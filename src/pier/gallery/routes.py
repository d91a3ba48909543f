"""The gallery's routes. They come last in the app: /<alias> catches what nothing else claimed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from pier import errors
from pier.core import gallery
from pier.core.context import Core
from pier.core.pagination import Page
from pier.gallery.pages import TEMPLATES
from pier.web.failures import explain, retry_headers, status_of
from pier.web.threads import run_sync

HEADERS = {
    # Pages run only our own script and style, load images from anywhere (logos), and cannot be framed.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: https:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _filters(request: Request) -> dict[str, Any]:
    params = request.query_params
    return {
        "term": params.get("q", params.get("term", ""))[:200],
        "architectures": params.getlist("architecture"),
        "operating_systems": params.getlist("operatingSystem"),
    }


def _page(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status, headers=HEADERS)


def _next_link(request: Request, token: str | None) -> str | None:
    if token is None:
        return None
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "nextToken"] + [("nextToken", token)]
    return f"{request.url.path}?{urlencode(params)}"


async def _search(request: Request, filters: dict[str, Any], max_results: int | None) -> Page[gallery.Card]:
    """The gallery search the home page and /search share."""
    core: Core = request.app.state.core
    return await run_sync(
        gallery.search,
        core,
        filters["term"],
        filters["architectures"],
        filters["operating_systems"],
        max_results,
        request.query_params.get("nextToken"),
    )


async def home(request: Request) -> Response:
    filters = _filters(request)
    try:
        page = await _search(request, filters, None)
    except errors.InvalidParameter as error:
        return _page(request, "message.html", {"title": "Bad search", "message": error.message}, 400)
    return _page(
        request,
        "home.html",
        {
            **filters,
            "cards": page.items,
            "next": _next_link(request, page.next_token),
            "title": "Public gallery",
            "registry": None,
        },
    )


async def registry(request: Request) -> Response:
    core: Core = request.app.state.core
    alias = request.path_params["alias"]
    filters = _filters(request)
    try:
        page = await run_sync(
            gallery.browse,
            core,
            alias,
            filters["architectures"],
            filters["operating_systems"],
            None,
            request.query_params.get("nextToken"),
        )
    except errors.RegistryNotFound:
        return _page(request, "message.html", {"title": "Not found", "message": f"No registry '{alias}'."}, 404)
    except errors.InvalidParameter as error:
        return _page(request, "message.html", {"title": "Bad filter", "message": error.message}, 400)
    title = page.items[0].display_name if page.items else alias
    return _page(
        request,
        "home.html",
        {
            **filters,
            "cards": page.items,
            "next": _next_link(request, page.next_token),
            "title": title,
            "registry": alias,
        },
    )


async def repository(request: Request) -> Response:
    core: Core = request.app.state.core
    alias, name = request.path_params["alias"], request.path_params["name"].rstrip("/")
    try:
        view = await run_sync(gallery.repository_page, core, alias, name)
    except errors.RepositoryNotFound:
        message = f"No repository '{alias}/{name}'."
        return _page(request, "message.html", {"title": "Not found", "message": message}, 404)
    return _page(request, "repository.html", {"page": view, "card": view.card, "title": f"{alias}/{name}"})


async def search(request: Request) -> Response:
    """GET /search?term=&architecture=&operatingSystem=&maxResults=&nextToken= as JSON."""
    filters = _filters(request)
    raw = request.query_params.get("maxResults")
    try:
        if raw is not None and not raw.isdigit():
            raise errors.InvalidParameter("maxResults must be a number")
        page = await _search(request, filters, int(raw) if raw else None)
    except errors.InvalidParameter as error:
        return JSONResponse({"message": error.message}, 400)
    cards = [
        {
            "alias": c.alias,
            "name": c.name,
            "path": c.path,
            "uri": c.uri,
            "displayName": c.display_name,
            "description": c.description,
            "logoUrl": c.logo_url,
            "architectures": list(c.architectures),
            "operatingSystems": list(c.operating_systems),
            "lastPushedAt": c.last_pushed_at,
            "cacheOf": c.cache_of,
        }
        for c in page.items
    ]
    return JSONResponse({"repositories": cards, "nextToken": page.next_token})


def failsafe(page: str, endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """A page whose store fails says so in a page (JSON for /search): 503 with Retry-After while the
    database or blob store is away, never a bare 500."""

    async def answer(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Exception as raised:
            error = explain(raised)
            status = status_of(error)
            request.app.state.failures.report("gallery", page, status, raised)
            headers = retry_headers(status)
            if page == "search":
                return JSONResponse({"message": error.message}, status, headers)
            title = "Temporarily unavailable" if status == 503 else "Something went wrong"
            response = _page(request, "message.html", {"title": title, "message": error.message}, status)
            response.headers.update(headers)
            return response

    return answer


ROUTES: list[BaseRoute] = [
    Mount("/static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="static"),
    Route("/search", failsafe("search", search), methods=["GET"]),
    Route("/", failsafe("home", home), methods=["GET", "HEAD"]),
    Route("/{alias}", failsafe("registry", registry), methods=["GET", "HEAD"]),
    Route("/{alias}/{name:path}", failsafe("repository", repository), methods=["GET", "HEAD"]),
]
