"""The gallery's routes. They come last in the app: /<alias> catches what nothing else claimed.

Every page (home, publisher, repository, image) answers JSON instead of HTML at the same path when the
request prefers `application/json` (Accept), and says `Vary: Accept` either way.
"""

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
from pier.core import gallery, image_pages
from pier.core.context import Core
from pier.gallery import documents
from pier.gallery.pages import TEMPLATES
from pier.web.exchange import exchange
from pier.web.failures import explain, retry_headers, status_of
from pier.web.threads import run_sync

HEADERS = {
    # Pages run only our own script and style, load images from anywhere (logos), and cannot be framed.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: https:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
NEGOTIATED = {**HEADERS, "Vary": "Accept"}  # pages that answer HTML or JSON by the Accept header
SORT_LABELS = {"downloads": "Most downloaded", "pushed": "Recently pushed", "name": "Name", "relevance": "Best match"}


def wants_json(request: Request) -> bool:
    """Whether the client prefers application/json to text/html (by Accept quality; JSON wins a tie)."""
    best = {"json": 0.0, "html": 0.0}
    for part in request.headers.get("accept", "").split(","):
        media, *parameters = part.strip().lower().split(";")
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        kind = {"application/json": "json", "text/html": "html", "application/xhtml+xml": "html"}.get(media.strip())
        if kind:
            best[kind] = max(best[kind], quality)
    return best["json"] > 0 and best["json"] >= best["html"]


def _filters(request: Request) -> dict[str, Any]:
    params = request.query_params
    return {
        "term": params.get("q", params.get("term", ""))[:200],
        "architectures": params.getlist("architecture"),
        "operating_systems": params.getlist("operatingSystem"),
    }


def _page(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status, headers=NEGOTIATED)


def _json(document: dict[str, Any], status: int = 200) -> Response:
    return JSONResponse(document, status, NEGOTIATED)


def _answer(
    request: Request, template: str, context: dict[str, Any], document: Callable[[], dict[str, Any]]
) -> Response:
    return _json(document()) if wants_json(request) else _page(request, template, context)


def _problem(request: Request, status: int, title: str, message: str) -> Response:
    if wants_json(request):
        return _json({"message": message}, status)
    return _page(request, "message.html", {"title": title, "message": message}, status)


def _link(request: Request, **changes: str | None) -> str:
    """This page's address with some parameters changed (None removes one); a new sort starts at page one."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in changes and k != "nextToken"]
    params += [(k, v) for k, v in changes.items() if v is not None]
    return f"{request.url.path}?{urlencode(params)}" if params else request.url.path


def _next_link(request: Request, token: str | None) -> str | None:
    if token is None:
        return None
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "nextToken"] + [("nextToken", token)]
    return f"{request.url.path}?{urlencode(params)}"


def _sorts(request: Request, current: str, choices: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {"value": value, "label": SORT_LABELS[value], "href": _link(request, sort=value), "current": value == current}
        for value in choices
    ]


async def _search(request: Request, filters: dict[str, Any], max_results: int | None) -> gallery.Listing:
    """The listing the request's filters, sort and nextToken ask for (InvalidParameter if they are bad)."""
    params = request.query_params
    return await run_sync(
        gallery.search,
        request.app.state.core,
        filters["term"],
        filters["architectures"],
        filters["operating_systems"],
        max_results,
        params.get("nextToken"),
        params.get("sort"),
    )


async def home(request: Request) -> Response:
    filters = _filters(request)
    try:
        listing = await _search(request, filters, None)
    except errors.InvalidParameter as error:
        return _problem(request, 400, "Bad search", error.message)
    context = {
        **filters,
        "cards": listing.cards,
        "next": _next_link(request, listing.next_token),
        "sorts": _sorts(request, listing.sort, (*gallery.SORTS, "relevance")),
        "title": "Public gallery",
        "registry": None,
        "publisher": None,
    }
    return _answer(request, "home.html", context, lambda: documents.listing(listing))


async def registry(request: Request) -> Response:
    core: Core = request.app.state.core
    alias = request.path_params["alias"]
    filters = _filters(request)
    params = request.query_params
    try:
        found = await run_sync(
            gallery.publisher,
            core,
            alias,
            filters["architectures"],
            filters["operating_systems"],
            None,
            params.get("nextToken"),
            params.get("sort"),
        )
    except errors.RegistryNotFound:
        return _problem(request, 404, "Not found", f"No registry '{alias}'.")
    except errors.InvalidParameter as error:
        return _problem(request, 400, "Bad filter", error.message)
    context = {
        **filters,
        "cards": found.listing.cards,
        "next": _next_link(request, found.listing.next_token),
        "sorts": _sorts(request, found.listing.sort, gallery.SORTS),
        "title": found.display_name,
        "registry": alias,
        "publisher": found,
    }
    return _answer(request, "home.html", context, lambda: documents.publisher(found))


async def repository(request: Request) -> Response:
    """/<alias>/<repository>, or an image of it: /<alias>/<repository>:<tag>, /<alias>/<repository>@<digest>."""
    alias = request.path_params["alias"]
    name, tag, digest = image_pages.parse_reference(request.path_params["name"].rstrip("/"))
    if tag is not None or digest is not None:
        exchange(request.scope).operation = "image"  # its own label in metrics and request lines, not "repository"
        return await image(request, alias, name, tag, digest)
    core: Core = request.app.state.core
    params = request.query_params
    try:
        view = await run_sync(gallery.repository_page, core, alias, name, params.get("sort"), params.get("nextToken"))
    except errors.RepositoryNotFound:
        return _problem(request, 404, "Not found", f"No repository '{alias}/{name}'.")
    except errors.InvalidParameter as error:
        return _problem(request, 400, "Bad request", error.message)
    context = {
        "page": view,
        "card": view.card,
        "title": f"{alias}/{name}",
        "next": _next_link(request, view.next_token),
        "sorts": _sorts(request, view.sort, gallery.TAG_SORTS),
    }
    return _answer(request, "repository.html", context, lambda: documents.repository(view))


async def image(request: Request, alias: str, name: str, tag: str | None, digest: str | None) -> Response:
    core: Core = request.app.state.core
    reference = f"{name}:{tag}" if tag is not None else f"{name}@{digest}"
    try:
        view = await run_sync(image_pages.image_page, core, alias, name, tag, digest)
    except errors.RepositoryNotFound:
        return _problem(request, 404, "Not found", f"No repository '{alias}/{name}'.")
    except errors.ImageNotFound:
        what = f"tag '{tag}'" if tag is not None else f"image '{digest}'"
        return _problem(request, 404, "Not found", f"No {what} in '{alias}/{name}'.")
    context = {"page": view, "card": view.card, "title": f"{alias}/{reference}"}
    return _answer(request, "image.html", context, lambda: documents.image(view))


async def search(request: Request) -> Response:
    """GET /search?term=&architecture=&operatingSystem=&sort=&maxResults=&nextToken= as JSON."""
    filters = _filters(request)
    raw = request.query_params.get("maxResults")
    try:
        if raw is not None and not raw.isdigit():
            raise errors.InvalidParameter("maxResults must be a number")
        listing = await _search(request, filters, int(raw) if raw else None)
    except errors.InvalidParameter as error:
        return JSONResponse({"message": error.message}, 400)
    return JSONResponse(documents.listing(listing))


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
            response = _problem(request, status, title, error.message)
            response.headers.update(headers)
            return response

    return answer


ROUTES: list[BaseRoute] = [
    Mount("/static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="static"),
    Route("/search", failsafe("search", search), methods=["GET"], name="search"),
    Route("/", failsafe("home", home), methods=["GET", "HEAD"], name="home"),
    Route("/{alias}", failsafe("registry", registry), methods=["GET", "HEAD"], name="registry"),
    Route("/{alias}/{name:path}", failsafe("repository", repository), methods=["GET", "HEAD"], name="repository"),
]
