"""PutImage, DescribeImages, DescribeImageTags, BatchDeleteImage.

Not served yet: they arrive with the data-plane work (issue 3), and until then answer
UnsupportedCommandException rather than a fake success.
"""

from __future__ import annotations

from typing import Any

from pier import errors
from pier.api.operations import Params, operation
from pier.core.accounts import Account
from pier.core.context import Core


def _unsupported(name: str) -> None:
    @operation(name)
    def handler(core: Core, caller: Account, params: Params) -> dict[str, Any]:
        raise errors.Unsupported(name)


for _name in ("PutImage", "DescribeImages", "DescribeImageTags", "BatchDeleteImage"):
    _unsupported(_name)
