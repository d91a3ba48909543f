"""Repository policies decide, for both doors: cross-account grants, explicit deny, wildcards, lock-out."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import OTHER, OWNER
from tests.images import config, digest_of, image_manifest, push_blob, push_image
from tests.oci.helpers import bearer
from tests.server import PierServer

PUSH_ACTIONS = [
    "ecr-public:BatchCheckLayerAvailability",
    "ecr-public:InitiateLayerUpload",
    "ecr-public:UploadLayerPart",
    "ecr-public:CompleteLayerUpload",
    "ecr-public:PutImage",
]


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal: Any, actions: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": principal, "Action": actions}


def deny(principal: Any, actions: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Principal": principal, "Action": actions}


def test_without_a_policy_another_account_learns_nothing(ecr: Any, ecr_other: Any, repo: str) -> None:
    errors = []
    for name in (repo, "test/does-not-exist"):
        with pytest.raises(ecr_other.exceptions.RepositoryNotFoundException) as info:
            ecr_other.describe_images(registryId=OWNER.id, repositoryName=name)
        errors.append(info.value.response["Error"]["Message"].replace(name, "<name>"))
    assert errors[0] == errors[1]  # same answer whether it exists or not
    with pytest.raises(ecr_other.exceptions.RepositoryNotFoundException):
        ecr_other.delete_repository(registryId=OWNER.id, repositoryName=repo)
    assert ecr.describe_repositories(repositoryNames=[repo])["repositories"]


def test_a_grant_lets_another_account_push_through_the_api(ecr: Any, ecr_other: Any, repo: str) -> None:
    ecr.set_repository_policy(repositoryName=repo, policyText=policy(allow({"AWS": OTHER.id}, PUSH_ACTIONS)))
    layer_blob, config_blob = b"layer from the other account", config().data
    for blob in (layer_blob, config_blob):
        upload_id = ecr_other.initiate_layer_upload(registryId=OWNER.id, repositoryName=repo)["uploadId"]
        ecr_other.upload_layer_part(
            registryId=OWNER.id,
            repositoryName=repo,
            uploadId=upload_id,
            partFirstByte=0,
            partLastByte=len(blob) - 1,
            layerPartBlob=blob,
        )
        ecr_other.complete_layer_upload(
            registryId=OWNER.id, repositoryName=repo, uploadId=upload_id, layerDigests=[digest_of(blob)]
        )
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest_of(config_blob),
                "size": len(config_blob),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest_of(layer_blob),
                    "size": len(layer_blob),
                }
            ],
        }
    )
    ecr_other.put_image(registryId=OWNER.id, repositoryName=repo, imageManifest=manifest, imageTag="theirs")
    assert ecr.describe_images(repositoryName=repo)["imageDetails"][0]["imageTags"] == ["theirs"]
    # The grant covers pushing, not managing: describing and deleting stay hidden from them.
    with pytest.raises(ecr_other.exceptions.RepositoryNotFoundException):
        ecr_other.batch_delete_image(registryId=OWNER.id, repositoryName=repo, imageIds=[{"imageTag": "theirs"}])
    with pytest.raises(ecr_other.exceptions.RepositoryNotFoundException):
        ecr_other.get_repository_policy(registryId=OWNER.id, repositoryName=repo)


@pytest.mark.parametrize(
    "principal",
    [{"AWS": f"arn:aws:iam::{OTHER.id}:root"}, {"AWS": [OTHER.id]}, "*"],
    ids=["root-arn", "account-list", "everyone"],
)
def test_wildcard_actions_and_principal_forms(ecr: Any, ecr_other: Any, repo: str, principal: Any) -> None:
    ecr.set_repository_policy(repositoryName=repo, policyText=policy(allow(principal, "ecr-public:Describe*")))
    assert ecr_other.describe_images(registryId=OWNER.id, repositoryName=repo)["imageDetails"] == []
    listed = ecr_other.describe_repositories(registryId=OWNER.id)["repositories"]
    assert repo in [r["repositoryName"] for r in listed]
    with pytest.raises(ecr_other.exceptions.RepositoryNotFoundException):  # Describe* is not Put*
        ecr_other.put_repository_catalog_data(
            registryId=OWNER.id, repositoryName=repo, catalogData={"description": "x"}
        )


def test_not_action(ecr: Any, ecr_other: Any, repo: str) -> None:
    text = json.dumps(
        {
            "Statement": {
                "Effect": "Allow",
                "Principal": {"AWS": OTHER.id},
                "NotAction": ["ecr-public:Delete*", "ecr-public:*Policy"],
            }
        }
    )
    ecr.set_repository_policy(repositoryName=repo, policyText=text)
    ecr_other.put_repository_catalog_data(registryId=OWNER.id, repositoryName=repo, catalogData={"description": "x"})
    with pytest.raises(ecr_other.exceptions.RepositoryNotFoundException):
        ecr_other.delete_repository(registryId=OWNER.id, repositoryName=repo)


def test_explicit_deny_wins_for_everyone(ecr: Any, ecr_other: Any, repo: str, pier: PierServer) -> None:
    push_image(ecr, repo, "v1")
    ecr.set_repository_policy(
        repositoryName=repo,
        policyText=policy(
            allow({"AWS": OTHER.id}, "ecr-public:*"),
            deny({"AWS": OTHER.id}, "ecr-public:PutImage"),
            deny("*", "ecr-public:BatchDeleteImage"),
        ),
    )
    assert ecr_other.describe_images(registryId=OWNER.id, repositoryName=repo)["imageDetails"]
    config_blob = config("riscv64")
    push_blob(ecr, repo, config_blob.data)
    with pytest.raises(ecr_other.exceptions.RepositoryNotFoundException):
        ecr_other.put_image(
            registryId=OWNER.id, repositoryName=repo, imageManifest=image_manifest(config_blob, []).decode()
        )
    # The owner is denied too: told so, since it knows the repository.
    with pytest.raises(ecr.exceptions.ClientError) as info:
        ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
    assert info.value.response["Error"]["Code"] == "AccessDeniedException"
    # And the same decision on /v2/.
    response = httpx.delete(f"{pier.url}/v2/{OWNER.alias}/{repo}/manifests/v1", headers=bearer(pier, ecr))
    assert response.status_code == 403
    assert ecr.describe_images(repositoryName=repo)["imageDetails"][0]["imageTags"] == ["v1"]


def test_grants_apply_to_v2_pushes(ecr: Any, ecr_other: Any, repo: str, pier: PierServer) -> None:
    v2 = f"{pier.url}/v2/{OWNER.alias}/{repo}"
    their_token = bearer(pier, ecr_other)
    data = b"blob from the other account"
    refused = httpx.post(f"{v2}/blobs/uploads/", params={"digest": digest_of(data)}, content=data, headers=their_token)
    assert refused.status_code == 403
    ecr.set_repository_policy(repositoryName=repo, policyText=policy(allow({"AWS": OTHER.id}, "ecr-public:*")))
    accepted = httpx.post(f"{v2}/blobs/uploads/", params={"digest": digest_of(data)}, content=data, headers=their_token)
    assert accepted.status_code == 201


def test_lock_out_protection(ecr: Any, repo: str) -> None:
    locking = policy(deny("*", "ecr-public:*Policy"))
    with pytest.raises(ecr.exceptions.InvalidParameterException) as info:
        ecr.set_repository_policy(repositoryName=repo, policyText=locking)
    assert "force" in str(info.value)
    with pytest.raises(ecr.exceptions.RepositoryPolicyNotFoundException):  # nothing was stored
        ecr.get_repository_policy(repositoryName=repo)
    ecr.set_repository_policy(repositoryName=repo, policyText=locking, force=True)
    with pytest.raises(ecr.exceptions.ClientError) as denied:
        ecr.get_repository_policy(repositoryName=repo)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    # Everything the policy does not deny still works.
    ecr.put_repository_catalog_data(repositoryName=repo, catalogData={"description": "still mine"})


def test_conditions_never_open_access(ecr: Any, ecr_other: Any, repo: str) -> None:
    text = json.dumps(
        {
            "Statement": {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "ecr-public:*",
                "Condition": {"StringEquals": {"aws:SourceVpc": "vpc-1"}},
            }
        }
    )
    ecr.set_repository_policy(repositoryName=repo, policyText=text)
    with pytest.raises(ecr_other.exceptions.RepositoryNotFoundException):
        ecr_other.describe_images(registryId=OWNER.id, repositoryName=repo)
