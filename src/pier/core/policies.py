"""IAM policies: the grammar IAM accepts, for repository policies and for users' identity policies, and
what one policy says about one request.

Grammar checked here:
    {"Version": "2012-10-17" | "2008-10-17",            optional
     "Id": str,                                          optional
     "Statement": Statement | [Statement, ...]}          at least one
    Statement: {"Sid": str?, "Effect": "Allow" | "Deny",
                "Principal" | "NotPrincipal": "*" | {"AWS" | "Service": str | [str]},   resource policies only
                "Action" | "NotAction": str | [str],
                "Resource" | "NotResource": str | [str], optional in a resource policy, required in an identity one
                "Condition": {operator: {key: value | [value, ...]}}?}
Actions: "*" or "ecr-public:<Operation or wildcard>" in a repository policy (what ECR accepts); "*" or
"<service>:<action or wildcard>" in an identity policy (as IAM accepts; pier's own are ecr-public:* and
sts:GetServiceBearerToken, the rest never match anything pier does).

Evaluation (evaluate) says, for one policy and one request, whether a statement explicitly denies it,
whether one allows it, and whether an allowing statement names the caller itself (a user's ARN, or "*")
rather than only its account: within an account, a resource policy that names only the account
delegates to the account's identity policies (access.py combines the two as IAM does). A statement
whose Condition or Resource pier cannot evaluate (conditions.py) allows nothing and denies everything.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from pier import errors
from pier.core import conditions

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
REPOSITORY_ACTION = re.compile(r"\*|ecr-public:[A-Za-z*?]+")
IDENTITY_ACTION = re.compile(r"\*|[a-z0-9-]+:[A-Za-z0-9*?]+")
AWS_PRINCIPAL = re.compile(r"\*|[0-9]{12}|arn:aws:iam::[0-9]{12}:(root|user/.+|role/.+)")
IDENTITY_RESOURCE = re.compile(r"\*|arn:.+")
POLICY_MAX_CHARACTERS = 10240  # what ECR allows a repository policy; identity policies get the same

Kind = Literal["repository", "identity"]


class PolicyError(errors.InvalidParameter):
    """A policy IAM would refuse; the message says where and why, in the words of the API that refuses it."""

    def __init__(self, reason: str, kind: Kind = "repository") -> None:
        if kind == "repository":
            message = (
                "Invalid parameter at 'PolicyText' failed to satisfy constraint: "
                f"'Invalid repository policy provided': {reason}"
            )
        else:
            message = f"MalformedPolicyDocument: {reason}"
        super().__init__(message)
        self.reason = reason


def check(policy_text: str, kind: Kind = "repository") -> None:
    """PolicyError unless policy_text is a policy of this kind that IAM would accept."""
    if len(policy_text) > POLICY_MAX_CHARACTERS:
        raise PolicyError(f"the policy is longer than {POLICY_MAX_CHARACTERS} characters", kind)
    try:
        policy = json.loads(policy_text)
    except ValueError:
        raise PolicyError("the policy is not valid JSON", kind) from None
    if not isinstance(policy, dict):
        raise PolicyError("the policy must be a JSON object", kind)
    unknown = set(policy) - {"Version", "Id", "Statement"}
    if unknown:
        raise PolicyError(f"unknown top-level key {sorted(unknown)[0]!r}", kind)
    if "Version" in policy and policy["Version"] not in VERSIONS:
        raise PolicyError(f"Version must be one of {', '.join(VERSIONS)}", kind)
    statements = policy.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise PolicyError("Statement must be a statement or a non-empty list of statements", kind)
    for index, statement in enumerate(statements):
        _check_statement(index, statement, kind)


def _check_statement(index: int, statement: Any, kind: Kind) -> None:
    where = f"statement {index}"

    def fail(reason: str) -> PolicyError:
        return PolicyError(f"{where}: {reason}", kind)

    if not isinstance(statement, dict):
        raise fail("must be an object")
    unknown = set(statement) - STATEMENT_KEYS
    if unknown:
        raise fail(f"unknown key {sorted(unknown)[0]!r}")
    if statement.get("Effect") not in ("Allow", "Deny"):
        raise fail("Effect must be Allow or Deny")
    if kind == "repository":
        _exactly_one(fail, statement, "Principal", "NotPrincipal")
        principal = statement.get("Principal", statement.get("NotPrincipal"))
        if principal != "*":
            if not isinstance(principal, dict) or not principal or set(principal) - {"AWS", "Service"}:
                raise fail('Principal must be "*" or {"AWS": ...}')
            for value in _strings(fail, "Principal", principal["AWS"]) if "AWS" in principal else ():
                if not AWS_PRINCIPAL.fullmatch(value):
                    raise fail(f"invalid principal {value!r}")
            if "Service" in principal:
                _strings(fail, "Principal", principal["Service"])
    elif "Principal" in statement or "NotPrincipal" in statement:
        raise fail("an identity-based policy must not name a Principal (it applies to the user it is attached to)")
    _exactly_one(fail, statement, "Action", "NotAction")
    pattern = REPOSITORY_ACTION if kind == "repository" else IDENTITY_ACTION
    for action in _strings(fail, "Action", statement.get("Action", statement.get("NotAction"))):
        if not pattern.fullmatch(action):
            expected = "ecr-public:<Operation>" if kind == "repository" else "<service>:<action>, e.g. ecr-public:*"
            raise fail(f"invalid action {action!r} (expected {expected})")
    if kind == "identity":
        _exactly_one(fail, statement, "Resource", "NotResource")
    elif "Resource" in statement and "NotResource" in statement:
        raise fail("must not have both Resource and NotResource")
    for key in ("Resource", "NotResource"):
        if key in statement:
            for resource in _strings(fail, key, statement[key]):
                if kind == "identity" and not IDENTITY_RESOURCE.fullmatch(resource):
                    raise fail(f"{key} {resource!r} must be an ARN or '*'")
    if "Condition" in statement:
        _check_condition(fail, statement["Condition"])
    if "Sid" in statement and not isinstance(statement["Sid"], str):
        raise fail("Sid must be a string")


def _check_condition(fail: Any, block: Any) -> None:
    if not isinstance(block, dict):
        raise fail("Condition must be an object")
    for operator, keys in block.items():
        if not conditions.is_iam_operator(operator):
            raise fail(f"invalid Condition operator {operator!r}")
        if not isinstance(keys, dict) or not keys:
            raise fail(f"Condition {operator} must map keys to values")
        for key, value in keys.items():
            values = value if isinstance(value, list) else [value]
            if not key or not values or not all(_is_scalar(v) for v in values):
                raise fail(f"Condition {operator} {key!r}: values must be strings, numbers or booleans")


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | bool | int | float)


def _exactly_one(fail: Any, statement: dict[str, Any], first: str, second: str) -> None:
    if (first in statement) == (second in statement):
        raise fail(f"must have exactly one of {first} and {second}")


def _strings(fail: Any, key: str, value: Any) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise fail(f"{key} must be a string or a non-empty list of strings")
    return values


# What a policy says, parsed once per text


@dataclass(frozen=True)
class Statement:
    deny: bool
    principals: tuple[str, ...] | None  # None: an identity policy's statement (it applies to its holder)
    not_principal: bool
    actions: tuple[str, ...]
    not_action: bool
    resources: tuple[str, ...] | None  # None: no Resource or NotResource (a repository policy's own)
    not_resource: bool
    conditions: tuple[tuple[str, str, tuple[str, ...]], ...] | None  # None: a Condition that does not parse


@dataclass(frozen=True)
class Policy:
    statements: tuple[Statement, ...]


@lru_cache(maxsize=4096)
def parse(policy_text: str | None) -> Policy | None:
    """The statements of a stored policy (texts repeat: each is parsed once). None for no policy.

    Stored policies were checked when set; whatever does not read as expected here becomes a statement
    that allows nothing and, if it is a Deny, denies everything."""
    if not policy_text:
        return None
    try:
        document = json.loads(policy_text)
    except ValueError:
        return Policy((_UNREADABLE,))
    raw = document.get("Statement", []) if isinstance(document, dict) else []
    return Policy(
        tuple(_statement(s) for s in ([raw] if isinstance(raw, dict) else raw if isinstance(raw, list) else []))
    )


_UNREADABLE = Statement(True, ("*",), False, ("*",), False, None, False, None)


def _statement(raw: Any) -> Statement:
    if not isinstance(raw, dict):
        return _UNREADABLE
    principals: tuple[str, ...] | None = None
    not_principal = "NotPrincipal" in raw
    if "Principal" in raw or not_principal:
        value = raw.get("Principal", raw.get("NotPrincipal"))
        principals = ("*",) if value == "*" else tuple(_as_list(value.get("AWS"))) if isinstance(value, dict) else ()
    not_resource = "NotResource" in raw
    resources = (
        tuple(_as_list(raw["NotResource" if not_resource else "Resource"]))
        if ("Resource" in raw or not_resource)
        else None
    )
    return Statement(
        deny=raw.get("Effect") != "Allow",
        principals=principals,
        not_principal=not_principal,
        actions=tuple(_as_list(raw.get("NotAction" if "NotAction" in raw else "Action"))),
        not_action="NotAction" in raw,
        resources=resources,
        not_resource=not_resource,
        conditions=_conditions(raw.get("Condition")),
    )


def _conditions(block: Any) -> tuple[tuple[str, str, tuple[str, ...]], ...] | None:
    if block is None:
        return ()
    if not isinstance(block, dict):
        return None
    parsed = []
    for operator, keys in block.items():
        if not isinstance(keys, dict) or not keys:
            return None
        for key, value in keys.items():
            values = value if isinstance(value, list) else [value]
            if not values or not all(_is_scalar(v) for v in values):
                return None
            parsed.append((operator, key, tuple(_text(v) for v in values)))
    return tuple(parsed)


def _text(value: str | bool | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


# Evaluation


@dataclass(frozen=True)
class Who:
    """The caller as policies see it: its account, and its user (None for the account's root)."""

    account_id: str | None  # None: anonymous
    user_arn: str | None = None


@dataclass(frozen=True)
class Outcome:
    deny: bool = False  # an explicit Deny applies: it wins over everything
    allow: bool = False  # an Allow applies
    allow_named: bool = False  # an Allow applies that names the caller itself ("*" or its user ARN)


NOTHING = Outcome()


def evaluate(policy: Policy | None, who: Who, action: str, resource: str, facts: conditions.Facts) -> Outcome:
    """What `policy` says about `who` doing `action` ("<service>:<Action>") on `resource` (an ARN, or "*").

    A statement applies when its principal, action, resource and conditions all match; one pier cannot
    evaluate (cannot tell) counts for a Deny and not for an Allow."""
    if policy is None:
        return NOTHING
    deny = allow = named = False
    for statement in policy.statements:
        if statement.deny:
            if _principal(statement, who, deny=True) is not None and _applies(statement, action, resource, facts):
                deny = True
                break
            continue
        matched = _principal(statement, who, deny=False)
        if matched is not None and _applies(statement, action, resource, facts, allow=True):
            allow = True
            named = named or matched
    return Outcome(deny, allow and not deny, named and not deny)


def _principal(statement: Statement, who: Who, deny: bool) -> bool | None:
    """None if the statement's principal does not cover `who`; else whether it names `who` itself (True)
    or only its account (False). An identity policy's statements name their holder."""
    listed = statement.principals
    if listed is None:
        return True
    if statement.not_principal:
        # Every identity the caller acts as (its account; and, for a user, itself) is checked: a Deny
        # applies if any of them is not excluded, an Allow only if none of them is.
        excluded = [_listed(listed, who.account_id, None)]
        if who.user_arn is not None:
            excluded.append(_listed(listed, who.account_id, who.user_arn))
        covered = not all(excluded) if deny else not any(excluded)
        return False if covered else None
    if "*" in listed:
        return True
    if who.user_arn is not None and who.user_arn in listed:
        return True
    if who.account_id is not None and (who.account_id in listed or f"arn:aws:iam::{who.account_id}:root" in listed):
        return who.user_arn is None  # for an account's root, naming the account names it
    return None


def _listed(listed: tuple[str, ...], account_id: str | None, user_arn: str | None) -> bool:
    if "*" in listed:
        return True
    if user_arn is not None:
        return user_arn in listed
    return account_id is not None and (account_id in listed or f"arn:aws:iam::{account_id}:root" in listed)


def _applies(statement: Statement, action: str, resource: str, facts: conditions.Facts, allow: bool = False) -> bool:
    """Whether the statement's action, resource and conditions match; "cannot tell" is `not allow`."""
    if any(_glob(pattern, action, fold=True) for pattern in statement.actions) == statement.not_action:
        return False
    unknown = not allow
    if statement.resources is not None:
        matched = _resource(statement.resources, resource)
        if matched is None:
            return unknown
        if matched == statement.not_resource:
            return False
    if statement.conditions is None:
        return unknown
    result: bool | None = True
    for operator, key, values in statement.conditions:
        holds = conditions.holds(operator, key, values, facts)
        if holds is False:
            return False
        if holds is None:
            result = None
    return unknown if result is None else True


def _resource(patterns: tuple[str, ...], resource: str) -> bool | None:
    """Whether a pattern matches; None if none does but one has a policy variable pier does not fill in."""
    if any(_glob(p, resource) for p in patterns if "${" not in p):
        return True
    return None if any("${" in p for p in patterns) else False


def _glob(pattern: str, value: str, fold: bool = False) -> bool:
    """IAM wildcards: * any run, ? one character. Actions compare without case, ARNs with."""
    if fold:
        pattern, value = pattern.lower(), value.lower()
    return _compiled(pattern).fullmatch(value) is not None


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL)


POLICY_ACTIONS = ("SetRepositoryPolicy", "GetRepositoryPolicy", "DeleteRepositoryPolicy")


def locks_out(policy_text: str, who: Who, resource_arn: str, facts: conditions.Facts) -> list[str]:
    """The policy operations this repository policy would deny `who` (ECR's lock-out protection)."""
    policy = parse(policy_text)
    return [name for name in POLICY_ACTIONS if evaluate(policy, who, f"ecr-public:{name}", resource_arn, facts).deny]
