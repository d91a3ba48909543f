"""A client of one upstream registry (the OCI distribution API), on the event loop.

Authentication is the registry's own: a 401 with `WWW-Authenticate: Bearer realm=...,service=...` is
answered by fetching a token from the realm for `repository:<name>:pull` (with the rule's credentials as
Basic, or anonymously), kept per scope until it expires; a `Basic` challenge is answered with the rule's
credentials. The credentials' values come from the environment variables the rule names, and never reach
a log or an error message.

Every wait has a bound: connecting (CONNECT_TIMEOUT), and each read (READ_TIMEOUT: an upstream that stops
sending in the middle of a blob ends that fetch, and only the requests that need it). Redirects (a CDN for
blobs) are followed; aiohttp drops the Authorization header when one leads to another origin. Bodies are
taken as sent (no decompression): a digest is of those bytes. Failures are UpstreamFailed, whose kind the
door turns into 502, 503, 504 or 404.

aiohttp rather than httpx: reading a blob costs 0.5 CPU s per GiB with aiohttp's C parser and its
protocol-level buffering, 2.6 with httpx on anyio (which reads 64 KiB at a time and re-arms the socket
for each read), measured on this machine (see bench/pullthrough.py).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from pier import __version__, errors
from pier.core import limits, manifests
from pier.core.pullthrough import Rule

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0  # seconds an upstream may send nothing, whether it has answered yet or not
READ_BUFFER = 2 * 1024 * 1024
MANIFEST_ACCEPT = ", ".join(manifests.MANIFEST_TYPES)
TOKEN_MAX_BYTES = 1024 * 1024
TOKEN_DEFAULT_SECONDS = 60  # the distribution spec's default expires_in
_CHALLENGE_PARAMETER = re.compile(r'(\w+)\s*=\s*"([^"]*)"')

Failed = errors.UpstreamFailed


@dataclass(frozen=True)
class Manifest:
    """A manifest as the upstream answered it (no body for a HEAD)."""

    digest: str | None  # Docker-Content-Digest, as announced (checked against the bytes before use)
    media_type: str | None
    data: bytes | None


class Upstream:
    def __init__(self, rule: Rule, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.rule = rule
        self.host = rule.upstream_host
        self._credentials = (
            (env[rule.credentials.username_env], env[rule.credentials.password_env]) if rule.credentials else None
        )
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[str, tuple[str, float]] = {}  # scope -> (Authorization value, expiry on the monotonic clock)
        self._basic = False  # the upstream asked for Basic: send it with every request

    def _client(self) -> aiohttp.ClientSession:
        """The session, made on first use (on the event loop that serves)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT),
                connector=aiohttp.TCPConnector(limit=100),
                headers={"User-Agent": f"pier/{__version__} (pull-through cache)", "Accept-Encoding": "identity"},
                auto_decompress=False,
                # Bytes buffered before the socket is paused: aiohttp's 64 KiB default pauses and re-arms
                # the socket every 128 KiB of a blob, a fifth of the event loop's time.
                read_bufsize=READ_BUFFER,
                trust_env=False,  # no proxies or .netrc from the environment: the rule says where to go
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def manifest(self, repository: str, reference: str, *, head: bool = False) -> Manifest:
        path = f"/v2/{repository}/manifests/{reference}"
        async with self._send("HEAD" if head else "GET", path, repository, {"Accept": MANIFEST_ACCEPT}) as response:
            media_type = response.headers.get("Content-Type", "").split(";")[0].strip() or None
            digest = response.headers.get("Docker-Content-Digest")
            if head:
                return Manifest(digest, media_type, None)
            if response.content_length is not None and response.content_length > limits.MANIFEST_MAX_BYTES:
                detail = f"sent a manifest of {response.content_length} bytes (pier keeps up to 4 MiB)"
                raise Failed(self.host, Failed.INVALID, detail)
            body = bytearray()
            async for chunk in self.chunks(response):
                body += chunk
                if len(body) > limits.MANIFEST_MAX_BYTES:
                    raise Failed(self.host, Failed.INVALID, "sent a manifest larger than 4 MiB")
            return Manifest(digest, media_type, bytes(body))

    async def blob_size(self, repository: str, digest: str) -> int | None:
        async with self._send("HEAD", f"/v2/{repository}/blobs/{digest}", repository) as response:
            return response.content_length

    @asynccontextmanager
    async def blob(self, repository: str, digest: str) -> AsyncIterator[aiohttp.ClientResponse]:
        """The upstream's answer to GET of the blob, its body not read yet (read it with chunks())."""
        async with self._send("GET", f"/v2/{repository}/blobs/{digest}", repository) as response:
            yield response

    async def chunks(self, response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        """The body as it arrives, in the chunks the parser made of each socket read (up to 256 KiB), never
        joined: iter_any() joins whatever is buffered, a copy of every byte on the event loop into fresh
        memory, which was a third of the loop's time on a first pull. A body that stalls or breaks is
        UpstreamFailed."""
        try:
            async for chunk, _ in response.content.iter_chunks():
                yield chunk
        except TimeoutError:
            raise Failed(self.host, Failed.TIMEOUT, f"sent nothing for {READ_TIMEOUT:g} s") from None
        except aiohttp.ClientError as error:
            raise Failed(self.host, Failed.UNREACHABLE, f"broke off ({_brief(error)})") from None

    @asynccontextmanager
    async def _send(
        self, method: str, path: str, repository: str, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One request, answering the upstream's authentication challenge once if it makes one; a status
        of 400 or more is UpstreamFailed."""
        scope = f"repository:{repository}:pull"
        response = await self._request(method, path, {**(headers or {}), **self._authorization(scope)})
        try:
            if response.status == 401:
                authorization = await self._answer(response.headers.get("WWW-Authenticate", ""), scope)
                if authorization:  # else the 401 stands: nothing pier has answers that challenge
                    response.release()
                    response = await self._request(method, path, {**(headers or {}), **authorization})
            if response.status >= 400:
                await self._fail(response, method, path)
            yield response
        finally:
            response.release()

    async def _request(self, method: str, path: str, headers: Mapping[str, str]) -> aiohttp.ClientResponse:
        try:
            return await self._client().request(method, self.rule.upstream + path, headers=headers, max_redirects=5)
        except TimeoutError:
            raise Failed(self.host, Failed.TIMEOUT, f"did not answer within {READ_TIMEOUT:g} s") from None
        except aiohttp.ClientError as error:
            raise Failed(self.host, Failed.UNREACHABLE, f"could not be reached ({_brief(error)})") from None

    def _authorization(self, scope: str) -> dict[str, str]:
        if self._basic and self._credentials is not None:
            return {"Authorization": aiohttp.BasicAuth(*self._credentials).encode()}
        token = self._tokens.get(scope)
        if token is not None and token[1] > time.monotonic():
            return {"Authorization": token[0]}
        return {}

    async def _answer(self, challenge: str, scope: str) -> dict[str, str]:
        """The Authorization header that answers a 401's challenge (nothing, when none can)."""
        scheme, _, rest = challenge.strip().partition(" ")
        parameters = dict(_CHALLENGE_PARAMETER.findall(rest))
        if scheme.lower() == "basic":
            if self._credentials is None:
                return {}
            self._basic = True
            return {"Authorization": aiohttp.BasicAuth(*self._credentials).encode()}
        if scheme.lower() != "bearer" or not parameters.get("realm", "").startswith(("https://", "http://")):
            return {}
        query = {"scope": scope}
        if "service" in parameters:
            query["service"] = parameters["service"]
        auth = aiohttp.BasicAuth(*self._credentials) if self._credentials is not None else None
        try:
            async with self._client().get(parameters["realm"], params=query, auth=auth) as answer:
                if answer.status != 200:
                    detail = f"refused a token for {scope} (HTTP {answer.status}); check the rule's credentials"
                    raise Failed(self.host, Failed.DENIED, detail)
                body = bytearray()  # read(n) answers what has arrived: a token may come in several pieces
                async for piece in answer.content.iter_chunked(64 * 1024):
                    body += piece
                    if len(body) > TOKEN_MAX_BYTES:
                        break
        except TimeoutError:
            raise Failed(self.host, Failed.TIMEOUT, "did not answer a token request in time") from None
        except aiohttp.ClientError as error:
            raise Failed(self.host, Failed.UNREACHABLE, f"could not be reached for a token ({_brief(error)})") from None
        if len(body) > TOKEN_MAX_BYTES:
            raise Failed(self.host, Failed.INVALID, "answered a token request with too much")
        try:
            document = json.loads(body)
            token = document.get("token") or document.get("access_token")
            seconds = int(document.get("expires_in") or TOKEN_DEFAULT_SECONDS)
        except (ValueError, TypeError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise Failed(self.host, Failed.INVALID, "answered a token request without a token")
        value = f"Bearer {token}"
        # Renewed a little early, so a token never expires between being chosen and being checked.
        self._tokens[scope] = (value, time.monotonic() + max(seconds - 10, 1))
        return {"Authorization": value}

    async def _fail(self, response: aiohttp.ClientResponse, method: str, path: str) -> None:
        status = response.status
        said = ""
        if method != "HEAD":
            try:
                said = _error_text(json.loads(await response.content.read(64 * 1024)))
            except (TimeoutError, ValueError, aiohttp.ClientError):
                said = ""
        what = f"answered {status} to {method} {path}" + (f": {said}" if said else "")
        if status == 404:
            raise Failed(self.host, Failed.NOT_FOUND, what)
        if status in (401, 403):
            raise Failed(self.host, Failed.DENIED, f"{what} (check the rule's credentials)")
        if status in (429, 502, 503, 504):
            retry = response.headers.get("Retry-After", "")
            raise Failed(self.host, Failed.BUSY, what, int(retry) if retry.isdigit() else None)
        raise Failed(self.host, Failed.FAILED, what)


def _error_text(document: Any) -> str:
    """The first error of an OCI error body, briefly."""
    found = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(found, list) or not found or not isinstance(found[0], dict):
        return ""
    first = found[0]
    return f"{first.get('code', '')} {first.get('message', '')}".strip()[:200]


def _brief(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:150]}" if text else type(error).__name__
