"""Raw signed HTTP requests, for what boto3 will not send (bad bodies, odd headers, tampering)."""

from __future__ import annotations

import datetime
import json
from typing import Any

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.server import Account

TARGET = "SpencerFrontendService."
CONTENT_TYPE = "application/x-amz-json-1.1"


def signed_headers(
    url: str,
    account: Account,
    body: bytes,
    headers: dict[str, str],
    region: str = "us-east-1",
    service: str = "ecr-public",
    when: datetime.datetime | None = None,
    token: str | None = None,
) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url + "/", data=body, headers=headers)
    signer = SigV4Auth(Credentials(account.access_key_id, account.secret_access_key, token), service, region)
    if when is None:
        signer.add_auth(request)
    else:
        # botocore signs "now"; to sign at another time, patch its clock for this one call.
        import botocore.auth

        original = botocore.auth.get_current_datetime
        botocore.auth.get_current_datetime = lambda: when.replace(tzinfo=None)
        try:
            signer.add_auth(request)
        finally:
            botocore.auth.get_current_datetime = original
    return dict(request.headers.items())


def call(
    url: str,
    account: Account,
    operation: str,
    payload: Any = None,
    *,
    body: bytes | None = None,
    content_type: str = CONTENT_TYPE,
    **sign: Any,
) -> httpx.Response:
    data = body if body is not None else json.dumps(payload or {}).encode()
    headers = {"Content-Type": content_type, "X-Amz-Target": TARGET + operation}
    return httpx.post(url + "/", content=data, headers=signed_headers(url, account, data, headers, **sign))
