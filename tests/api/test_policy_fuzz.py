"""Fuzzed repository policies through a real pier: whatever a generated policy says, a user is let do only
what its Allow statements grant (tests/policy_fuzz.py's oracle), and never answered a 5xx.

alice, a user of the repository's account with no identity policy, may only use what a repository
statement naming her (or "*") allows; bob, another account's user whose identity policy allows
everything, what a statement covering him or his account allows. The policy is set with SetRepositoryPolicy
(IAM's grammar, checked by pier; with force, so it may lock the owner out, as ECR allows: each example
gets a repository of its own) and probed with calls each of them makes. tests/core/test_policy_evaluation.py
runs many more examples, of identity policies too, against the core.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.conftest import OWNER, client
from tests.policy_fuzz import ALICE, BOB, OTHER_ID, Request, applies, document, policies, principal, repository
from tests.server import PierServer
from tests.users import allow, create_user, user_client

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=bool(os.environ.get("CI")),
)
PROBES = ["DescribeImages", "DescribeImageTags", "GetRepositoryCatalogData"]


@pytest.fixture(scope="module")
def callers(pier: PierServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    owner = client(pier)
    folder = tmp_path_factory.mktemp("policy-fuzz")
    _, alice = create_user(pier, folder, name="alice")
    _, bob = create_user(pier, folder, allow("ecr-public:*"), account=OTHER_ID, name="bob")
    return {"owner": owner, ALICE: user_client(pier, alice), BOB: user_client(pier, bob)}


@FUZZ
@given(statements=policies("repository"))
def test_a_repository_policy_grants_no_more_than_it_says(
    pier: PierServer, callers: dict[str, Any], statements: list[dict[str, Any]]
) -> None:
    name = f"team/{uuid.uuid4().hex[:12]}"
    callers["owner"].create_repository(repositoryName=name)
    callers["owner"].set_repository_policy(repositoryName=name, policyText=document(statements), force=True)
    for arn, account in ((ALICE, OWNER.id), (BOB, OTHER_ID)):
        for operation in PROBES:
            ecr = callers[arn]
            method = getattr(ecr, "".join("_" + c.lower() if c.isupper() else c for c in operation).lstrip("_"))
            now = time.time()
            try:
                method(registryId=OWNER.id, repositoryName=name)
                allowed = True
            except ecr.exceptions.ClientError as error:
                code = error.response["Error"]["Code"]
                assert code in ("AccessDeniedException", "RepositoryNotFoundException"), error.response
                allowed = False
            if not allowed:
                continue
            request = Request(account, arn, f"ecr-public:{operation}", repository(name), "127.0.0.1", False, now)
            denying = [s for s in statements if s["Effect"] == "Deny" and principal(s, request) is not None]
            assert not [s for s in denying if applies(s, request) is not False], (operation, arn)
            wanted = "named" if account == OWNER.id else None
            granting = [
                s
                for s in statements
                if s["Effect"] == "Allow"
                and principal(s, request) in (("named",) if wanted else ("named", "account"))
                and applies(s, request) is True
            ]
            assert granting, (operation, arn, "allowed by no statement")
