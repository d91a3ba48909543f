"""DescribeRegistries and GetAuthorizationToken, with boto3 and the awscli."""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

import pytest

from tests.conftest import OWNER, aws_cli
from tests.server import PierServer


def test_describe_registries(ecr: Any, pier: PierServer) -> None:
    registries = ecr.describe_registries()["registries"]
    assert registries == [
        {
            "registryId": OWNER.id,
            "registryArn": f"arn:aws:ecr-public::{OWNER.id}:registry/{OWNER.id}",
            "registryUri": f"{pier.host}/{OWNER.alias}",
            "verified": False,
            "aliases": [
                {"name": OWNER.alias, "status": "ACTIVE", "primaryRegistryAlias": True, "defaultRegistryAlias": True}
            ],
        }
    ]
    pages = list(ecr.get_paginator("describe_registries").paginate())
    assert [r["registryId"] for p in pages for r in p["registries"]] == [OWNER.id]
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.describe_registries(nextToken="forged")


def test_authorization_token(ecr: Any) -> None:
    data = ecr.get_authorization_token()["authorizationData"]
    user, password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
    assert user == "AWS"
    assert ":" not in password
    lifetime = data["expiresAt"] - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(hours=11, minutes=59) < lifetime <= datetime.timedelta(hours=12)


def test_awscli_get_login_password(pier: PierServer) -> None:
    done = aws_cli(pier, "get-login-password")
    assert done.returncode == 0, done.stderr
    password = done.stdout.strip()
    assert password and ":" not in password and "\n" not in password
    assert len(password.split(".")) == 3  # payload.key-id.signature


def test_awscli_manages_repositories(pier: PierServer) -> None:
    created = aws_cli(
        pier, "create-repository", "--repository-name", "cli/made", "--catalog-data", "description=from the cli"
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["catalogData"]["description"] == "from the cli"
    described = aws_cli(pier, "describe-repositories", "--repository-names", "cli/made")
    assert json.loads(described.stdout)["repositories"][0]["repositoryUri"] == f"{pier.host}/{OWNER.alias}/cli/made"
    missing = aws_cli(pier, "describe-repositories", "--repository-names", "cli/absent")
    assert missing.returncode != 0
    assert "RepositoryNotFoundException" in missing.stderr
    deleted = aws_cli(pier, "delete-repository", "--repository-name", "cli/made")
    assert deleted.returncode == 0, deleted.stderr


def test_text_no_database_can_keep_is_refused_as_a_bad_parameter(ecr: Any) -> None:
    # A NUL passed the model's checks and reached PostgreSQL, which answered 500 (found by the fuzz test).
    for display_name in ("\x00", "pier\x00registry"):
        with pytest.raises(ecr.exceptions.InvalidParameterException, match="NUL"):
            ecr.put_registry_catalog_data(displayName=display_name)
    assert ecr.get_registry_catalog_data()["registryCatalogData"].get("displayName") != "\x00"
