"""Fuzzed policy documents never grant more than their Allow statements say (core/access.py's decisions,
checked against tests/policy_fuzz.py's oracle, on many generated identity and repository policies).

For every generated pair of policies and request, when pier allows:
  - no Deny statement that may apply exists, in either policy (what pier cannot evaluate may apply);
  - an Allow statement that surely applies grants it, as IAM combines them: for a user of the account,
    its identity policy, or a repository statement naming the user itself (or "*"); for another
    account's user, both; for another account's root, the repository policy;
  - it still allows with every Allow statement's conditions removed (conditions only ever narrow), and it
    allows nothing once the Allow statements are gone.
The server-level fuzz (tests/api/test_policy_fuzz.py) runs fewer examples through a real pier.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pier.app import build_core
from pier.config import load
from pier.core import access
from pier.core.accounts import Account
from pier.core.context import Core
from pier.core.principals import Caller
from pier.core.users import User
from tests.policy_fuzz import (
    ALICE,
    BOB,
    OTHER_ID,
    OWNER_ID,
    RESOURCES,
    Request,
    applies,
    document,
    policies,
    principal,
    repository,
)

FUZZ = settings(max_examples=500, deadline=None, derandomize=bool(os.environ.get("CI")))

OWNER = Account(OWNER_ID, "owner", "AKIAOWNER0000000001", "owner-secret-0123456789")
OTHER = Account(OTHER_ID, "other", "AKIAOTHER0000000002", "other-secret-0123456789")
REQUEST_ACTIONS = [
    "ecr-public:PutImage",
    "ecr-public:DescribeImages",
    "ecr-public:DeleteRepository",
    "ecr-public:SetRepositoryPolicy",
    "ecr-public:GetAuthorizationToken",
    "sts:GetServiceBearerToken",
]
REQUEST_RESOURCES = [
    repository("team/api"),
    repository("other/api"),
    repository("alice/api"),
    f"arn:aws:ecr-public::{OWNER_ID}:registry/{OWNER_ID}",
    "*",
]
CALLERS = ["alice", "bob", "owner-root", "other-root"]


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Core]:
    built = build_core(load(env={}, flags={"data_dir": tmp_path_factory.mktemp("policy-evaluation")}))
    yield built
    built.meta.close()  # type: ignore[attr-defined]


def caller_for(who: str, identity: list[dict[str, Any]], source_ip: str, secure: bool) -> tuple[Caller, Request]:
    account, arn = {"alice": (OWNER, ALICE), "bob": (OTHER, BOB), "owner-root": (OWNER, None)}.get(who, (OTHER, None))
    user = User(account.id, arn.rsplit("/", 1)[1], "AIDPTEST", document(identity)) if arn else None
    caller = Caller(account, user, "AKPUTEST", source_ip, secure)
    return caller, Request(account.id, arn, "", "", source_ip, secure, 0.0)


def decide(core: Core, caller: Caller, request: Request, repository_policy: list[dict[str, Any]] | None) -> bool:
    timed = dataclasses.replace(core, clock=lambda: request.now)
    text = document(repository_policy) if repository_policy else None
    return access.decide(timed, caller, request.action, request.resource, OWNER_ID, text) is None


def without_allow_conditions(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in s.items() if k != "Condition" or s["Effect"] == "Deny"} for s in statements]


@FUZZ
@given(
    identity=policies("identity"),
    repository_policy=st.none() | policies("repository"),
    who=st.sampled_from(CALLERS),
    action=st.sampled_from(REQUEST_ACTIONS),
    resource=st.sampled_from(REQUEST_RESOURCES + RESOURCES[:3]),
    source_ip=st.sampled_from(["127.0.0.1", "10.1.2.3", "::1"]),
    secure=st.booleans(),
    now=st.sampled_from([1.5e9, 1.8e9, 3.3e10]),
)
def test_decisions_never_grant_more_than_allow_statements_say(
    core: Core,
    identity: list[dict[str, Any]],
    repository_policy: list[dict[str, Any]] | None,
    who: str,
    action: str,
    resource: str,
    source_ip: str,
    secure: bool,
    now: float,
) -> None:
    caller, request = caller_for(who, identity, source_ip, secure)
    request = dataclasses.replace(request, action=action, resource=resource, now=now)
    allowed = decide(core, caller, request, repository_policy)
    if not allowed:
        return
    own = request.account_id == OWNER_ID
    user = request.user_arn is not None
    resource_statements = repository_policy or []
    identity_statements = identity if user else []

    def denies(statement: dict[str, Any], in_repository: bool) -> bool:
        if in_repository and principal(statement, request) is None:
            return False
        return statement["Effect"] == "Deny" and applies(statement, request) is not False

    def grants(statement: dict[str, Any], in_repository: bool, named: bool = False) -> bool:
        if statement["Effect"] != "Allow" or applies(statement, request) is not True:
            return False
        if not in_repository:
            return True
        covered = principal(statement, request)
        return covered == "named" if named else covered is not None

    assert not any(denies(s, False) for s in identity_statements), "an identity Deny that may apply was ignored"
    assert not any(denies(s, True) for s in resource_statements), "a repository Deny that may apply was ignored"
    identity_grants = any(grants(s, False) for s in identity_statements)
    if own and user:
        assert identity_grants or any(grants(s, True, named=True) for s in resource_statements)
    elif not own and user:
        assert identity_grants and any(grants(s, True) for s in resource_statements)
    elif not own:
        assert any(grants(s, True) for s in resource_statements)

    # Conditions only ever narrow what an Allow grants; without Allow statements nothing is granted.
    loosened, _ = caller_for(who, without_allow_conditions(identity), source_ip, secure)
    assert decide(core, loosened, request, without_allow_conditions(resource_statements) or None)
    if user or not own:
        denials_only, _ = caller_for(who, [s for s in identity if s["Effect"] == "Deny"], source_ip, secure)
        kept = [s for s in resource_statements if s["Effect"] == "Deny"]
        assert not decide(core, denials_only, request, kept or None)


def test_the_oracle_and_pier_agree_on_a_known_case(core: Core) -> None:
    """The property above can fail: a policy granting PutImage on team/* allows team/api, not other/api."""
    identity = [{"Effect": "Allow", "Action": "ecr-public:PutImage", "Resource": repository("team/*")}]
    caller, request = caller_for("alice", identity, "127.0.0.1", False)
    team = dataclasses.replace(request, action="ecr-public:PutImage", resource=repository("team/api"), now=1.8e9)
    assert decide(core, caller, team, None)
    assert not decide(core, caller, dataclasses.replace(team, resource=repository("other/api")), None)
    assert json.loads(caller.user.policy_text or "{}")["Statement"] == identity  # type: ignore[union-attr]
