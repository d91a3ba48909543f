"""TagResource, UntagResource, ListTagsForResource."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import OWNER


def arn(name: str) -> str:
    return f"arn:aws:ecr-public::{OWNER.id}:repository/{name}"


def test_tag_untag_list(ecr: Any, repo: str) -> None:
    ecr.tag_resource(resourceArn=arn(repo), tags=[{"Key": "b", "Value": "2"}, {"Key": "a", "Value": "1"}])
    ecr.tag_resource(resourceArn=arn(repo), tags=[{"Key": "a", "Value": "changed"}])
    assert ecr.list_tags_for_resource(resourceArn=arn(repo))["tags"] == [
        {"Key": "a", "Value": "changed"},
        {"Key": "b", "Value": "2"},
    ]
    ecr.untag_resource(resourceArn=arn(repo), tagKeys=["a", "not-there"])
    assert ecr.list_tags_for_resource(resourceArn=arn(repo))["tags"] == [{"Key": "b", "Value": "2"}]


def test_too_many_tags_changes_nothing(ecr: Any, repo: str) -> None:
    ecr.tag_resource(resourceArn=arn(repo), tags=[{"Key": f"k{i}", "Value": "v"} for i in range(45)])
    with pytest.raises(ecr.exceptions.TooManyTagsException):
        ecr.tag_resource(resourceArn=arn(repo), tags=[{"Key": f"n{i}", "Value": "v"} for i in range(6)])
    assert len(ecr.list_tags_for_resource(resourceArn=arn(repo))["tags"]) == 45


@pytest.mark.parametrize(
    "tag",
    [{"Key": "aws:owner", "Value": "x"}, {"Key": "bad<key>", "Value": "x"}, {"Key": "k", "Value": "bad{value}"}],
    ids=["reserved-prefix", "bad-key", "bad-value"],
)
def test_invalid_tags(ecr: Any, repo: str, tag: dict[str, str]) -> None:
    with pytest.raises(ecr.exceptions.InvalidTagParameterException):
        ecr.tag_resource(resourceArn=arn(repo), tags=[tag])
    with pytest.raises(ecr.exceptions.InvalidTagParameterException):
        ecr.untag_resource(resourceArn=arn(repo), tagKeys=["aws:owner"])


def test_tags_on_bad_or_missing_resources(ecr: Any, ecr_other: Any, repo: str) -> None:
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.list_tags_for_resource(resourceArn="arn:aws:s3:::bucket")
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.list_tags_for_resource(resourceArn=arn("test/nowhere"))
    with pytest.raises(ecr_other.exceptions.RepositoryNotFoundException):
        ecr_other.tag_resource(resourceArn=arn(repo), tags=[{"Key": "a", "Value": "b"}])
