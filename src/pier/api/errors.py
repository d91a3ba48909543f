"""Errors on the JSON API: one table from domain error to ECR exception shape, one status table.

The 24 exception shapes in the ecr-public model carry no HTTP status; AWS JSON services answer client
errors with 400 and server faults with 500, and so does pier. Errors that come before an operation is
known (signature, target, body) use AWS's generic codes, which botocore also recognises.
"""

from __future__ import annotations

from pier import errors


class ApiError(Exception):
    """An error with its wire form already decided (protocol and authentication errors)."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


# Most specific first: the first class an error is an instance of wins.
SHAPES: list[tuple[type[errors.PierError], str]] = [
    (errors.InvalidTagParameter, "InvalidTagParameterException"),
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
]

STATUS = {"ServerException": 500}  # everything else: 400


def to_wire(error: errors.PierError) -> ApiError:
    for cls, shape in SHAPES:
        if isinstance(error, cls):
            return ApiError(shape, STATUS.get(shape, 400), error.message)
    return ApiError("ServerException", 500, "An internal error occurred")
