"""Repository policies: the IAM policy grammar ECR accepts, checked on Set and stored as given.

Grammar checked here (what IAM checks for a resource policy):
    {"Version": "2012-10-17" | "2008-10-17",            optional
     "Id": str,                                          optional
     "Statement": Statement | [Statement, ...]}          at least one
    Statement: {"Sid": str?, "Effect": "Allow" | "Deny",
                "Principal" | "NotPrincipal": "*" | {"AWS" | "Service": str | [str]},
                "Action" | "NotAction": str | [str],     each "*" or "ecr-public:<name or wildcard>"
                "Resource" | "NotResource": str | [str]?, "Condition": {...}?}
"""

from __future__ import annotations

import json
import re
from typing import Any

from pier import errors
from pier.core.access import find_repository
from pier.core.accounts import Account
from pier.core.context import Core

VERSIONS = ("2012-10-17", "2008-10-17")
STATEMENT_KEYS = {
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
}
ACTION = re.compile(r"\*|ecr-public:[A-Za-z*?]+")
AWS_PRINCIPAL = re.compile(r"\*|[0-9]{12}|arn:aws:iam::[0-9]{12}:(root|user/.+|role/.+)")


class PolicyError(errors.InvalidParameter):
    def __init__(self, reason: str) -> None:
        super().__init__(
            "Invalid parameter at 'PolicyText' failed to satisfy constraint: "
            f"'Invalid repository policy provided': {reason}"
        )


def check(policy_text: str) -> None:
    """PolicyError unless policy_text is a repository policy IAM would accept."""
    try:
        policy = json.loads(policy_text)
    except ValueError:
        raise PolicyError("the policy is not valid JSON") from None
    if not isinstance(policy, dict):
        raise PolicyError("the policy must be a JSON object")
    unknown = set(policy) - {"Version", "Id", "Statement"}
    if unknown:
        raise PolicyError(f"unknown top-level key {sorted(unknown)[0]!r}")
    if "Version" in policy and policy["Version"] not in VERSIONS:
        raise PolicyError(f"Version must be one of {', '.join(VERSIONS)}")
    statements = policy.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise PolicyError("Statement must be a statement or a non-empty list of statements")
    for index, statement in enumerate(statements):
        _check_statement(index, statement)


def _check_statement(index: int, statement: Any) -> None:
    where = f"statement {index}"
    if not isinstance(statement, dict):
        raise PolicyError(f"{where} must be an object")
    unknown = set(statement) - STATEMENT_KEYS
    if unknown:
        raise PolicyError(f"{where} has unknown key {sorted(unknown)[0]!r}")
    if statement.get("Effect") not in ("Allow", "Deny"):
        raise PolicyError(f"{where}: Effect must be Allow or Deny")
    _exactly_one(where, statement, "Principal", "NotPrincipal")
    principal = statement.get("Principal", statement.get("NotPrincipal"))
    if principal != "*":
        if not isinstance(principal, dict) or not principal or set(principal) - {"AWS", "Service"}:
            raise PolicyError(f'{where}: Principal must be "*" or {{"AWS": ...}}')
        for value in _strings(where, "Principal", principal["AWS"]) if "AWS" in principal else ():
            if not AWS_PRINCIPAL.fullmatch(value):
                raise PolicyError(f"{where}: invalid principal {value!r}")
        if "Service" in principal:
            _strings(where, "Principal", principal["Service"])
    _exactly_one(where, statement, "Action", "NotAction")
    for action in _strings(where, "Action", statement.get("Action", statement.get("NotAction"))):
        if not ACTION.fullmatch(action):
            raise PolicyError(f"{where}: invalid action {action!r} (expected ecr-public:<Operation>)")
    for key in ("Resource", "NotResource"):
        if key in statement:
            _strings(where, key, statement[key])
    if "Condition" in statement and not isinstance(statement["Condition"], dict):
        raise PolicyError(f"{where}: Condition must be an object")
    if "Sid" in statement and not isinstance(statement["Sid"], str):
        raise PolicyError(f"{where}: Sid must be a string")


def _exactly_one(where: str, statement: dict[str, Any], first: str, second: str) -> None:
    if (first in statement) == (second in statement):
        raise PolicyError(f"{where} must have exactly one of {first} and {second}")


def _strings(where: str, key: str, value: Any) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise PolicyError(f"{where}: {key} must be a string or a non-empty list of strings")
    return values


def set_repository_policy(
    core: Core, caller: Account, registry_id: str | None, name: str, policy_text: str, force: bool
) -> tuple[str, str]:
    row = find_repository(core, caller, registry_id, name)
    check(policy_text)
    # force skips ECR's lock-out protection, which arrives with policy evaluation.
    del force
    core.meta.set_policy(row.id, policy_text)
    return row.registry_id, policy_text


def get_repository_policy(core: Core, caller: Account, registry_id: str | None, name: str) -> tuple[str, str]:
    row = find_repository(core, caller, registry_id, name)
    if row.policy_text is None:
        raise errors.RepositoryPolicyNotFound(row.registry_id, name)
    return row.registry_id, row.policy_text


def delete_repository_policy(core: Core, caller: Account, registry_id: str | None, name: str) -> tuple[str, str]:
    row = find_repository(core, caller, registry_id, name)
    if row.policy_text is None:
        raise errors.RepositoryPolicyNotFound(row.registry_id, name)
    core.meta.set_policy(row.id, None)
    return row.registry_id, row.policy_text
