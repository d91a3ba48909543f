"""Verifying AWS Signature Version 4 on incoming API calls, with botocore's signing maths.

We rebuild the client's canonical request from exactly the headers it says it signed (SignedHeaders),
hash the raw body ourselves (a client-sent X-Amz-Content-SHA256 must match it), let botocore's SigV4Auth
derive the signature for the region in the credential scope, and compare in constant time.

Every failure has its own error code, as AWS answers them:
    MissingAuthenticationTokenException  403  no Authorization header
    IncompleteSignatureException         400  a malformed Authorization header or date
    UnrecognizedClientException          403  unknown (or deleted) access key, or wrong session token
    InvalidSignatureException            403  signature mismatch, wrong service, or a date over 15 min off
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Sequence

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from pier.api.errors import ApiError
from pier.core.users import Credential

SERVICE = "ecr-public"
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = datetime.timedelta(minutes=15)
AMZ_DATE = "%Y%m%dT%H%M%SZ"
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]{64})\s*"
)


_AMZ_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z")


def _amz_date(stamp: str) -> datetime.datetime:
    """YYYYMMDDTHHMMSSZ as a UTC datetime (what strptime(stamp, AMZ_DATE) reads, at a tenth of its cost);
    ValueError otherwise."""
    match = _AMZ_DATE.fullmatch(stamp)
    if match is None:
        raise ValueError(stamp)
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    return datetime.datetime(year, month, day, hour, minute, second, tzinfo=datetime.UTC)


class _ClientSignedHeaders(SigV4Auth):  # type: ignore[misc]
    """SigV4Auth that signs exactly the headers the client named, not botocore's own choice."""

    def __init__(self, credentials: Credentials, region: str, signed: Sequence[str]) -> None:
        super().__init__(credentials, SERVICE, region)
        self._signed = signed

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        chosen = HTTPHeaders()
        for name in self._signed:
            for value in request.headers.get_all(name) or ():
                chosen[name] = value
        return chosen


def verify(
    credentials: Callable[[str], Credential | None],
    method: str,
    url: str,
    headers: Sequence[tuple[str, str]],
    body: bytes | bytearray,
    now: datetime.datetime,
) -> Credential:
    """The credential (an account's root key, or a user's) that signed this request; ApiError otherwise.

    `credentials` finds an access key's credential (it may raise errors.Unavailable when pier cannot
    confirm users' keys right now)."""
    lookup = HTTPHeaders.from_pairs(headers)
    authorization = lookup.get("authorization")
    if not authorization:
        raise ApiError("MissingAuthenticationTokenException", 403, "Missing Authentication Token")
    match = _AUTH.fullmatch(authorization.strip())
    if not match:
        if not authorization.startswith(ALGORITHM):
            raise ApiError(
                "IncompleteSignatureException", 400, f"Authorization header requires the {ALGORITHM} algorithm"
            )
        raise ApiError(
            "IncompleteSignatureException",
            400,
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
            "parameters, separated by commas",
        )
    scope = match["credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise ApiError(
            "IncompleteSignatureException",
            400,
            "Credential must have the form <key>/<date>/<region>/<service>/aws4_request",
        )
    access_key, scope_date, region, service, _ = scope
    signed = match["signed"].split(";")
    if "host" not in signed or signed != sorted(signed):
        raise ApiError(
            "IncompleteSignatureException", 400, "SignedHeaders must be sorted, lowercase and include 'host'"
        )

    stamp = lookup.get("x-amz-date")
    if not stamp or "x-amz-date" not in signed:
        raise ApiError("IncompleteSignatureException", 400, "A signed X-Amz-Date header is required")
    try:
        signed_at = _amz_date(stamp)
    except ValueError:
        raise ApiError(
            "IncompleteSignatureException", 400, f"X-Amz-Date must have the form YYYYMMDDTHHMMSSZ, not {stamp!r}"
        ) from None

    credential = credentials(access_key)
    if credential is None:
        raise ApiError("UnrecognizedClientException", 403, "The security token included in the request is invalid.")
    if credential.session_token is not None:
        token = lookup.get("x-amz-security-token")
        if (
            token is None
            or "x-amz-security-token" not in signed
            or not hmac.compare_digest(token.encode(), credential.session_token.encode())
        ):
            raise ApiError("UnrecognizedClientException", 403, "The security token included in the request is invalid.")
    if service != SERVICE:
        raise ApiError(
            "InvalidSignatureException", 403, f"Credential should be scoped to correct service: '{SERVICE}'."
        )
    if scope_date != stamp[:8]:
        raise ApiError("InvalidSignatureException", 403, f"Credential should be scoped to a valid date: '{stamp[:8]}'.")
    if abs(now - signed_at) > MAX_SKEW:
        raise ApiError(
            "InvalidSignatureException",
            403,
            f"Signature expired: {stamp} is now earlier than {(now - MAX_SKEW).strftime(AMZ_DATE)} "
            f"({now.strftime(AMZ_DATE)} - 15 min.)"
            if signed_at < now
            else f"Signature not yet current: {stamp} is still later than {(now + MAX_SKEW).strftime(AMZ_DATE)} "
            f"({now.strftime(AMZ_DATE)} + 15 min.)",
        )

    body_hash = hashlib.sha256(body).hexdigest()
    claimed = lookup.get("x-amz-content-sha256")
    if claimed is not None and claimed != body_hash:
        raise ApiError(
            "InvalidSignatureException",
            403,
            "The provided x-amz-content-sha256 header does not match what was computed.",
        )

    canonical = canonical_request(method, url, headers, signed, body_hash)
    string_to_sign = "\n".join(
        (
            ALGORITHM,
            stamp,
            f"{scope_date}/{region}/{SERVICE}/aws4_request",
            hashlib.sha256(canonical.encode()).hexdigest(),
        )
    )
    key = _signing_key(credential.secret_access_key, scope_date, region)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), match["signature"].encode()):
        raise ApiError(
            "InvalidSignatureException",
            403,
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )
    return credential


@functools.lru_cache(maxsize=1024)
def _signing_key(secret: str, date: str, region: str) -> bytes:
    """The key a day's signatures in a region are made with (four HMACs), derived once per (key, day, region)."""
    key = hmac.digest(f"AWS4{secret}".encode(), date.encode(), "sha256")
    for part in (region, SERVICE, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


def canonical_request(
    method: str, url: str, headers: Sequence[tuple[str, str]], signed: Sequence[str], body_hash: str
) -> str:
    """The canonical request of SigV4, as botocore builds it, over the headers the client signed (whose
    X-Amz-Content-SHA256, when signed, is the body's hash, already checked against the client's claim).

    API calls are POSTs to "/" without a query, and their canonical request is built here directly
    (botocore's costs ~200 µs in email.message); any other URL, or header names that are not lowercase,
    take botocore's own code."""
    if not url.endswith("/") or url.count("/") != 3 or any(name != name.lower() for name in signed):
        return _botocore_canonical_request(method, url, headers, signed, body_hash)
    values: dict[str, list[str]] = {name: [] for name in signed}
    for name, value in headers:
        lowered = name.lower()
        if lowered in values and lowered != "x-amz-content-sha256":
            values[lowered].append(" ".join(value.split()))
    if "x-amz-content-sha256" in values:
        values["x-amz-content-sha256"].append(body_hash)
    present = sorted(name for name, found in values.items() if found)
    lines = "\n".join(f"{name}:{','.join(values[name])}" for name in present) + "\n"
    return "\n".join((method.upper(), "/", "", lines, ";".join(present), body_hash))


def _botocore_canonical_request(
    method: str, url: str, headers: Sequence[tuple[str, str]], signed: Sequence[str], body_hash: str
) -> str:
    # botocore takes the payload hash from X-Amz-Content-SHA256 when present, so it never needs (or
    # copies) the body; only the names in SignedHeaders enter the canonical headers.
    request = AWSRequest(
        method=method,
        url=url,
        data=b"",
        headers=HTTPHeaders.from_pairs(
            [(n, v) for n, v in headers if n.lower() in signed and n.lower() != "x-amz-content-sha256"]
            + [("X-Amz-Content-SHA256", body_hash)]
        ),
    )
    signer = _ClientSignedHeaders(Credentials("", ""), "", signed)
    return str(signer.canonical_request(request))
