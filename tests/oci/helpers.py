"""Logging in to /v2/ the way clients do: a password from GetAuthorizationToken, a token from /token."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from tests.server import PierServer


def password(ecr: Any) -> str:
    token = ecr.get_authorization_token()["authorizationData"]["authorizationToken"]
    return base64.b64decode(token).decode().split(":", 1)[1]


def bearer(server: PierServer | Any, ecr: Any | None = None, scope: str = "") -> dict[str, str]:
    """Authorization header with a bearer token: the account's if `ecr` is given, else anonymous."""
    auth = ("AWS", password(ecr)) if ecr is not None else None
    response = httpx.get(f"{server.url}/token", params={"service": server.host, "scope": scope}, auth=auth)
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['token']}"}


def basic(ecr: Any) -> dict[str, str]:
    value = base64.b64encode(f"AWS:{password(ecr)}".encode()).decode()
    return {"Authorization": f"Basic {value}"}
