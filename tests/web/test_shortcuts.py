"""web/shortcuts.py answers /v2/ and /token without Starlette's router, which is right only while no route
of another door that comes before them in the route table matches such a path: checked here over the table
the app is built with, for every method the /v2/ table knows."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Match

from pier.app import create_app
from pier.config import load
from pier.oci.routes import METHODS, ROUTES, SHORTCUTS

PATHS = [
    "/token",
    "/v2/",
    "/v2/alias/name/manifests/latest",
    "/v2/alias/deep/name/manifests/sha256:" + "0" * 64,
    "/v2/alias/name/blobs/uploads/",
    "/v2/alias/name/blobs/uploads/0b6f3e1c-2d4a-4e5f-8a9b-0c1d2e3f4a5b",
    "/v2/alias/name/blobs/sha256:" + "0" * 64,
    "/v2/alias/name/tags/list",
    "/v2/alias/name/referrers/sha256:" + "0" * 64,
    "/v2/_catalog",
    "/v2/anything/else",
]


def test_no_route_of_another_door_before_v2_matches_its_paths(tmp_path: Path) -> None:
    app = create_app(load(env={}, flags={"data_dir": tmp_path}))
    first = next(i for i, route in enumerate(app.routes) if route is ROUTES[0])
    before = app.routes[:first]
    assert before, "the API and web routes come first in the table"
    for path in PATHS:
        for method in METHODS:
            scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
            matched = [getattr(route, "path", route) for route in before if route.matches(scope)[0] is not Match.NONE]
            assert matched == [], f"{method} {path} is matched by {matched} before the /v2/ table"
    assert [route for route in ROUTES if route in SHORTCUTS] == SHORTCUTS  # in the table's order
