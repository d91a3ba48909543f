"""/v2/ and /token answered without Starlette's router: an anonymous manifest GET is most of what a
registry answers, and walking the route table (a regular expression per route tried) and the exception
middleware around it cost a fair share of what is left of such a request once its answer is in memory;
pushes paid the same, up to a dozen regular expressions per request.

Shortcuts sits innermost among the middleware (every request still meets Observe, LastResort, HeaderLimit
and BodyGuard) and hands a request that one of its routes matches straight to that route's endpoint, with
the scope the router would have set (`route`, `endpoint`, `path_params`: metrics, request lines and the
endpoint see no difference). It may only be given routes the router would pick first for such a request
(no earlier route matches their paths) whose endpoints answer every failure themselves (oci/routes.py's
`guarded` and `unguarded`); anything else goes on to the router.

Only a route that takes the request's method is tried: it alone can match fully, so the first full match
among them is the router's, and a /v2/ request tries one or two regular expressions instead of up to a
dozen. A path that matches a route but not its method goes on to the router (405 and the like).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send


class Shortcuts:
    def __init__(self, app: ASGIApp, routes: list[Route]) -> None:
        self.app = app
        self.by_method: dict[str, list[Route]] = {}  # in the routes' order
        for route in routes:
            for method in route.methods or ():
                self.by_method.setdefault(method, []).append(route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route in self.by_method.get(scope["method"], ()):
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope["route"] = route
                    scope.update(child_scope)
                    response = await route.endpoint(Request(scope, receive, send))
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
