"""AWS JSON 1.1 on the wire: request JSON -> checked Python values, Python values -> response JSON.

Both directions walk botocore's shapes. Input is checked for everything the model says (required
members, types, min/max length and value, list sizes, full-match patterns, enums), because botocore
checks only some of these on the client and other clients none. Violations are reported together, in
AWS's words: "2 validation errors detected: Value 'X' at 'repositoryName' failed to satisfy
constraint: Member must satisfy regular expression pattern: ...".

Output is built from the shape too: a member the shape lacks is a programming error (ValueError), so
no response can carry a misspelt member.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

from pier.core import limits

INT_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


class SerializationError(ValueError):
    """The body is not a JSON object (AWS answers SerializationException)."""


class ValidationError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = len(problems)
        noun = "error" if count == 1 else "errors"
        super().__init__(f"{count} validation {noun} detected: " + "; ".join(problems))


def decode_text(body: bytes | bytearray) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise SerializationError("The request body is not UTF-8 JSON") from None


def decode_json(body: str) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise SerializationError(f"The request body is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise SerializationError("The request body must be a JSON object")
    return value


def parse_input(shape: Any, value: dict[str, Any]) -> dict[str, Any]:
    """Check a decoded request against the operation's input shape; return it with blobs decoded."""
    problems: list[str] = []
    result = _check(shape, value, "", problems)
    if problems:
        raise ValidationError(problems)
    return result if isinstance(result, dict) else {}


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 200 else text[:200] + "..."


def _check(shape: Any, value: Any, path: str, problems: list[str]) -> Any:
    kind = shape.type_name
    where = path or "input"
    if kind == "structure":
        if not isinstance(value, dict):
            problems.append(f"Value at '{where}' failed to satisfy constraint: Member must be an object")
            return None
        out: dict[str, Any] = {}
        for name in shape.required_members:
            if value.get(name) is None:
                problems.append(
                    f"Value null at '{_join(path, name)}' failed to satisfy constraint: Member must not be null"
                )
        for name, member in shape.members.items():
            if value.get(name) is not None:
                out[name] = _check(member, value[name], _join(path, name), problems)
        return out
    if kind == "list":
        if not isinstance(value, list):
            problems.append(f"Value at '{where}' failed to satisfy constraint: Member must be a list")
            return None
        check_length(shape, len(value), value, where, problems)
        return [_check(shape.member, item, f"{where}.{i}.member", problems) for i, item in enumerate(value, 1)]
    if kind == "string":
        if not isinstance(value, str):
            problems.append(
                f"Value '{_show(value)}' at '{where}' failed to satisfy constraint: Member must be a string"
            )
            return None
        if not limits.is_storable_text(value):
            problems.append(
                f"Value at '{where}' failed to satisfy constraint: Member must be Unicode text without NUL characters"
            )
            return None
        check_length(shape, len(value), value, where, problems)
        enum = shape.enum
        if enum and value not in enum:
            problems.append(
                f"Value '{_show(value)}' at '{where}' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{', '.join(enum)}]"
            )
        pattern = shape.metadata.get("pattern")
        if pattern and not _compiled(pattern).fullmatch(value):
            problems.append(
                f"Value '{_show(value)}' at '{where}' failed to satisfy constraint: "
                f"Member must satisfy regular expression pattern: {pattern}"
            )
        return value
    if kind in INT_RANGES:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(
                f"Value '{_show(value)}' at '{where}' failed to satisfy constraint: Member must be an integer"
            )
            return None
        low, high = INT_RANGES[kind]
        low = max(low, shape.metadata.get("min", low))
        high = min(high, shape.metadata.get("max", high))
        if not low <= value <= high:
            bound = "greater than or equal to " + str(low) if value < low else "less than or equal to " + str(high)
            problems.append(
                f"Value '{value}' at '{where}' failed to satisfy constraint: Member must have value {bound}"
            )
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            problems.append(
                f"Value '{_show(value)}' at '{where}' failed to satisfy constraint: Member must be a boolean"
            )
        return value
    if kind == "blob":
        if not isinstance(value, str):
            problems.append(f"Value at '{where}' failed to satisfy constraint: Member must be a base64 string")
            return None
        try:
            data = decode_base64(value)
        except (binascii.Error, ValueError):
            problems.append(f"Value at '{where}' failed to satisfy constraint: Member must be valid base64")
            return None
        check_length(shape, len(data), f"<{len(data)} bytes>", where, problems)
        return data
    if kind == "timestamp":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            problems.append(f"Value at '{where}' failed to satisfy constraint: Member must be a timestamp")
        return value
    if kind == "map":
        if not isinstance(value, dict):
            problems.append(f"Value at '{where}' failed to satisfy constraint: Member must be a map")
            return None
        return {k: _check(shape.value, v, f"{where}.{k}", problems) for k, v in value.items()}
    problems.append(f"Value at '{where}' has a type pier does not read: {kind}")
    return None


def decode_base64(text: str, slice_chars: int = 1 << 20) -> bytes | bytearray:
    """Strict base64, decoded whole (as bytes), or in slices for a long text (as a bytearray, built in place)."""
    if len(text) <= slice_chars:
        return binascii.a2b_base64(text, strict_mode=True)
    out = bytearray()
    for piece in base64_slices(text, slice_chars):
        out += piece
    return out  # not bytes(out): that would copy it once more


def base64_slices(text: str | memoryview, slice_chars: int = 1 << 20) -> Iterator[bytes]:
    """Strict base64 decoded `slice_chars` characters at a time: b64decode(str) would first copy the whole text
    to bytes, and a layer part's text is ~27 MiB. Slices are a multiple of 4 characters, so padding can only
    end the last. binascii.Error (ValueError: a str that is not ASCII) at the first slice that is not base64.
    (a2b_base64's strict mode refuses what b64decode(validate=True) refuses.)"""
    if len(text) > slice_chars and len(text) % 4:
        raise binascii.Error("base64 text length must be a multiple of 4")
    for start in range(0, len(text), slice_chars):
        piece = text[start : start + slice_chars]
        if start + slice_chars < len(text) and piece[-1] in ("=", 0x3D):
            raise binascii.Error("padding before the end")
        yield binascii.a2b_base64(piece, strict_mode=True)


def check_length(shape: Any, length: int, value: Any, where: str, problems: list[str]) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and length < low:
        problems.append(
            f"Value '{_show(value)}' at '{where}' failed to satisfy constraint: "
            f"Member must have length greater than or equal to {low}"
        )
    if high is not None and length > high:
        problems.append(
            f"Value '{_show(value)}' at '{where}' failed to satisfy constraint: "
            f"Member must have length less than or equal to {high}"
        )


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def serialize_output(shape: Any, value: Any) -> Any:
    """Python values (dicts, lists, str, int, bool, int or float timestamps, bytes) -> JSON-ready values
    (the values themselves where nothing needs changing: the caller must not change them afterwards)."""
    if shape is None:
        return {}
    return _serializer(shape)(value)


Serializer = Callable[[Any], Any]
_SERIALIZERS: dict[int, tuple[Any, Serializer | None]] = {}


def _serializer(shape: Any) -> Serializer:
    serializer = _compiled_serializer(shape)
    return serializer if serializer is not None else _as_is


def _as_is(value: Any) -> Any:
    return value


def _compiled_serializer(shape: Any) -> Serializer | None:
    """The function that serialises values of `shape`, made once per shape (a walk of the shape for every
    value cost ~2 ms for a DescribeImages page); None where the value is written as it is (strings,
    numbers, booleans)."""
    known = _SERIALIZERS.get(id(shape))
    if known is not None and known[0] is shape:
        return known[1]
    kind = shape.type_name
    serializer: Serializer | None
    if kind == "structure":
        serializer = _structure_serializer(shape)
    elif kind == "list":
        item = _compiled_serializer(shape.member)
        serializer = None if item is None else _each_element(item)
    elif kind == "map":
        item = _compiled_serializer(shape.value)
        serializer = None if item is None else _each_value(item)
    elif kind == "blob":
        serializer = _base64
    else:  # strings, numbers, booleans, and timestamps (seconds since the epoch, int or float) as they are
        serializer = None
    _SERIALIZERS[id(shape)] = (shape, serializer)  # the shape is kept too, so its id is never reused
    return serializer


def _each_element(item: Serializer) -> Serializer:
    return lambda value: [item(element) for element in value]


def _each_value(item: Serializer) -> Serializer:
    return lambda value: {key: item(element) for key, element in value.items()}


def _base64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _structure_serializer(shape: Any) -> Serializer:
    name = shape.name
    allowed = frozenset(shape.members)
    required = tuple(shape.required_members)
    converted: list[tuple[str, Serializer]] = []  # the members whose values are not written as they are

    def serialize(value: Any) -> Any:
        if not value.keys() <= allowed:
            raise ValueError(f"{name} has no member(s) {sorted(value.keys() - allowed)}")
        for member in required:
            if value.get(member) is None:
                raise ValueError(f"{name} lacks required member(s) {[m for m in required if value.get(m) is None]}")
        if not converted:
            return {key: item for key, item in value.items() if item is not None} if None in value.values() else value
        out = {key: item for key, item in value.items() if item is not None}
        for key, convert in converted:
            item = out.get(key)
            if item is not None:
                out[key] = convert(item)
        return out

    _SERIALIZERS[id(shape)] = (shape, serialize)  # before the members: a shape may contain itself
    for key, member in shape.members.items():
        convert = _compiled_serializer(member)
        if convert is not None:
            converted.append((key, convert))
    return serialize
