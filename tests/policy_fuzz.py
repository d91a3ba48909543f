"""Hypothesis strategies for IAM policy documents (identity and repository policies), and an oracle: a
plain restatement of what one statement says about one request, written from IAM's documentation rather
than from pier's code, so a property can check pier's decisions against what the statements say.

The oracle answers True (the statement applies), False (it does not) or None (it cannot be evaluated:
an operator or key pier does not know, a ${variable}); an Allow only counts when True, a Deny whenever
not False.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

OWNER_ID, OTHER_ID = "111122223333", "444455556666"
ALICE = f"arn:aws:iam::{OWNER_ID}:user/alice"  # a user of the repositories' account
BOB = f"arn:aws:iam::{OTHER_ID}:user/bob"  # a user of another account


def repository(name: str, account: str = OWNER_ID) -> str:
    return f"arn:aws:ecr-public::{account}:repository/{name}"


ACTIONS = [
    "*",
    "ecr-public:*",
    "ecr-public:Put*",
    "ecr-public:PutImage",
    "ECR-PUBLIC:putimage",
    "ecr-public:Describe?mages",
    "ecr-public:DescribeImages",
    "ecr-public:DescribeImageTags",
    "ecr-public:Delete*",
    "ecr-public:DeleteRepository",
    "ecr-public:*Policy",
    "ecr-public:GetAuthorizationToken",
    "sts:GetServiceBearerToken",
    "sts:*",
    "s3:*",
]
RESOURCES = [
    "*",
    repository("*"),
    repository("team/*"),
    repository("team/api"),
    repository("other/api"),
    repository("*", OTHER_ID),
    repository("${aws:username}/*"),
    f"arn:aws:ecr-public::{OWNER_ID}:registry/{OWNER_ID}",
    "arn:aws:ecr-public::*:repository/t?am/*",
    "arn:*",
]
PRINCIPALS: list[Any] = [
    "*",
    {"AWS": "*"},
    {"AWS": OWNER_ID},
    {"AWS": f"arn:aws:iam::{OWNER_ID}:root"},
    {"AWS": ALICE},
    {"AWS": OTHER_ID},
    {"AWS": BOB},
    {"AWS": [ALICE, OTHER_ID]},
    {"AWS": [OWNER_ID, BOB]},
    {"Service": "ecs.amazonaws.com"},
]
OPERATORS = [
    "StringEquals",
    "StringNotEquals",
    "StringLike",
    "StringNotLike",
    "IpAddress",
    "NotIpAddress",
    "DateGreaterThan",
    "DateLessThan",
    "Bool",
    # IAM knows these; pier does not evaluate them, so they must fail closed.
    "StringEqualsIfExists",
    "StringEqualsIgnoreCase",
    "NumericEquals",
    "ForAnyValue:StringLike",
    "Null",
]
KEYS = [
    "aws:username",
    "AWS:UserName",
    "aws:SourceIp",
    "aws:CurrentTime",
    "aws:SecureTransport",
    "aws:SourceVpc",
    "ecr-public:ResourceTag/team",
]
VALUES: list[Any] = [
    "alice",
    "bob",
    "al*",
    "a?ice",
    "127.0.0.0/8",
    "127.0.0.1",
    "10.0.0.0/8",
    "::1/128",
    "not-an-address",
    "2020-01-01T00:00:00Z",
    "2999-01-01",
    "1700000000",
    "yesterday",
    "true",
    "false",
    "TRUE",
    True,
    "${aws:username}",
]


def _one_or_many(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return values | st.lists(values, min_size=1, max_size=3)


CONDITIONS = st.dictionaries(
    st.sampled_from(OPERATORS),
    st.dictionaries(st.sampled_from(KEYS), _one_or_many(st.sampled_from(VALUES)), min_size=1, max_size=2),
    min_size=1,
    max_size=2,
)


# What ECR accepts in a repository policy: its own actions only.
REPOSITORY_ACTIONS = [a for a in ACTIONS if re.fullmatch(r"\*|ecr-public:[A-Za-z*?]+", a)]


@st.composite
def statements(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": draw(st.sampled_from(["Allow", "Allow", "Deny"]))}
    if kind == "repository":
        statement[draw(st.sampled_from(["Principal", "Principal", "NotPrincipal"]))] = draw(st.sampled_from(PRINCIPALS))
    actions = REPOSITORY_ACTIONS if kind == "repository" else ACTIONS
    statement[draw(st.sampled_from(["Action", "Action", "NotAction"]))] = draw(_one_or_many(st.sampled_from(actions)))
    if kind == "identity" or draw(st.booleans()):
        statement[draw(st.sampled_from(["Resource", "Resource", "NotResource"]))] = draw(
            _one_or_many(st.sampled_from(RESOURCES))
        )
    if draw(st.integers(0, 2)) == 0:
        statement["Condition"] = draw(CONDITIONS)
    return statement


def policies(kind: str, max_size: int = 4) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(statements(kind), min_size=1, max_size=max_size)


def document(statements_: list[dict[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements_})


# The oracle


@dataclass(frozen=True)
class Request:
    account_id: str  # the caller's account
    user_arn: str | None  # None: the account's root
    action: str
    resource: str
    source_ip: str
    secure: bool
    now: float

    @property
    def username(self) -> str | None:
        return self.user_arn.rsplit("/", 1)[1] if self.user_arn else None


def _like(pattern: str, value: str, fold: bool = False) -> bool:
    if fold:
        pattern, value = pattern.lower(), value.lower()
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def condition(operator: str, key: str, values: list[Any], request: Request) -> bool | None:
    """IAM's condition semantics, for the operators and keys pier documents; None for anything else."""
    texts = [_text(v) for v in values]
    if any("${" in t for t in texts):
        return None
    key = key.lower()
    if (
        key == "aws:username"
        and operator.startswith("String")
        and operator
        in (
            "StringEquals",
            "StringNotEquals",
            "StringLike",
            "StringNotLike",
        )
    ):
        negated = "Not" in operator
        if request.username is None:
            return negated  # a missing key: only a negated operator holds
        if "Like" in operator:
            hit = any(_like(t, request.username) for t in texts)
        else:
            hit = request.username in texts
        return not hit if negated else hit
    if key == "aws:sourceip" and operator in ("IpAddress", "NotIpAddress"):
        try:
            networks = [ipaddress.ip_network(t, strict=False) for t in texts]
        except ValueError:
            return None
        address = ipaddress.ip_address(request.source_ip)
        hit = any(address.version == n.version and address in n for n in networks)
        return not hit if operator == "NotIpAddress" else hit
    if key == "aws:currenttime" and operator in ("DateGreaterThan", "DateLessThan"):
        moments = []
        for t in texts:
            if t.isdigit():
                moments.append(float(t))
                continue
            try:
                moment = datetime.datetime.fromisoformat(t)
            except ValueError:
                return None
            moments.append((moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)).timestamp())
        if operator == "DateGreaterThan":
            return any(request.now > m for m in moments)
        return any(request.now < m for m in moments)
    if key == "aws:securetransport" and operator == "Bool":
        if any(t.lower() not in ("true", "false") for t in texts):
            return None
        return ("true" if request.secure else "false") in [t.lower() for t in texts]
    return None


def _identities(request: Request) -> list[tuple[str, ...]]:
    """The names each identity the caller acts as may be listed under: its account, and its user."""
    account = (request.account_id, f"arn:aws:iam::{request.account_id}:root")
    return [account] if request.user_arn is None else [account, (request.user_arn,)]


def principal(statement: dict[str, Any], request: Request) -> str | None:
    """How a repository policy statement's principal covers the caller: "named" (the caller itself, or
    everyone), "account" (only its account), or None."""
    deny = statement["Effect"] == "Deny"
    key = "Principal" if "Principal" in statement else "NotPrincipal"
    value = statement[key]
    listed = ["*"] if value == "*" else [str(v) for v in _list(value.get("AWS", []))] if isinstance(value, dict) else []
    if key == "NotPrincipal":
        excluded = ["*" in listed or any(name in listed for name in names) for names in _identities(request)]
        covered = not all(excluded) if deny else not any(excluded)
        return "account" if covered else None
    if "*" in listed or (request.user_arn is not None and request.user_arn in listed):
        return "named"
    if request.account_id in listed or f"arn:aws:iam::{request.account_id}:root" in listed:
        return "named" if request.user_arn is None else "account"
    return None


def applies(statement: dict[str, Any], request: Request) -> bool | None:
    """Whether the statement's action, resource and conditions cover the request (principal aside)."""
    action_key = "Action" if "Action" in statement else "NotAction"
    hit = any(_like(str(p), request.action, fold=True) for p in _list(statement[action_key]))
    if hit != (action_key == "Action"):
        return False
    result: bool | None = True
    for key in ("Resource", "NotResource"):
        if key in statement:
            patterns = [str(p) for p in _list(statement[key])]
            if any(_like(p, request.resource) for p in patterns if "${" not in p):
                matched: bool | None = True
            else:
                matched = None if any("${" in p for p in patterns) else False
            if matched is None:
                result = None
            elif matched != (key == "Resource"):
                return False
    for operator, keys in statement.get("Condition", {}).items():
        for key, values in keys.items():
            holds = condition(operator, key, _list(values), request)
            if holds is False:
                return False
            if holds is None:
                result = None
    return result
