"""Hypothesis strategies built from botocore's shapes: valid requests, and mutated ones."""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import strategies as st

ODD_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40) | st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "\ud800",
        "💥" * 3,
        "a" * 5000,
        "../../etc/passwd",
        "sha256:" + "0" * 64,
        "%s%n",
        "null",
        "ab",
        "test/x",
        "arn:aws:ecr-public::111122223333:repository/x",
    ]
)
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ODD_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ODD_TEXT, inner, max_size=4),
    max_leaves=12,
)


def value_for(shape: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Mostly well-typed values for a shape (limits ignored, so they get crossed), sometimes anything."""
    kind = shape.type_name
    if depth > 4:
        return st.none()
    if kind == "structure":
        members = {name: value_for(member, depth + 1) for name, member in shape.members.items()}
        return st.fixed_dictionaries({}, optional=members)
    if kind == "list":
        return st.lists(value_for(shape.member, depth + 1), max_size=3) | st.lists(
            st.just("ab"), min_size=101, max_size=102
        )
    if kind == "map":
        return st.dictionaries(ODD_TEXT, value_for(shape.value, depth + 1), max_size=3)
    if kind == "string":
        enum = shape.enum
        return st.sampled_from(enum) if enum else ODD_TEXT
    if kind in ("integer", "long"):
        return st.integers(min_value=-(2**70), max_value=2**70)
    if kind == "boolean":
        return st.booleans()
    if kind == "blob":
        return st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()) | st.sampled_from(["!!", "A", "===="])
    if kind == "timestamp":
        return st.floats(allow_nan=False)
    return ANY_JSON


def request_for(shape: Any) -> st.SearchStrategy[Any]:
    """A request body: the shape's values, or a wrong type anywhere, or JSON that is not an object."""
    return value_for(shape) | ANY_JSON
