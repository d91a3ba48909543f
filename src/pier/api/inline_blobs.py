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
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

from pier.api import protocol

INLINE_FROM = 64 * 1024  # bodies shorter than this are parsed the plain way: there is little to save
_MAX_DEPTH = 64  # a body nested deeper than this goes to the plain parser, which says what it thinks
_SPACE = (b" ", b"\t", b"\r", b"\n")


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
    """The base64 text of a member (its length a multiple of 4), in the request body; its bytes, decoded
    slice by slice."""

    def __init__(self, text: memoryview, member: str) -> None:
        self._text = text
        self._member = member
        self._length = len(text) // 4 * 3 - bytes(text[-2:]).count(b"=")

    def __len__(self) -> int:
        return self._length

    def pieces(self) -> Iterator[bytes]:
        """The decoded bytes, a slice at a time (protocol.base64_slices). At the first slice that is not
        strict base64, the ValidationError parse_input would have raised: whoever writes the pieces keeps
        none of them then (core/uploads.py's Append)."""
        try:
            yield from protocol.base64_slices(self._text)
        except (binascii.Error, ValueError):
            raise protocol.ValidationError(
                [f"Value at '{self._member}' failed to satisfy constraint: Member must be valid base64"]
            ) from None


def split(body: bytes | bytearray, member: str) -> tuple[bytes, InlineBlob] | None:
    """(the body with the member's value replaced by "", the member's text), if the body is an object whose
    top-level `member` is a string without escapes whose length is a multiple of 4, named once; None
    otherwise."""
    key = b'"' + member.encode() + b'"'
    spans: list[tuple[int, int]] = []  # the characters between the quotes

    def take(name: bytes, at: int) -> int | None:
        """The end of the member's value, if `name` is the member's; None for another member's."""
        if b"\\" in name:  # a key written with escapes may be the member: the plain parser decides
            raise ValueError("a key with escapes")
        if name != key:
            return None
        if body[at : at + 1] != b'"':
            raise ValueError("the member is not a string")
        end = _string_end(body, at)
        if body.find(b"\\", at + 1, end - 1) >= 0 or (end - at - 2) % 4:
            raise ValueError("the member is not base64 as it lies")
        spans.append((at + 1, end - 1))
        return end

    try:
        start = _skip_space(body, 0)
        if body[start : start + 1] != b"{" or _skip_space(body, _skip_value(body, start, 1, take)) != len(body):
            return None
    except (IndexError, ValueError):  # not JSON this scan can follow: the plain parser will say why
        return None
    if len(spans) != 1:
        return None
    start, end = spans[0]
    view = memoryview(body)
    return b"".join((view[:start], view[end:])), InlineBlob(view[start:end], member)


def _skip_space(body: bytes | bytearray, at: int) -> int:
    while body[at : at + 1] in _SPACE:
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


def _skip_value(
    body: bytes | bytearray, at: int, depth: int, take: Callable[[bytes, int], int | None] | None = None
) -> int:
    """The index just past the JSON value at `at` (which the plain parser checks later). For an object,
    take(key, value's index) is asked first about each member's value (the top level's only)."""
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
            end = None
            if first == b"{":
                if body[at : at + 1] != b'"':
                    raise ValueError("a key must be a string")
                key_end = _string_end(body, at)
                name = body[at:key_end]
                at = _skip_space(body, key_end)
                if body[at : at + 1] != b":":
                    raise ValueError("a key must be followed by ':'")
                at = _skip_space(body, at + 1)
                end = take(bytes(name), at) if take is not None else None
            at = _skip_space(body, end if end is not None else _skip_value(body, at, depth + 1))
            separator = body[at : at + 1]
            if separator == closing:
                return at + 1
            if separator != b",":
                raise ValueError("a member must be followed by ',' or the end")
            at = _skip_space(body, at + 1)
    end = at  # a number, true, false or null: up to the next delimiter
    while end < len(body) and body[end : end + 1] not in (b",", b"}", b"]", *_SPACE):
        end += 1
    if end == at:
        raise ValueError("a value is missing")
    return end
