"""TagResource, UntagResource, ListTagsForResource."""

from __future__ import annotations

from typing import Any

from pier.api.operations import Params, operation
from pier.core import resource_tags
from pier.core.context import Core
from pier.core.principals import Caller


@operation("TagResource")
def tag_resource(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    tags = [(tag.get("Key", ""), tag.get("Value", "")) for tag in params["tags"]]
    resource_tags.tag_resource(core, caller, params["resourceArn"], tags)
    return {}


@operation("UntagResource")
def untag_resource(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    resource_tags.untag_resource(core, caller, params["resourceArn"], params["tagKeys"])
    return {}


@operation("ListTagsForResource")
def list_tags_for_resource(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    tags = resource_tags.list_tags_for_resource(core, caller, params["resourceArn"])
    return {"tags": [{"Key": key, "Value": value} for key, value in tags.items()]}
