"""Domain errors: what went wrong, as facts (names, digests, limits), never as an HTTP status.

Each front door owns one table that maps these classes to its wire codes (api/errors.py for the
AWS JSON API). The message (``str(error)``) is safe to show a client: no secrets, no tokens.

    PierError
    ├── InvalidParameter            a value is well-formed for the wire but wrong for pier
    │   ├── InvalidTagParameter
    │   └── InvalidNextToken
    ├── NotFound
    │   ├── RegistryNotFound
    │   ├── RepositoryNotFound
    │   ├── RepositoryPolicyNotFound
    │   └── RepositoryCatalogDataNotFound
    ├── RepositoryAlreadyExists
    ├── RepositoryNotEmpty
    ├── LimitExceeded
    │   └── TooManyTags
    └── Unsupported                 an operation a later release of pier will serve
"""

from __future__ import annotations


class PierError(Exception):
    """Base of every error the core raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParameter(PierError):
    pass


class InvalidTagParameter(InvalidParameter):
    pass


class InvalidNextToken(InvalidParameter):
    def __init__(self) -> None:
        super().__init__("Invalid parameter at 'nextToken' failed to satisfy constraint: 'Invalid token'")


class NotFound(PierError):
    pass


class RegistryNotFound(NotFound):
    def __init__(self, registry: str) -> None:
        super().__init__(f"The registry '{registry}' does not exist")
        self.registry = registry


class RepositoryNotFound(NotFound):
    def __init__(self, registry_id: str, name: str) -> None:
        super().__init__(f"The repository with name '{name}' does not exist in the registry with id '{registry_id}'")
        self.registry_id = registry_id
        self.name = name


class RepositoryPolicyNotFound(NotFound):
    def __init__(self, registry_id: str, name: str) -> None:
        super().__init__(
            f"Repository policy does not exist for the repository with name '{name}' "
            f"in the registry with id '{registry_id}'"
        )


class RepositoryCatalogDataNotFound(NotFound):
    pass


class RepositoryAlreadyExists(PierError):
    def __init__(self, registry_id: str, name: str) -> None:
        super().__init__(f"The repository with name '{name}' already exists in the registry with id '{registry_id}'")


class RepositoryNotEmpty(PierError):
    def __init__(self, registry_id: str, name: str) -> None:
        super().__init__(
            f"The repository with name '{name}' in registry with id '{registry_id}' cannot be deleted "
            "because it still contains images"
        )


class LimitExceeded(PierError):
    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"The limit of {limit} {what} has been exceeded")
        self.what = what
        self.limit = limit


class TooManyTags(LimitExceeded):
    pass


class Unsupported(PierError):
    def __init__(self, operation: str) -> None:
        super().__init__(f"The operation {operation} is not supported by this pier server yet")
