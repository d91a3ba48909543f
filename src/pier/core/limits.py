"""Every size/count limit and name pattern pier enforces, in one table.

The patterns are ECR Public's. The JSON API also checks them against botocore's model; a contract
test keeps the two equal. The /v2/ door has no model, so it relies on these.
"""

import re

# ECR Public: RepositoryName (max 205), RegistryAliasName (2..50), RegistryId (12 digits).
REPOSITORY_NAME = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")
REPOSITORY_NAME_MIN, REPOSITORY_NAME_MAX = 2, 205
ALIAS = re.compile(r"[a-z][a-z0-9]+(?:[._-][a-z0-9]+)*")
ALIAS_MIN, ALIAS_MAX = 2, 50
ACCOUNT_ID = re.compile(r"[0-9]{12}")

# Image tags: OCI's tag grammar, with ECR's length limit (ImageTag max 300).
IMAGE_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,299}")

# Manifests: ECR's ImageManifest max (4 MiB).
MANIFEST_MAX_BYTES = 4 * 1024 * 1024
# Images per repository (ECR Public's default quota); configurable in pier.toml.
IMAGES_PER_REPOSITORY = 10_000

# Layer uploads. ECR: parts of at least 5 MiB except the last (LayerPartTooSmallException at completion),
# at most 20 MiB per UploadLayerPart (LayerPartBlob max); layers up to 10 GiB.
MIN_PART_SIZE = 5 * 1024 * 1024
PART_SIZE = 10 * 1024 * 1024  # what InitiateLayerUpload suggests
MAX_LAYER_SIZE = 10 * 1024**3

# Uploads in progress at once in one repository; idle uploads expire (and their bytes are removed).
UPLOADS_PER_REPOSITORY = 100
UPLOAD_EXPIRY_SECONDS = 24 * 3600

# Request headers, all of them together (431 past this).
HEADERS_MAX_BYTES = 32 * 1024

# Resource tags, as AWS tagging everywhere: 50 per resource, no "aws:" prefix.
TAGS_PER_RESOURCE = 50
TAG_KEY = re.compile(r"[\w\s.:/=+\-@]*")
TAG_KEY_MAX, TAG_VALUE_MAX = 128, 256
RESERVED_TAG_PREFIX = "aws:"

# ECR Public's default quota of repositories per registry; configurable in pier.toml.
REPOSITORIES_PER_REGISTRY = 10_000

# GetAuthorizationToken: ECR's tokens last 12 hours.
AUTHORIZATION_TOKEN_SECONDS = 12 * 3600

# Pagination: ECR's maxResults default and ceiling.
PAGE_DEFAULT, PAGE_MAX = 100, 1000

# Logo images in catalog data (LogoImageBlob max in the model).
LOGO_MAX_BYTES = 512_000

# A JSON API request body: the largest member is a 20 MiB layer part, base64 encoded (4/3),
# plus the envelope.
API_BODY_MAX = 28 * 1024 * 1024


# First path segments the server uses itself, so no registry alias may take them (the gallery serves
# /<alias>/<repository> on the same port).
RESERVED_ALIASES = frozenset({"v2", "token", "healthz", "logos", "static", "search", "api", "metrics"})


def is_repository_name(name: str) -> bool:
    return REPOSITORY_NAME_MIN <= len(name) <= REPOSITORY_NAME_MAX and REPOSITORY_NAME.fullmatch(name) is not None


def is_image_tag(tag: str) -> bool:
    return IMAGE_TAG.fullmatch(tag) is not None


def is_alias(alias: str) -> bool:
    return ALIAS_MIN <= len(alias) <= ALIAS_MAX and ALIAS.fullmatch(alias) is not None


def is_storable_text(text: str) -> bool:
    """Text every metadata store can keep: valid Unicode (JSON can carry lone surrogates such as "\\ud800")
    and no NUL (PostgreSQL cannot store one)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
