"""Errors on /v2/: the spec's 14 codes, one table from domain error to code and status, one writer.

Body: {"errors": [{"code": ..., "message": ..., "detail": ...}]}. A 401 carries the Bearer challenge,
a 416 the Range the upload has, a 429 and a 503 Retry-After; a HEAD response carries no body. Failures
that are not the client's use distribution's extra codes: UNAVAILABLE (503, worth retrying), UNKNOWN
(500), and INSUFFICIENT_STORAGE (507) for a full disk.
"""

from __future__ import annotations

import json

from starlette.responses import Response

from pier import digests, errors
from pier.web.admission import RETRY_AFTER, TooManyBodies
from pier.web.bodies import BodyError, BodyTimeout
from pier.web.failures import Internal, explain

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
    (errors.DigestInvalid, "DIGEST_INVALID", 400),
    (errors.TooManyUploads, "TOOMANYREQUESTS", 429),
    (errors.LimitExceeded, "DENIED", 403),
    (errors.InvalidParameter, "UNSUPPORTED", 400),
    (errors.StorageFull, "INSUFFICIENT_STORAGE", 507),
    (errors.Unavailable, "UNAVAILABLE", 503),
    (Internal, "UNKNOWN", 500),
]


def require_digest(value: str) -> str:
    """A digest from the client (path or query) that pier supports (sha256 or sha512), or DIGEST_INVALID
    with a message that names the supported ones."""
    problem = digests.problem(value)
    if problem is not None:
        raise OciError("DIGEST_INVALID", 400, problem)
    return value


def to_oci(error: errors.PierError) -> OciError:
    for cls, code, status in TABLE:
        if isinstance(error, cls):
            headers = {"Retry-After": str(errors.Unavailable.RETRY_AFTER)} if status == 503 else None
            return OciError(code, status, error.message, headers)
    return OciError("UNKNOWN", 500, "internal error")


def for_failure(failure: Exception) -> OciError:
    """The answer to anything a handler raised that is not already a door or domain error."""
    if isinstance(failure, BodyTimeout):
        return OciError("BLOB_UPLOAD_INVALID", 408, f"{failure}; the upload keeps what was acknowledged")
    if isinstance(failure, BodyError):  # the client went away, or pier is stopping
        return OciError("UNAVAILABLE", 503, str(failure), {"Retry-After": str(errors.Unavailable.RETRY_AFTER)})
    if isinstance(failure, TooManyBodies):
        return OciError("TOOMANYREQUESTS", 429, str(failure), {"Retry-After": str(RETRY_AFTER)})
    return to_oci(explain(failure))


def respond(error: OciError, head: bool = False, headers: dict[str, str] | None = None) -> Response:
    body = b"" if head else json.dumps({"errors": [{"code": error.code, "message": error.message}]}).encode()
    all_headers = {**API_VERSION_HEADER, **error.headers, **(headers or {})}
    return Response(body, error.status, all_headers, media_type="application/json")
