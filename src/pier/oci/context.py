"""What every /v2/ handler gets: the request, the core, the caller, and the repository it acts on."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from pier.core.context import Core
from pier.core.principals import Caller
from pier.storage.metadata import RepositoryRow


@dataclass(frozen=True)
class OciRequest:
    request: Request
    core: Core
    caller: Caller | None
    repository: RepositoryRow
    name: str  # <alias>/<repository>, as in the URL

    def url(self, path: str) -> str:
        """An absolute URL on the host the client used (Location headers)."""
        # What request.base_url gives, without parsing a URL object for every upload step.
        scope = self.request.scope
        host = self.request.headers.get("host")
        if not host:
            server_host, server_port = scope["server"]
            host = f"{server_host}:{server_port}"
        return f"{scope['scheme']}://{host}{scope.get('root_path', '').rstrip('/')}{path}"
