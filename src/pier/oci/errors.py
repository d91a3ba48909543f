"""Errors on /v2/: the spec's 14 codes, one table from domain error to code and status, one writer.

Body: {"errors": [{"code": ..., "message": ..., "detail": ...}]}. A 401 carries the Bearer challenge,
a 416 the Range the upload has, a 429 Retry-After; a HEAD response carries no body.
"""

from __future__ import annotations

import json

from starlette.responses import Response

from pier import errors
from pier.digests import is_sha256

API_VERSION_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}


class OciError(Exception):
    """An error the door decided itself (bad query parameter, bad credentials, ...)."""

    def __init__(self, code: str, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.headers = headers or {}


# Most specific first.
TABLE: list[tuple[type[errors.PierError], str, int]] = [
    (errors.AuthenticationRequired, "UNAUTHORIZED", 401),
    (errors.AccessDenied, "DENIED", 403),
    (errors.BlobNotFound, "BLOB_UNKNOWN", 404),
    (errors.UploadNotFound, "BLOB_UPLOAD_UNKNOWN", 404),
    (errors.ImageNotFound, "MANIFEST_UNKNOWN", 404),
    (errors.RepositoryNotFound, "NAME_UNKNOWN", 404),
    (errors.RegistryNotFound, "NAME_UNKNOWN", 404),
    (errors.LayersNotFound, "MANIFEST_BLOB_UNKNOWN", 400),
    (errors.ReferencedImagesNotFound, "MANIFEST_BLOB_UNKNOWN", 400),
    (errors.InvalidLayer, "DIGEST_INVALID", 400),
    (errors.ImageDigestDoesNotMatch, "DIGEST_INVALID", 400),
    (errors.SizeInvalid, "SIZE_INVALID", 400),
    (errors.InvalidLayerPart, "BLOB_UPLOAD_INVALID", 416),
    (errors.ManifestInvalid, "MANIFEST_INVALID", 400),
    (errors.NameInvalid, "NAME_INVALID", 400),
    (errors.TooManyUploads, "TOOMANYREQUESTS", 429),
    (errors.LimitExceeded, "DENIED", 403),
    (errors.InvalidParameter, "UNSUPPORTED", 400),
]


def require_digest(value: str) -> str:
    """A digest from the client (path or query), or DIGEST_INVALID."""
    if not is_sha256(value):
        raise OciError("DIGEST_INVALID", 400, f"'{value}' is not a sha256 digest (sha256:<64 lowercase hex digits>)")
    return value


def to_oci(error: errors.PierError) -> OciError:
    for cls, code, status in TABLE:
        if isinstance(error, cls):
            return OciError(code, status, error.message)
    return OciError("UNSUPPORTED", 500, "internal error")


def respond(error: OciError, head: bool = False) -> Response:
    body = b"" if head else json.dumps({"errors": [{"code": error.code, "message": error.message}]}).encode()
    return Response(body, error.status, {**API_VERSION_HEADER, **error.headers}, media_type="application/json")
