"""Repository policies: the IAM policy grammar ECR accepts (checked on Set, stored as given), and evaluation.

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

import enum
import json
import re
from typing import Any

from pier import errors

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


# Evaluation


class Decision(enum.Enum):
    DENY = "deny"  # an explicit Deny matched: wins over everything
    ALLOW = "allow"
    NONE = "none"  # nothing matched


def evaluate(policy_text: str | None, account_id: str | None, action: str, resource_arn: str) -> Decision:
    """What a repository policy says about `account_id` (None: anonymous) doing `action` on the resource.

    action is "ecr-public:<Operation>". A statement with a Condition pier cannot check counts for a Deny
    and not for an Allow, so an unknown condition never opens access.
    """
    if not policy_text:
        return Decision.NONE
    try:
        policy = json.loads(policy_text)
    except ValueError:
        return Decision.NONE
    statements = policy.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    allowed = False
    for statement in statements:
        if not _matches(statement, account_id, action, resource_arn):
            continue
        if statement.get("Effect") == "Deny":
            return Decision.DENY
        if "Condition" not in statement:
            allowed = True
    return Decision.ALLOW if allowed else Decision.NONE


def _matches(statement: dict[str, Any], account_id: str | None, action: str, resource_arn: str) -> bool:
    if "Principal" in statement:
        if not _principal_matches(statement["Principal"], account_id):
            return False
    elif _principal_matches(statement.get("NotPrincipal"), account_id):
        return False
    if "Action" in statement:
        if not any(_glob(p, action, fold=True) for p in _as_list(statement["Action"])):
            return False
    elif any(_glob(p, action, fold=True) for p in _as_list(statement.get("NotAction"))):
        return False
    if "Resource" in statement:
        return any(_glob(p, resource_arn) for p in _as_list(statement["Resource"]))
    if "NotResource" in statement:
        return not any(_glob(p, resource_arn) for p in _as_list(statement["NotResource"]))
    return True  # a repository policy applies to its repository


def _principal_matches(principal: Any, account_id: str | None) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict) or account_id is None:
        return False
    for value in _as_list(principal.get("AWS")):
        if value in ("*", account_id, f"arn:aws:iam::{account_id}:root"):
            return True
    return False


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _glob(pattern: str, value: str, fold: bool = False) -> bool:
    """IAM wildcards: * any run, ? one character. Actions compare without case, ARNs with."""
    if fold:
        pattern, value = pattern.lower(), value.lower()
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


POLICY_ACTIONS = ("SetRepositoryPolicy", "GetRepositoryPolicy", "DeleteRepositoryPolicy")


def locks_out(policy_text: str, account_id: str, resource_arn: str) -> list[str]:
    """The policy operations this policy would deny `account_id` (ECR's lock-out protection)."""
    return [
        name
        for name in POLICY_ACTIONS
        if evaluate(policy_text, account_id, f"ecr-public:{name}", resource_arn) is Decision.DENY
    ]
