"""Errors on the JSON API: one table from domain error to ECR exception shape, one status table.

The 24 exception shapes in the ecr-public model carry no HTTP status; AWS JSON services answer client
errors with 400 and server faults with 500, and so does pier. Errors that come before an operation is
known (signature, target, body) use AWS's generic codes, which botocore also recognises.
"""

from __future__ import annotations

from pier import errors


class ApiError(Exception):
    """An error with its wire form already decided (protocol and authentication errors)."""

    def __init__(
        self,
        code: str,
        status: int,
        message: str,
        fields: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.fields = fields or {}  # members the exception shape has besides message
        self.headers = headers or {}


# Most specific first: the first class an error is an instance of wins.
SHAPES: list[tuple[type[errors.PierError], str]] = [
    (errors.InvalidTagParameter, "InvalidTagParameterException"),
    (errors.ImageNotFound, "ImageNotFoundException"),
    (errors.UploadNotFound, "UploadNotFoundException"),
    (errors.LayersNotFound, "LayersNotFoundException"),
    (errors.ReferencedImagesNotFound, "ReferencedImagesNotFoundException"),
    (errors.ImageAlreadyExists, "ImageAlreadyExistsException"),
    (errors.ImageDigestDoesNotMatch, "ImageDigestDoesNotMatchException"),
    (errors.InvalidLayer, "InvalidLayerException"),
    (errors.InvalidLayerPart, "InvalidLayerPartException"),
    (errors.LayerPartTooSmall, "LayerPartTooSmallException"),
    (errors.LayerAlreadyExists, "LayerAlreadyExistsException"),
    (errors.EmptyUpload, "EmptyUploadException"),
    (errors.InvalidParameter, "InvalidParameterException"),
    (errors.RegistryNotFound, "RegistryNotFoundException"),
    (errors.RepositoryNotFound, "RepositoryNotFoundException"),
    (errors.RepositoryPolicyNotFound, "RepositoryPolicyNotFoundException"),
    (errors.RepositoryCatalogDataNotFound, "RepositoryCatalogDataNotFoundException"),
    (errors.RepositoryAlreadyExists, "RepositoryAlreadyExistsException"),
    (errors.RepositoryNotEmpty, "RepositoryNotEmptyException"),
    (errors.TooManyTags, "TooManyTagsException"),
    (errors.LimitExceeded, "LimitExceededException"),
    (errors.Unsupported, "UnsupportedCommandException"),
    # Not in the ecr-public model, but the code every AWS service uses (botocore raises it as a ClientError).
    (errors.AccessDenied, "AccessDeniedException"),
]

STATUS = {"ServerException": 500}  # everything else: 400


def to_wire(error: errors.PierError) -> ApiError:
    if isinstance(error, errors.StorageFull):  # ServerException, the model's shape, with a status that says why
        return ApiError("ServerException", 507, error.message)
    if isinstance(error, errors.Unavailable):  # 503: every SDK retries it, after Retry-After
        return ApiError("ServerException", 503, error.message, {}, {"Retry-After": str(error.RETRY_AFTER)})
    for cls, shape in SHAPES:
        if isinstance(error, cls):
            return ApiError(shape, STATUS.get(shape, 400), error.message, _fields(error))
    return ApiError("ServerException", 500, "An internal error occurred; it has been logged")


def _fields(error: errors.PierError) -> dict[str, object]:
    if isinstance(error, errors.InvalidLayerPart):
        return {
            "registryId": error.registry_id,
            "repositoryName": error.name,
            "uploadId": error.upload_id,
            "lastValidByteReceived": error.last_valid_byte,
        }
    return {}
