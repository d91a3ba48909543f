"""IAM users: managed with `pier users`, held to their identity policies on the API and on /v2/, combined
with repository policies as IAM combines them, with AccessDeniedException in AWS's words."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.api.test_js_sdk import failed, ok, run_js
from tests.conftest import OTHER, OWNER, owner_env
from tests.images import digest_of, push_image
from tests.jssdk import installed_js_sdk
from tests.server import Account, PierServer
from tests.users import (
    LOGIN,
    PUSH,
    access_denied,
    allow,
    create_user,
    deny,
    pier_users,
    policy_file,
    repository_arn,
    user_client,
)


def refused(call: Any, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    error: dict[str, str] = info.value.response["Error"]
    return error


def bearer_for(server: PierServer, ecr: Any) -> dict[str, str]:
    token = ecr.get_authorization_token()["authorizationData"]["authorizationToken"]
    password = base64.b64decode(token).decode().split(":", 1)[1]
    response = httpx.get(f"{server.url}/token", params={"service": server.host}, auth=("AWS", password))
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['token']}"}


def test_the_cli_manages_users_and_refuses_what_it_must(pier: PierServer, tmp_path: Path) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    arn, keys = create_user(pier, tmp_path, allow("ecr-public:DescribeRepositories"), name=name)
    assert arn == f"arn:aws:iam::{OWNER.id}:user/{name}"
    user = user_client(pier, keys)
    user.describe_repositories()

    duplicate = pier_users(pier, "create", OWNER.id, name)
    assert duplicate.returncode != 0 and "already exists" in duplicate.stderr
    unknown = pier_users(pier, "create", "999999999999", "someone")
    assert unknown.returncode != 0 and "There is no account '999999999999'" in unknown.stderr

    # A malformed policy is refused, and the one in force stays.
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"Statement": {"Effect": "Allow", "Action": "ecr-public:*"}}))  # no Resource
    malformed = pier_users(pier, "put-policy", OWNER.id, name, str(bad))
    assert malformed.returncode != 0 and "MalformedPolicyDocument" in malformed.stderr
    user.describe_repositories()

    second = json.loads(pier_users(pier, "create-key", OWNER.id, name, "--json").stdout)
    third = pier_users(pier, "create-key", OWNER.id, name)
    assert third.returncode != 0 and "2 access keys per user" in third.stderr
    listed = json.loads(pier_users(pier, "list", OWNER.id, "--json").stdout)["users"]
    mine = next(u for u in listed if u["name"] == name)
    assert mine["arn"] == arn and mine["source"] == "database"
    assert sorted(mine["accessKeyIds"]) == sorted([keys.access_key_id, second["accessKeyId"]])
    for secret in (keys.secret_access_key, second["secretAccessKey"]):
        assert secret not in json.dumps(listed)

    gone = pier_users(pier, "delete-key", OWNER.id, name, "AKPUNOSUCHKEY0000000")
    assert gone.returncode != 0 and "cannot be found" in gone.stderr
    assert pier_users(pier, "delete", OWNER.id, name).returncode == 0
    again = pier_users(pier, "delete", OWNER.id, name)
    assert again.returncode != 0 and "cannot be found" in again.stderr


def test_a_read_only_user_describes_but_cannot_tag(pier: PierServer, ecr: Any, repo: str, tmp_path: Path) -> None:
    manifest, _ = push_image(ecr, repo, "v1")
    arn, keys = create_user(pier, tmp_path, allow(["ecr-public:Describe*", "ecr-public:Get*", "ecr-public:List*"]))
    reader = user_client(pier, keys)
    assert [r["repositoryName"] for r in reader.describe_repositories(repositoryNames=[repo])["repositories"]] == [repo]
    assert reader.describe_images(repositoryName=repo)["imageDetails"][0]["imageTags"] == ["v1"]
    assert reader.describe_image_tags(repositoryName=repo)["imageTagDetails"]
    resource = repository_arn(repo)
    assert reader.list_tags_for_resource(resourceArn=resource)["tags"] == []

    error = refused(reader.put_image, repositoryName=repo, imageManifest=manifest.decode(), imageTag="v2")
    assert error["Code"] == "AccessDeniedException"
    assert error["Message"] == access_denied(arn, "ecr-public:PutImage", resource)
    error = refused(reader.tag_resource, resourceArn=resource, tags=[{"Key": "team", "Value": "x"}])
    assert error["Message"] == access_denied(arn, "ecr-public:TagResource", resource)
    error = refused(reader.delete_repository, repositoryName=repo, force=True)
    assert error["Message"] == access_denied(arn, "ecr-public:DeleteRepository", resource)
    # Nothing changed.
    assert ecr.describe_images(repositoryName=repo)["imageDetails"][0]["imageTags"] == ["v1"]
    assert ecr.list_tags_for_resource(resourceArn=resource)["tags"] == []


def test_a_ci_user_pushes_only_where_its_policy_says(pier: PierServer, ecr: Any, tmp_path: Path) -> None:
    prefix = f"ci{uuid.uuid4().hex[:8]}"
    team, other = f"{prefix}/team/api", f"{prefix}/other/api"
    for name in (team, other):
        ecr.create_repository(repositoryName=name)
    arn, keys = create_user(pier, tmp_path, LOGIN, allow(PUSH, repository_arn(f"{prefix}/team/*")))
    ci = user_client(pier, keys)
    push_image(ci, team, "v1")
    assert ecr.describe_images(repositoryName=team)["imageDetails"][0]["imageTags"] == ["v1"]
    error = refused(ci.initiate_layer_upload, repositoryName=other)
    assert error["Message"] == access_denied(arn, "ecr-public:InitiateLayerUpload", repository_arn(other))
    error = refused(ci.delete_repository, repositoryName=team, force=True)
    assert error["Message"] == access_denied(arn, "ecr-public:DeleteRepository", repository_arn(team))
    error = refused(ci.create_repository, repositoryName=f"{prefix}/team/new")
    assert error["Code"] == "AccessDeniedException"

    # The /v2/ door, with the user's login: the same decisions, 403 DENIED naming the action.
    auth = bearer_for(pier, ci)
    data = f"blob {uuid.uuid4()}".encode()
    for name, status in ((team, 201), (other, 403)):
        response = httpx.post(
            f"{pier.url}/v2/{OWNER.alias}/{name}/blobs/uploads/",
            params={"digest": digest_of(data)},
            content=data,
            headers=auth,
        )
        assert response.status_code == status, response.text
    denied = response.json()["errors"][0]
    assert denied["code"] == "DENIED"
    assert denied["message"] == access_denied(arn, "ecr-public:InitiateLayerUpload", repository_arn(other))
    deleted = httpx.delete(f"{pier.url}/v2/{OWNER.alias}/{team}/manifests/v1", headers=auth)
    assert deleted.status_code == 403 and "ecr-public:BatchDeleteImage" in deleted.text
    # Pulls stay public, with or without the login.
    assert httpx.get(f"{pier.url}/v2/{OWNER.alias}/{other}/tags/list").status_code == 200


def test_an_explicit_deny_in_the_repository_policy_beats_an_identity_allow(
    pier: PierServer, ecr: Any, repo: str, tmp_path: Path
) -> None:
    arn, keys = create_user(pier, tmp_path, LOGIN, allow("ecr-public:*"))
    ecr.set_repository_policy(
        repositoryName=repo,
        policyText=json.dumps(
            {"Statement": {"Effect": "Deny", "Principal": {"AWS": arn}, "Action": "ecr-public:PutImage"}}
        ),
    )
    user = user_client(pier, keys)
    user.describe_images(repositoryName=repo)  # allowed: the deny is for PutImage only
    manifest, _ = push_image(ecr, repo, "v1")
    error = refused(user.put_image, repositoryName=repo, imageManifest=manifest.decode(), imageTag="v2")
    assert error["Message"] == access_denied(arn, "ecr-public:PutImage", repository_arn(repo), "resource deny")
    # And on /v2/.
    response = httpx.put(
        f"{pier.url}/v2/{OWNER.alias}/{repo}/manifests/v2",
        content=manifest,
        headers={**bearer_for(pier, user), "Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert response.status_code == 403 and "explicit deny in a resource-based policy" in response.text


def test_an_explicit_deny_in_the_identity_policy_wins_too(
    pier: PierServer, ecr: Any, repo: str, tmp_path: Path
) -> None:
    arn, keys = create_user(pier, tmp_path, allow("ecr-public:*"), deny("ecr-public:Delete*"))
    user = user_client(pier, keys)
    user.put_repository_catalog_data(repositoryName=repo, catalogData={"description": "by a user"})
    error = refused(user.delete_repository, repositoryName=repo)
    assert error["Message"] == access_denied(arn, "ecr-public:DeleteRepository", repository_arn(repo), "identity deny")


def test_a_source_ip_condition_that_does_not_match_denies(pier: PierServer, repo: str, tmp_path: Path) -> None:
    elsewhere = {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.0.2.7"]}}
    here = {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}
    arn, keys = create_user(
        pier,
        tmp_path,
        allow("ecr-public:DescribeImages", Condition=elsewhere),
        allow("ecr-public:DescribeImageTags", Condition=here),
    )
    user = user_client(pier, keys)
    error = refused(user.describe_images, repositoryName=repo)
    assert error["Message"] == access_denied(arn, "ecr-public:DescribeImages", repository_arn(repo))
    assert user.describe_image_tags(repositoryName=repo)["imageTagDetails"] == []
    # A Deny whose condition matches here applies; pier is served over plain HTTP, so SecureTransport is false.
    arn, keys = create_user(
        pier,
        tmp_path,
        allow("ecr-public:*"),
        deny("ecr-public:DescribeImageTags", Condition={"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
        deny("ecr-public:DescribeImages", Condition={"Bool": {"aws:SecureTransport": "false"}}),
        deny("ecr-public:GetRepositoryCatalogData", Condition={"DateGreaterThan": {"aws:CurrentTime": "2020-01-01"}}),
        deny("ecr-public:ListTagsForResource", Condition={"StringEquals": {"aws:SourceVpc": "vpc-1"}}),  # unknown
        deny("ecr-public:DescribeRepositories", Condition={"StringLike": {"aws:username": "nobody-*"}}),
    )
    user = user_client(pier, keys)
    for call, kwargs in (
        (user.describe_image_tags, {"repositoryName": repo}),
        (user.describe_images, {"repositoryName": repo}),
        (user.get_repository_catalog_data, {"repositoryName": repo}),
        (user.list_tags_for_resource, {"resourceArn": repository_arn(repo)}),
    ):
        assert refused(call, **kwargs)["Code"] == "AccessDeniedException"
    assert user.describe_repositories(repositoryNames=[repo])["repositories"]  # its name is not nobody-*


def test_a_repository_policy_naming_the_user_grants_naming_the_account_delegates(
    pier: PierServer, ecr: Any, repo: str, tmp_path: Path
) -> None:
    arn, keys = create_user(pier, tmp_path)  # no identity policy at all
    user = user_client(pier, keys)
    error = refused(user.describe_images, repositoryName=repo)
    assert error["Message"] == access_denied(arn, "ecr-public:DescribeImages", repository_arn(repo))
    grant = {"Effect": "Allow", "Action": "ecr-public:DescribeImages"}
    ecr.set_repository_policy(
        repositoryName=repo, policyText=json.dumps({"Statement": {**grant, "Principal": {"AWS": OWNER.id}}})
    )
    assert refused(user.describe_images, repositoryName=repo)["Code"] == "AccessDeniedException"
    ecr.set_repository_policy(
        repositoryName=repo, policyText=json.dumps({"Statement": {**grant, "Principal": {"AWS": arn}}})
    )
    assert user.describe_images(repositoryName=repo)["imageDetails"] == []


def test_another_accounts_user_needs_both_policies(pier: PierServer, ecr: Any, repo: str, tmp_path: Path) -> None:
    arn, keys = create_user(pier, tmp_path, allow("ecr-public:DescribeImages"), account=OTHER.id)
    theirs = user_client(pier, keys)
    with pytest.raises(theirs.exceptions.RepositoryNotFoundException):  # the owner grants nothing: not told
        theirs.describe_images(registryId=OWNER.id, repositoryName=repo)
    grant = {
        "Effect": "Allow",
        "Principal": {"AWS": OTHER.id},
        "Action": ["ecr-public:DescribeImages", "ecr-public:DescribeImageTags"],
    }
    ecr.set_repository_policy(repositoryName=repo, policyText=json.dumps({"Statement": grant}))
    assert theirs.describe_images(registryId=OWNER.id, repositoryName=repo)["imageDetails"] == []
    # Granted by the repository, not by its own identity policy:
    error = refused(theirs.describe_image_tags, registryId=OWNER.id, repositoryName=repo)
    assert error["Message"] == access_denied(arn, "ecr-public:DescribeImageTags", repository_arn(repo))


def test_pier_toml_users_are_served_and_listed_but_not_changed_by_the_cli(make_server: Any, tmp_path: Path) -> None:
    policy = policy_file(tmp_path, allow("ecr-public:DescribeRepositories"))
    # [[users]], written inline: the test's config continues with top-level keys and [[accounts]] tables.
    config = (
        'users = [{name = "dashboard", access_key_id = "AKIADASHBOARD0000001", '
        f'secret_access_key_env = "PIER_TEST_DASHBOARD_SECRET", policy_file = "{policy}"}}]\n'
    )
    secret = "dashboard-secret-0123456789abcdef"
    server = make_server(config, env={**owner_env(), "PIER_TEST_DASHBOARD_SECRET": secret})
    dashboard = user_client(server, Account(OWNER.id, "", "AKIADASHBOARD0000001", secret))
    dashboard.describe_repositories()
    error = refused(dashboard.create_repository, repositoryName="nope")
    assert error["Message"] == access_denied(
        f"arn:aws:iam::{OWNER.id}:user/dashboard", "ecr-public:CreateRepository", repository_arn("nope")
    )
    listed = json.loads(pier_users(server, "list", OWNER.id, "--json").stdout)["users"]
    assert listed == [
        {
            "name": "dashboard",
            "arn": f"arn:aws:iam::{OWNER.id}:user/dashboard",
            "userId": listed[0]["userId"],
            "accessKeyIds": ["AKIADASHBOARD0000001"],
            "source": "pier.toml",
        }
    ]
    for args in (
        ("put-policy", OWNER.id, "dashboard", str(policy)),
        ("delete-key", OWNER.id, "dashboard", "AKIADASHBOARD0000001"),
        ("create", OWNER.id, "dashboard"),
    ):
        done = pier_users(server, *args)
        assert done.returncode != 0 and "declared in pier.toml" in done.stderr, (args, done.stderr)
    dashboard.describe_repositories()  # still there, unchanged


@pytest.fixture(scope="session")
def js_sdk() -> Path:
    return installed_js_sdk()


def test_the_sdks_see_access_denied_in_aws_words(js_sdk: Path, pier: PierServer, repo: str, tmp_path: Path) -> None:
    arn, keys = create_user(pier, tmp_path, allow("ecr-public:DescribeRepositories"))
    expected = access_denied(arn, "ecr-public:DeleteRepository", repository_arn(repo))
    described, deleted = run_js(
        js_sdk,
        pier,
        [
            {"op": "DescribeRepositories", "input": {"repositoryNames": [repo]}},
            {"op": "DeleteRepository", "input": {"repositoryName": repo}},
        ],
        account=keys,
    )
    assert [r["repositoryName"] for r in ok(described)["repositories"]] == [repo]
    assert failed(deleted, "AccessDeniedException") == expected
    # boto3 (botocore) the same.
    error = refused(user_client(pier, keys).delete_repository, repositoryName=repo)
    assert (error["Code"], error["Message"]) == ("AccessDeniedException", expected)
