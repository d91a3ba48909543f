"""A blob member of a JSON request (UploadLayerPart's layerPartBlob), decoded from the body where it lies.

A 20 MiB layer part comes as ~27 MiB of base64 in one JSON member. Parsed the plain way, the body, its text,
the parsed string and the decoded bytes meet two or three at a time: ~57 MiB above what the process held,
for one request (bench/upload_memory.py). Here the member's text is found in the body's bytes, the rest of
the body is parsed as any other, and the member is decoded a slice at a time while it is written: the body
and one slice are all it costs.

Only a top-level string without escapes is taken this way (what the SDKs send: base64 needs no escape in
JSON). Anything else (an escaped character, the member twice, a body this scan does not follow) is left to
the plain parser, which answers it as before.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable, Iterator
from typing import Any, cast

from pier.api import protocol

SLICE_CHARS = 1 << 20  # base64 characters decoded at a time (a multiple of 4): 768 KiB of bytes
INLINE_FROM = 64 * 1024  # bodies shorter than this are parsed the plain way: there is little to save
_MAX_DEPTH = 64  # a body nested deeper than this goes to the plain parser, which says what it thinks


class InvalidBase64(ValueError):
    """The member's text cannot be base64: its length is not a multiple of 4."""


def parse_request(shape: Any, body: bytearray) -> dict[str, Any]:
    """The request's parameters from its body, checked against the operation's input `shape` (as
    protocol.parse_input does). A top-level blob member comes as an InlineBlob over the body's bytes, or,
    where split() cannot take it, decoded as bytes; every other member as parse_input gives it. Either way
    the body is consumed: emptied once parsed, or kept only as long as an InlineBlob refers to it."""
    if len(body) >= INLINE_FROM:
        for member, member_shape in shape.members.items():
            if member_shape.type_name != "blob" or (found := split(body, member)) is None:
                continue
            rest, blob = found
            problems: list[str] = []  # the member's, reported with the others as parse_input would
            protocol.check_length(member_shape, len(blob), f"<{len(blob)} bytes>", member, problems)
            try:
                params = protocol.parse_input(shape, protocol.decode_json(protocol.decode_text(rest)))
            except protocol.ValidationError as invalid:
                raise protocol.ValidationError(invalid.problems + problems) from None
            if problems:
                raise protocol.ValidationError(problems)
            params[member] = blob
            return params
    text = protocol.decode_text(body)
    body.clear()  # the caller's bytes: a large body is not held while its text is parsed
    return protocol.parse_input(shape, protocol.decode_json(text))


def parts_of(blob: bytes | bytearray | InlineBlob) -> tuple[Iterable[bytes], int]:
    """A blob member's bytes as parts to write, and their length."""
    if isinstance(blob, InlineBlob):
        return blob.pieces(), len(blob)
    return [cast(bytes, blob)], len(blob)  # a bytearray (a long member decoded whole) is written as bytes


class InlineBlob:
    """The base64 text of a member, in the request body; its bytes, decoded slice by slice."""

    def __init__(self, text: memoryview, member: str = "") -> None:
        if len(text) % 4:
            raise InvalidBase64("base64 text length must be a multiple of 4")
        self._text = text
        self._member = member
        padding = 0
        if len(text):
            padding = bytes(text[-2:]).count(b"=")
        self._length = len(text) // 4 * 3 - padding

    def __len__(self) -> int:
        return self._length

    def pieces(self) -> Iterator[bytes]:
        """The decoded bytes, a slice at a time. At the first slice that is not strict base64 (padding
        anywhere but at the very end included), the ValidationError parse_input would have raised: whoever
        writes the pieces keeps none of them then (core/uploads.py's Append)."""
        text = self._text
        for start in range(0, len(text), SLICE_CHARS):
            piece = text[start : start + SLICE_CHARS]
            try:
                if start + SLICE_CHARS < len(text) and piece[-1] == 0x3D:  # "=" before the last slice
                    raise binascii.Error("padding before the end")
                yield binascii.a2b_base64(piece, strict_mode=True)
            except binascii.Error:
                where = self._member or "input"
                raise protocol.ValidationError(
                    [f"Value at '{where}' failed to satisfy constraint: Member must be valid base64"]
                ) from None


def split(body: bytes | bytearray, member: str) -> tuple[bytes, InlineBlob] | None:
    """(the body with the member's value replaced by "", the member's text), if the body is an object whose
    top-level `member` is a string without escapes, named once; None otherwise."""
    try:
        span = _member_span(body, member.encode())
    except (IndexError, ValueError):  # not JSON this scan can follow: the plain parser will say why
        return None
    if span is None:
        return None
    start, end = span  # the characters between the quotes
    view = memoryview(body)
    rest = b"".join((view[:start], view[end:]))
    try:
        return rest, InlineBlob(view[start:end], member)
    except InvalidBase64:
        return None


def _member_span(body: bytes | bytearray, member: bytes) -> tuple[int, int] | None:
    at = _skip_space(body, 0)
    if body[at : at + 1] != b"{":
        return None
    at = _skip_space(body, at + 1)
    found: tuple[int, int] | None = None
    key = b'"' + member + b'"'
    if body[at : at + 1] == b"}":
        return None
    while True:
        if body[at : at + 1] != b'"':
            return None
        key_end = _string_end(body, at)
        name = body[at:key_end]
        if b"\\" in name:  # a key written with escapes may be the member: the plain parser decides
            return None
        at = _skip_space(body, key_end)
        if body[at : at + 1] != b":":
            return None
        at = _skip_space(body, at + 1)
        if name == key:
            if found is not None or body[at : at + 1] != b'"':
                return None
            value_end = _string_end(body, at)
            if body.find(b"\\", at + 1, value_end - 1) >= 0:
                return None
            found = (at + 1, value_end - 1)
            at = value_end
        else:
            at = _skip_value(body, at, 1)
        at = _skip_space(body, at)
        separator = body[at : at + 1]
        if separator == b"}":
            return found if _skip_space(body, at + 1) == len(body) else None
        if separator != b",":
            return None
        at = _skip_space(body, at + 1)


def _skip_space(body: bytes | bytearray, at: int) -> int:
    while body[at : at + 1] in (b" ", b"\t", b"\r", b"\n"):
        at += 1
    return at


def _string_end(body: bytes | bytearray, at: int) -> int:
    """The index just past the string that starts (with its quote) at `at`."""
    at += 1
    while True:
        quote = body.index(b'"', at)
        backslashes = 0
        while body[quote - 1 - backslashes] == 0x5C:  # an odd run of backslashes escapes the quote
            backslashes += 1
        if backslashes % 2 == 0:
            return quote + 1
        at = quote + 1


def _skip_value(body: bytes | bytearray, at: int, depth: int) -> int:
    """The index just past the JSON value at `at` (which the plain parser checks later)."""
    if depth > _MAX_DEPTH:
        raise ValueError("nested too deep")
    first = body[at : at + 1]
    if first == b'"':
        return _string_end(body, at)
    if first in (b"{", b"["):
        closing = b"}" if first == b"{" else b"]"
        at = _skip_space(body, at + 1)
        if body[at : at + 1] == closing:
            return at + 1
        while True:
            if first == b"{":
                if body[at : at + 1] != b'"':
                    raise ValueError("a key must be a string")
                at = _skip_space(body, _string_end(body, at))
                if body[at : at + 1] != b":":
                    raise ValueError("a key must be followed by ':'")
                at = _skip_space(body, at + 1)
            at = _skip_space(body, _skip_value(body, at, depth + 1))
            separator = body[at : at + 1]
            if separator == closing:
                return at + 1
            if separator != b",":
                raise ValueError("a member must be followed by ',' or the end")
            at = _skip_space(body, at + 1)
    end = at  # a number, true, false or null: up to the next delimiter
    while end < len(body) and body[end : end + 1] not in (b",", b"}", b"]", b" ", b"\t", b"\r", b"\n"):
        end += 1
    if end == at:
        raise ValueError("a value is missing")
    return end
