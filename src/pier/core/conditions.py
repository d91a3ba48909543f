"""IAM `Condition` blocks: the operators and keys pier can evaluate, and "cannot tell" for the rest.

    {"Condition": {"<operator>": {"<key>": "<value>" | ["<value>", ...]}, ...}}

Operators pier evaluates, on the keys whose type they compare:

    StringEquals, StringNotEquals, StringLike, StringNotLike   aws:username (absent for an account's root)
    IpAddress, NotIpAddress                                    aws:SourceIp (the client's address)
    DateGreaterThan, DateLessThan                              aws:CurrentTime (ISO 8601, or epoch seconds)
    Bool                                                       aws:SecureTransport (true only over TLS)

As IAM does it: operators in a block, and keys under an operator, must all hold; the values of one key
are alternatives (any may match), except under a negated operator (Not...), which holds when none
matches. A key the request does not have makes a condition false, and a negated one true. Keys are
compared without case, values with it.

Anything else (another operator, ...IfExists, ForAnyValue:/ForAllValues:, another key, a value that
does not parse, a ${policy variable}) is "cannot tell" (None): the caller (policies.py) then lets the
statement grant nothing and deny everything, so what pier cannot evaluate never opens access.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

STRING = {"StringEquals", "StringNotEquals", "StringLike", "StringNotLike"}
ADDRESS = {"IpAddress", "NotIpAddress"}
DATE = {"DateGreaterThan", "DateLessThan"}
BOOL = {"Bool"}
NEGATED = {"StringNotEquals", "StringNotLike", "NotIpAddress"}
SUPPORTED = STRING | ADDRESS | DATE | BOOL

# Every operator IAM knows (the grammar accepts them; pier evaluates SUPPORTED and fails closed on the rest).
IAM_OPERATORS = {
    *SUPPORTED,
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "NumericEquals",
    "NumericNotEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
    "DateEquals",
    "DateNotEquals",
    "DateLessThanEquals",
    "DateGreaterThanEquals",
    "BinaryEquals",
    "ArnEquals",
    "ArnLike",
    "ArnNotEquals",
    "ArnNotLike",
}
_IAM_OPERATOR = re.compile(r"(?:(?:ForAnyValue|ForAllValues):)?(?P<base>[A-Za-z]+?)(?:IfExists)?")

# The keys, lowercased, and the operators that compare them.
KEY_OPERATORS = {
    "aws:username": STRING,
    "aws:sourceip": ADDRESS,
    "aws:currenttime": DATE,
    "aws:securetransport": BOOL,
}


def is_iam_operator(operator: str) -> bool:
    """Whether IAM would accept this operator name (Null too, with or without IfExists and set prefixes)."""
    match = _IAM_OPERATOR.fullmatch(operator)
    return operator == "Null" or (match is not None and match["base"] in IAM_OPERATORS)


@dataclass(frozen=True)
class Facts:
    """What a request says about itself, for conditions: None where the request has no such key."""

    username: str | None
    source_ip: str | None
    secure_transport: bool
    now: float  # seconds since the epoch


def holds(operator: str, key: str, values: Sequence[str], facts: Facts) -> bool | None:
    """Whether one operator/key/values condition holds; None when pier cannot tell."""
    key = key.lower()
    if operator not in KEY_OPERATORS.get(key, ()) or not values or any("${" in v for v in values):
        return None
    negated = operator in NEGATED
    if key == "aws:username":
        return _strings(operator, facts.username, values, negated)
    if key == "aws:sourceip":
        return _addresses(facts.source_ip, values, negated)
    if key == "aws:currenttime":
        return _dates(operator, facts.now, values)
    return _bools(facts.secure_transport, values)


def _strings(operator: str, actual: str | None, values: Sequence[str], negated: bool) -> bool | None:
    if actual is None:
        return negated
    if operator in ("StringLike", "StringNotLike"):
        matched = any(_like(value).fullmatch(actual) for value in values)
    else:
        matched = actual in values
    return not matched if negated else matched


def _addresses(actual: str | None, values: Sequence[str], negated: bool) -> bool | None:
    networks = [_network(value) for value in values]
    if any(network is None for network in networks):
        return None
    address = _address(actual) if actual else None
    if address is None:
        return negated
    matched = any(network is not None and address in network for network in networks)
    return not matched if negated else matched


def _dates(operator: str, now: float, values: Sequence[str]) -> bool | None:
    moments = [_moment(value) for value in values]
    if any(moment is None for moment in moments):
        return None
    if operator == "DateGreaterThan":
        return any(moment is not None and now > moment for moment in moments)
    return any(moment is not None and now < moment for moment in moments)


def _bools(actual: bool, values: Sequence[str]) -> bool | None:
    wanted = [value.lower() for value in values]
    if any(value not in ("true", "false") for value in wanted):
        return None
    return ("true" if actual else "false") in wanted


@lru_cache(maxsize=1024)
def _like(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL)


@lru_cache(maxsize=1024)
def _network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return None


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1, as a policy names it
    return address


@lru_cache(maxsize=1024)
def _moment(value: str) -> float | None:
    """ISO 8601 (a time without a zone is UTC), or whole seconds since the epoch."""
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = datetime.datetime.combine(datetime.date.fromisoformat(text), datetime.time())
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()
