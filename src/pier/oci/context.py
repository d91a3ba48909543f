"""What every /v2/ handler gets: the request, the core, the caller, and the repository it acts on."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from pier.core.accounts import Account
from pier.core.context import Core
from pier.storage.metadata import RepositoryRow


@dataclass(frozen=True)
class OciRequest:
    request: Request
    core: Core
    caller: Account | None
    repository: RepositoryRow
    name: str  # <alias>/<repository>, as in the URL

    def url(self, path: str) -> str:
        """An absolute URL on the host the client used (Location headers)."""
        return str(self.request.base_url).rstrip("/") + path
