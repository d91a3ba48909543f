"""CreateRepository, DescribeRepositories, DeleteRepository through boto3 on a live server."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import OTHER, OWNER, client
from tests.server import PierServer


def error_code(info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(info.value.response["Error"]["Code"])


def test_create_returns_arn_uri_and_catalog(ecr: Any, pier: PierServer, repo_name: str) -> None:
    before = datetime.datetime.now(datetime.UTC)
    answer = ecr.create_repository(
        repositoryName=repo_name,
        catalogData={
            "description": "a test image",
            "architectures": ["ARM 64"],
            "operatingSystems": ["Linux"],
            "aboutText": "# About",
            "usageText": "docker pull it",
        },
        tags=[{"Key": "team", "Value": "core"}],
    )
    repository = answer["repository"]
    assert repository["repositoryArn"] == f"arn:aws:ecr-public::{OWNER.id}:repository/{repo_name}"
    assert repository["registryId"] == OWNER.id
    assert repository["repositoryUri"] == f"{pier.host}/{OWNER.alias}/{repo_name}"
    assert repository["createdAt"] >= before - datetime.timedelta(seconds=1)
    assert answer["catalogData"]["description"] == "a test image"
    assert answer["catalogData"]["architectures"] == ["ARM 64"]
    assert answer["catalogData"]["marketplaceCertified"] is False
    tags = ecr.list_tags_for_resource(resourceArn=repository["repositoryArn"])["tags"]
    assert tags == [{"Key": "team", "Value": "core"}]


def test_create_twice_is_already_exists(ecr: Any, repo: str) -> None:
    with pytest.raises(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName=repo)


@pytest.mark.parametrize(
    "name",
    ["UPPER", "trailing-", "a//b", "-lead", "x" * 206, "sp ace", "../etc"],
    ids=["uppercase", "trailing-dash", "empty-segment", "leading-dash", "too-long", "space", "dots"],
)
def test_create_rejects_bad_names(ecr: Any, name: str) -> None:
    with pytest.raises(ClientError) as info:
        ecr.create_repository(repositoryName=name)
    assert error_code(info) == "InvalidParameterException"
    assert "repositoryName" in info.value.response["Error"]["Message"]


def test_create_with_a_bad_tag_changes_nothing(ecr: Any, repo_name: str) -> None:
    with pytest.raises(ecr.exceptions.InvalidTagParameterException):
        ecr.create_repository(repositoryName=repo_name, tags=[{"Key": "aws:reserved", "Value": "x"}])
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.describe_repositories(repositoryNames=[repo_name])


def test_describe_by_names(ecr: Any, repo: str, repo_name: str) -> None:
    found = ecr.describe_repositories(repositoryNames=[repo])["repositories"]
    assert [r["repositoryName"] for r in found] == [repo]
    missing = f"test/missing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException) as info:
        ecr.describe_repositories(repositoryNames=[repo, missing])
    assert missing in str(info.value)


def test_describe_paginates_everything_once(make_server: Any) -> None:
    server = make_server()
    ecr = client(server)
    names = sorted(f"page/r{i:03d}" for i in range(23))
    for name in names:
        ecr.create_repository(repositoryName=name)
    pages = list(ecr.get_paginator("describe_repositories").paginate(PaginationConfig={"PageSize": 5}))
    assert [len(p["repositories"]) for p in pages] == [5, 5, 5, 5, 3]
    assert [r["repositoryName"] for p in pages for r in p["repositories"]] == names
    assert "nextToken" not in pages[-1]
    first = ecr.describe_repositories(maxResults=5)
    assert "nextToken" in first
    # A page is stable while others create repositories: nothing repeats or goes missing.
    ecr.create_repository(repositoryName="page/a-first")
    second = ecr.describe_repositories(maxResults=5, nextToken=first["nextToken"])
    assert [r["repositoryName"] for r in second["repositories"]] == names[5:10]
    assert len(ecr.describe_repositories()["repositories"]) == 24  # default page size is 100


@pytest.mark.parametrize("max_results", [0, 1001], ids=["zero", "over-1000"])
def test_describe_rejects_max_results_out_of_range(pier: PierServer, max_results: int) -> None:
    from tests.signing import call

    response = call(pier.url, OWNER, "DescribeRepositories", {"maxResults": max_results})
    assert response.status_code == 400
    assert response.json()["__type"] == "InvalidParameterException"
    assert "maxResults" in response.json()["message"]


def test_describe_rejects_forged_and_mixed_tokens(ecr: Any, repo: str) -> None:
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.describe_repositories(nextToken="not-a-token")
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.describe_repositories(repositoryNames=[repo], maxResults=5)


def test_delete_removes_the_repository(ecr: Any, repo: str) -> None:
    deleted = ecr.delete_repository(repositoryName=repo)["repository"]
    assert deleted["repositoryName"] == repo
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.describe_repositories(repositoryNames=[repo])
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.delete_repository(repositoryName=repo)


def test_other_accounts_see_nothing(ecr: Any, ecr_other: Any, repo: str) -> None:
    assert repo not in [r["repositoryName"] for r in ecr_other.describe_repositories()["repositories"]]
    with pytest.raises(ecr_other.exceptions.RepositoryNotFoundException):
        ecr_other.describe_repositories(registryId=OWNER.id, repositoryNames=[repo])
    with pytest.raises(ecr_other.exceptions.RepositoryNotFoundException):
        ecr_other.delete_repository(registryId=OWNER.id, repositoryName=repo)
    # Same answer for a name that exists and one that does not: nothing leaks.
    with pytest.raises(ecr_other.exceptions.RepositoryNotFoundException):
        ecr_other.delete_repository(registryId=OWNER.id, repositoryName="test/never-created")
    assert ecr.describe_repositories(repositoryNames=[repo])["repositories"]
    # Each account has its own namespace: the other account may use the same name.
    created = ecr_other.create_repository(repositoryName=repo)["repository"]
    assert created["repositoryUri"].endswith(f"/{OTHER.alias}/{repo}")


def test_repository_limit(make_server: Any) -> None:
    ecr = client(make_server("max_repositories = 2\n"))
    ecr.create_repository(repositoryName="one")
    ecr.create_repository(repositoryName="two")
    with pytest.raises(ecr.exceptions.LimitExceededException):
        ecr.create_repository(repositoryName="three")


def test_repositories_survive_a_restart(make_server: Any) -> None:
    server = make_server()
    client(server).create_repository(repositoryName="durable", catalogData={"description": "kept"})
    server.restart()
    ecr = client(server)
    assert ecr.describe_repositories()["repositories"][0]["repositoryName"] == "durable"
    assert ecr.get_repository_catalog_data(repositoryName="durable")["catalogData"]["description"] == "kept"
