"""Pages and opaque next tokens.

A token is signed (core/tokens.py) and names the listing it belongs to, so a client cannot forge one,
nor replay one on another listing. Listings are keyset-paginated on a unique key, so a page is stable
while other clients push: nothing is skipped or repeated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from pier import errors
from pier.core import limits
from pier.core.tokens import InvalidToken, TokenSigner

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_token: str | None


def page_size(max_results: int | None) -> int:
    if max_results is None:
        return limits.PAGE_DEFAULT
    if not 1 <= max_results <= limits.PAGE_MAX:
        raise errors.InvalidParameter(
            f"Invalid parameter at 'maxResults' failed to satisfy constraint: "
            f"'Member must have value between 1 and {limits.PAGE_MAX}'"
        )
    return max_results


def read_token(signer: TokenSigner, listing: str, token: str | None) -> str | None:
    """The key to continue after, or None for the first page."""
    if token is None:
        return None
    try:
        claims = signer.verify("page", token)
    except InvalidToken as error:
        raise errors.InvalidNextToken() from error
    if claims.get("l") != listing or not isinstance(claims.get("after"), str):
        raise errors.InvalidNextToken()
    return str(claims["after"])


def make_page(signer: TokenSigner, listing: str, rows: Sequence[T], size: int, key: Callable[[T], str]) -> Page[T]:
    """`rows` was fetched with limit size + 1: the extra row only says that another page exists."""
    if len(rows) <= size:
        return Page(rows, None)
    items = rows[:size]
    return Page(items, signer.sign("page", {"l": listing, "after": key(items[-1])}, ttl=None))
