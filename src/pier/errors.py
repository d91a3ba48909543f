"""Domain errors: what went wrong, as facts (names, digests, limits), never as an HTTP status.

Each front door owns one table that maps these classes to its wire codes (api/errors.py for the
AWS JSON API). The message (``str(error)``) is safe to show a client: no secrets, no tokens.

    PierError
    ├── InvalidParameter            a value is well-formed for the wire but wrong for pier
    │   ├── InvalidTagParameter
    │   ├── InvalidNextToken
    │   ├── SizeInvalid             a body whose length is not the one declared
    │   ├── NameInvalid             not <alias>/<repository> with ECR's name rules
    │   ├── DigestInvalid           not a digest, or of an algorithm pier does not support
    │   └── ManifestInvalid         not JSON, not a known schema, or inconsistent
    ├── AuthenticationRequired      anonymous, and the action needs an account
    ├── AccessDenied                a principal without the right to this action here (IAM's words)
    │   └── ReadOnlyCache           a push into a pull-through cache, whose content only its upstream sets
    ├── NotFound
    │   ├── AccountNotFound         no account with that id (user management)
    │   ├── UserNotFound
    │   ├── AccessKeyNotFound
    │   ├── BlobNotFound
    │   ├── RegistryNotFound
    │   ├── RepositoryNotFound
    │   ├── RepositoryPolicyNotFound
    │   ├── RepositoryCatalogDataNotFound
    │   ├── ImageNotFound
    │   ├── UploadNotFound
    │   ├── LayersNotFound          a manifest names blobs the repository does not have
    │   └── ReferencedImagesNotFound  an index names manifests the repository does not have
    ├── RepositoryAlreadyExists
    ├── RepositoryNotEmpty
    ├── UserAlreadyExists
    ├── DeclaredInConfig            a user pier.toml declares: change it there, not with the CLI
    ├── ImageAlreadyExists          the same manifest with the same tag (or none) was pushed before
    ├── ImageDigestDoesNotMatch
    ├── InvalidLayer                the bytes do not have the digest the client named
    ├── InvalidLayerPart            a part that does not continue the upload where it stands
    ├── LayerPartTooSmall
    ├── LayerAlreadyExists
    ├── EmptyUpload
    ├── LimitExceeded
    │   ├── TooManyTags
    │   ├── TooManyUploads          uploads in progress in one repository
    │   ├── LayerTooLarge           a pull-through cache's max_layer_size_bytes
    │   └── CacheFull               a pull-through cache's max_total_size_bytes
    ├── Unsupported                 an operation a later release of pier will serve
    ├── StorageFull                 the disk (or database) has no room for what was sent
    ├── Unavailable                 a store pier depends on does not answer; worth retrying later
    └── UpstreamFailed              a pull-through cache's upstream could not give what was asked
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


class NameInvalid(InvalidParameter):
    def __init__(self, name: str) -> None:
        super().__init__(f"'{name}' is not <alias>/<repository>: lowercase letters, digits and . _ - / separators")


class SizeInvalid(InvalidParameter):
    def __init__(self, declared: int, received: int) -> None:
        super().__init__(f"The request declared {declared} bytes but sent {received}")


class DigestInvalid(InvalidParameter):
    """A digest pier cannot take: malformed, or of an unsupported algorithm. `field` names the API member
    it came in (ECR's "Invalid parameter at ..."), None when a path or query named it."""

    def __init__(self, problem: str, field: str | None = None) -> None:
        super().__init__(
            f"Invalid parameter at '{field}' failed to satisfy constraint: '{problem}'" if field else problem
        )


class ManifestInvalid(InvalidParameter):
    def __init__(self, reason: str) -> None:
        super().__init__(f"Invalid parameter at 'imageManifest' failed to satisfy constraint: {reason}")
        self.reason = reason


class AuthenticationRequired(PierError):
    def __init__(self, action: str) -> None:
        super().__init__(f"Authentication is required to {action}")
        self.action = action


class AccessDenied(PierError):
    """IAM's refusal, in IAM's words: who, which action, on what, and why (no policy allows it, or an
    explicit deny in an identity-based or a resource-based policy)."""

    def __init__(self, principal_arn: str, action: str, resource: str, reason: str) -> None:
        super().__init__(
            f"User: {principal_arn} is not authorized to perform: {action} on resource: {resource} {reason}"
        )
        self.principal_arn = principal_arn
        self.action = action
        self.resource = resource


class ReadOnlyCache(AccessDenied):
    def __init__(self, repository: str, source: str) -> None:
        PierError.__init__(
            self,
            f"{repository} is a read-only pull-through cache of {source}: push to the upstream, and pull through pier",
        )
        self.principal_arn = ""
        self.action = "push"
        self.resource = repository


class NotFound(PierError):
    pass


class BlobNotFound(NotFound):
    def __init__(self, digest: str) -> None:
        super().__init__(f"The blob {digest} is not in the repository")
        self.digest = digest


class ImageNotFound(NotFound):
    def __init__(self, registry_id: str, name: str, image: str) -> None:
        super().__init__(
            f"The image with imageId {image} does not exist within the repository with name '{name}' "
            f"in the registry with id '{registry_id}'"
        )
        self.image = image


class UploadNotFound(NotFound):
    def __init__(self, upload_id: str) -> None:
        super().__init__(f"The upload with id '{upload_id}' does not exist")
        self.upload_id = upload_id


class LayersNotFound(NotFound):
    def __init__(self, digests: list[str]) -> None:
        super().__init__(f"The layer(s) {', '.join(digests)} do not exist in the repository")
        self.digests = digests


class ReferencedImagesNotFound(NotFound):
    def __init__(self, digests: list[str]) -> None:
        super().__init__(f"The manifest(s) {', '.join(digests)} referenced by the index do not exist in the repository")
        self.digests = digests


class RegistryNotFound(NotFound):
    def __init__(self, registry: str) -> None:
        super().__init__(f"The registry '{registry}' does not exist")
        self.registry = registry


class RepositoryNotFound(NotFound):
    def __init__(self, registry_id: str, name: str) -> None:
        super().__init__(f"The repository with name '{name}' does not exist in the registry with id '{registry_id}'")
        self.registry_id = registry_id
        self.name = name
        self.registry_id = registry_id
        self.name = name


class AccountNotFound(NotFound):
    def __init__(self, account_id: str, known: list[str]) -> None:
        super().__init__(f"There is no account {account_id!r} (accounts: {', '.join(known)})")


class UserNotFound(NotFound):
    def __init__(self, account_id: str, name: str) -> None:
        super().__init__(f"The user with name {name} cannot be found in account {account_id}")


class AccessKeyNotFound(NotFound):
    def __init__(self, account_id: str, name: str, access_key_id: str) -> None:
        super().__init__(f"The access key {access_key_id} of user {name} cannot be found in account {account_id}")


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


class UserAlreadyExists(PierError):
    def __init__(self, account_id: str, name: str) -> None:
        super().__init__(f"User with name {name} already exists in account {account_id}")


class DeclaredInConfig(PierError):
    def __init__(self, account_id: str, name: str) -> None:
        super().__init__(
            f"The user {name} of account {account_id} is declared in pier.toml; change it there "
            "(the CLI changes only the users it created)"
        )


class ImageAlreadyExists(PierError):
    def __init__(self, digest: str, tag: str | None) -> None:
        with_tag = f" and tag '{tag}'" if tag else ""
        super().__init__(f"Image with digest '{digest}'{with_tag} already exists in the repository")
        self.digest = digest


class ImageDigestDoesNotMatch(PierError):
    def __init__(self, given: str, actual: str) -> None:
        super().__init__(f"The imageDigest '{given}' does not match the digest of the manifest, '{actual}'")


class InvalidLayer(PierError):
    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"The layer digest '{expected}' does not match the digest of the uploaded bytes, '{actual}'")


class InvalidLayerPart(PierError):
    def __init__(self, registry_id: str, name: str, upload_id: str, last_valid_byte: int, reason: str) -> None:
        super().__init__(reason)
        self.registry_id = registry_id
        self.name = name
        self.upload_id = upload_id
        self.last_valid_byte = last_valid_byte


class LayerPartTooSmall(PierError):
    def __init__(self, minimum: int) -> None:
        super().__init__(f"Layer parts must be at least {minimum} bytes, except the last")


class LayerAlreadyExists(PierError):
    def __init__(self, digest: str) -> None:
        super().__init__(f"The layer '{digest}' already exists in the repository")


class EmptyUpload(PierError):
    def __init__(self, upload_id: str) -> None:
        super().__init__(f"The upload with id '{upload_id}' contains no data")


class LimitExceeded(PierError):
    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"The limit of {limit} {what} has been exceeded")
        self.what = what
        self.limit = limit


class TooManyTags(LimitExceeded):
    pass


class TooManyUploads(LimitExceeded):
    pass


class LayerTooLarge(LimitExceeded):
    def __init__(self, prefix: str, source: str, digest: str, size: int, limit: int) -> None:
        PierError.__init__(
            self,
            f"The blob {digest} of {source} is {size} bytes, larger than the {limit} bytes the pull-through "
            f"cache {prefix} takes (max_layer_size_bytes); it is not fetched",
        )
        self.what, self.limit = "bytes in one layer of a pull-through cache", limit


class CacheFull(LimitExceeded):
    def __init__(self, prefix: str, digest: str, size: int, used: int, limit: int) -> None:
        PierError.__init__(
            self,
            f"The pull-through cache {prefix} holds {used} of its {limit} bytes (max_total_size_bytes): the "
            f"blob {digest} ({size} bytes) does not fit; delete cached images (BatchDeleteImage) to make room",
        )
        self.what, self.limit = "bytes in a pull-through cache", limit


class Unsupported(PierError):
    def __init__(self, operation: str) -> None:
        super().__init__(f"The operation {operation} is not supported by this pier server yet")


class StorageFull(PierError):
    """No room left where the bytes or rows go. Nothing was acknowledged; the request may be repeated (an
    upload from its last acknowledged offset) once room is made."""

    def __init__(self, where: str) -> None:
        super().__init__(f"storage is full: {where} has no room left; nothing of this request was kept")
        self.where = where


class Unavailable(PierError):
    """A dependency (the metadata database, the blob store) failed in a way that is worth retrying."""

    RETRY_AFTER = 5  # seconds a client is asked to wait

    def __init__(self, dependency: str, detail: str) -> None:
        super().__init__(f"the {dependency} is unavailable ({detail}); try again shortly")
        self.dependency = dependency
        self.detail = detail


class UpstreamFailed(PierError):
    """The upstream of a pull-through cache did not give what was asked, and pier has nothing cached to
    answer with instead. `kind` says how (the door chooses its status from it); the message names the
    upstream's host, and never carries credentials."""

    UNREACHABLE = "unreachable"  # no connection, or it broke
    TIMEOUT = "timeout"  # it did not answer in time
    BUSY = "busy"  # 429 or 503: worth retrying later
    FAILED = "failed"  # another 5xx
    DENIED = "denied"  # 401/403 with pier's credentials (or none)
    NOT_FOUND = "not found"  # 404: no such repository, tag or blob upstream
    INVALID = "invalid"  # bytes that are not what was asked (a wrong digest, a short body, not a manifest)

    def __init__(self, host: str, kind: str, detail: str, retry_after: int | None = None) -> None:
        super().__init__(f"The upstream registry {host} {detail}")
        self.host = host
        self.kind = kind
        self.detail = detail
        self.retry_after = retry_after
