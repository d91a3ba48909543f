"""Resource tags on repositories (TagResource, UntagResource, ListTagsForResource).

AWS tagging rules: at most 50 tags, keys 1-128 and values 0-256 characters of letters, digits, spaces
and _ . : / = + - @, and no key may start with the reserved "aws:".
"""

from __future__ import annotations

from collections.abc import Sequence

from pier import errors
from pier.core import limits
from pier.core.access import find_repository
from pier.core.accounts import parse_repository_arn
from pier.core.context import Core
from pier.core.principals import Caller
from pier.storage.metadata import RepositoryRow


def check(tags: Sequence[tuple[str, str]]) -> dict[str, str]:
    checked: dict[str, str] = {}
    for key, value in tags:
        check_key(key)
        if len(value) > limits.TAG_VALUE_MAX or not limits.TAG_KEY.fullmatch(value):
            raise errors.InvalidTagParameter(f"The tag value of '{key}' is not valid")
        if key in checked:
            raise errors.InvalidTagParameter(f"The tag key '{key}' appears more than once")
        checked[key] = value
    if len(checked) > limits.TAGS_PER_RESOURCE:
        raise errors.TooManyTags("tags on one resource", limits.TAGS_PER_RESOURCE)
    return checked


def check_key(key: str) -> None:
    if key.lower().startswith(limits.RESERVED_TAG_PREFIX):
        raise errors.InvalidTagParameter(f"The tag key '{key}' uses the reserved prefix 'aws:'")
    if not 1 <= len(key) <= limits.TAG_KEY_MAX or not limits.TAG_KEY.fullmatch(key):
        raise errors.InvalidTagParameter(f"The tag key '{key}' is not valid")


def _repository(core: Core, caller: Caller, arn: str, action: str) -> RepositoryRow:
    parsed = parse_repository_arn(arn)
    if parsed is None:
        raise errors.InvalidParameter(f"Invalid parameter at 'resourceArn': '{arn}' is not a repository ARN")
    registry_id, name = parsed
    return find_repository(core, caller, registry_id, name, action)


def tag_resource(core: Core, caller: Caller, arn: str, tags: Sequence[tuple[str, str]]) -> None:
    row = _repository(core, caller, arn, "TagResource")
    core.meta.change_tags(row.id, put=check(tags), remove=(), limit=limits.TAGS_PER_RESOURCE)


def untag_resource(core: Core, caller: Caller, arn: str, keys: Sequence[str]) -> None:
    row = _repository(core, caller, arn, "UntagResource")
    for key in keys:
        check_key(key)
    core.meta.change_tags(row.id, put={}, remove=keys, limit=limits.TAGS_PER_RESOURCE)


def list_tags_for_resource(core: Core, caller: Caller, arn: str) -> dict[str, str]:
    return core.meta.get_tags(_repository(core, caller, arn, "ListTagsForResource").id)
