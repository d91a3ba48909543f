"""pier's API against botocore's model: every operation served, every error shape reachable."""

from __future__ import annotations

import pytest

from pier.api import dispatch, model
from pier.api.errors import SHAPES
from pier.core import limits


def test_every_operation_has_a_handler() -> None:
    assert set(dispatch.HANDLERS) == set(model.operation_names())
    assert len(dispatch.HANDLERS) == 23


def test_every_error_shape_is_mapped_or_is_a_server_fault() -> None:
    shapes = model.service_model().error_shapes
    modelled = {shape.name for shape in shapes}
    mapped = {name for _, name in SHAPES}
    assert mapped - {"AccessDeniedException"} <= modelled, mapped - modelled
    # ImageTagAlreadyExists is for immutable tags, which ECR Public does not have.
    assert modelled - mapped == {"ImageTagAlreadyExistsException", "ServerException"}


@pytest.mark.parametrize(
    "shape, pattern, bounds",
    [
        ("RepositoryName", limits.REPOSITORY_NAME.pattern, (limits.REPOSITORY_NAME_MIN, limits.REPOSITORY_NAME_MAX)),
        ("RegistryAliasName", limits.ALIAS.pattern, (limits.ALIAS_MIN, limits.ALIAS_MAX)),
    ],
)
def test_core_patterns_match_the_model(shape: str, pattern: str, bounds: tuple[int, int]) -> None:
    found = model.service_model().shape_for(shape)
    assert found.metadata["pattern"] == pattern
    assert (found.metadata["min"], found.metadata["max"]) == bounds


def test_paginated_operations_are_the_models() -> None:
    assert set(model.paginators()) == {
        "DescribeImageTags",
        "DescribeImages",
        "DescribeRegistries",
        "DescribeRepositories",
    }
