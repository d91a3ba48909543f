"""Set/Get/DeleteRepositoryPolicy: the IAM grammar is checked and the text stored as given."""

from __future__ import annotations

import json
from typing import Any

import pytest

POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "pull",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
                "Action": ["ecr-public:BatchCheckLayerAvailability", "ecr-public:Put*"],
            },
            {"Effect": "Allow", "Principal": {"AWS": ["777788889999"]}, "NotAction": "ecr-public:Delete*"},
            {"Effect": "Deny", "Principal": "*", "Action": "ecr-public:DeleteRepository"},
        ],
    },
    indent=1,
)


def test_set_get_delete(ecr: Any, repo: str) -> None:
    with pytest.raises(ecr.exceptions.RepositoryPolicyNotFoundException):
        ecr.get_repository_policy(repositoryName=repo)
    answer = ecr.set_repository_policy(repositoryName=repo, policyText=POLICY)
    assert answer["policyText"] == POLICY and answer["repositoryName"] == repo
    assert ecr.get_repository_policy(repositoryName=repo)["policyText"] == POLICY  # byte for byte
    assert ecr.delete_repository_policy(repositoryName=repo)["policyText"] == POLICY
    with pytest.raises(ecr.exceptions.RepositoryPolicyNotFoundException):
        ecr.delete_repository_policy(repositoryName=repo)


BAD = {
    "not-json": "{",
    "not-an-object": "[]",
    "no-statement": '{"Version": "2012-10-17"}',
    "bad-version": '{"Version": "2020-01-01", "Statement": {"Effect": "Allow", "Principal": "*", "Action": "*"}}',
    "bad-effect": '{"Statement": {"Effect": "Maybe", "Principal": "*", "Action": "ecr-public:*"}}',
    "no-principal": '{"Statement": {"Effect": "Allow", "Action": "ecr-public:*"}}',
    "no-action": '{"Statement": {"Effect": "Allow", "Principal": "*"}}',
    "foreign-action": '{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}}',
    "bad-principal": '{"Statement": {"Effect": "Allow", "Principal": {"AWS": "bob"}, "Action": "ecr-public:*"}}',
    "unknown-key": '{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "*", "Oops": 1}}',
}


@pytest.mark.parametrize("text", BAD.values(), ids=BAD.keys())
def test_invalid_policies_are_rejected_and_change_nothing(ecr: Any, repo: str, text: str) -> None:
    with pytest.raises(ecr.exceptions.InvalidParameterException) as info:
        ecr.set_repository_policy(repositoryName=repo, policyText=text)
    assert "Invalid repository policy provided" in str(info.value)
    with pytest.raises(ecr.exceptions.RepositoryPolicyNotFoundException):
        ecr.get_repository_policy(repositoryName=repo)


def test_policy_size_limit_reaches_the_server(ecr: Any, repo: str) -> None:
    huge = json.dumps({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "*", "Sid": "x" * 10300}})
    with pytest.raises(ecr.exceptions.InvalidParameterException) as info:
        ecr.set_repository_policy(repositoryName=repo, policyText=huge)
    assert "policyText" in str(info.value)


def test_policy_on_a_missing_repository(ecr: Any) -> None:
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.set_repository_policy(repositoryName="test/nowhere", policyText=POLICY)
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.get_repository_policy(repositoryName="test/nowhere")
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.delete_repository_policy(repositoryName="test/nowhere")
