"""Range requests (RFC 9110 §14): which bytes of a blob to send, decided once for every way pier sends them.

    Range: bytes=500-999      206, Content-Range: bytes 500-999/<size>
    Range: bytes=500-         206, from byte 500 to the end
    Range: bytes=-500         206, the last 500 bytes (the whole blob if it is shorter)
    Range: bytes=2000-5000    206, from byte 2000 to the end when the blob is shorter than 5001 bytes

The rules, in RFC 9110's terms:
- A Range that is not a bytes ranges-specifier is ignored: another unit (§14.2: MUST ignore), text
  that does not parse (no "=", not numbers, "bytes=", "bytes=-", "bytes=1-2-3"), or several Range fields.
  The whole blob is sent (200).
- A range-spec whose last-pos is before its first-pos ("bytes=500-0") makes the ranges-specifier invalid
  (§14.1.1); a server MAY ignore or reject it (§14.2). pier rejects it, 416, as the OCI conformance suite
  expects of a registry.
- A valid ranges-specifier none of whose ranges is satisfiable (a first-pos at or past the end, a suffix of
  length 0) is 416 with `Content-Range: bytes */<size>` (§15.5.17).
- Several ranges ("bytes=0-1,5-6"), any one of them satisfiable: pier sends the whole blob (200), as
  §14.2 allows (a server MAY ignore Range; it names many or overlapping ranges as signs of a broken client
  or an attack). pier never answers multipart/byteranges.
- An empty blob ignores Range (§14.2 allows it: there is nothing to select).
- Range is defined for GET only: a HEAD answers 200 with the whole length (§14.2).
- If-Range: the range applies only if it names the blob's ETag (its digest); otherwise 200 (§13.1.5).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from os import stat_result
from pathlib import Path
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import FileResponse
from starlette.types import Receive, Scope, Send

_INT_RANGE = re.compile(r"([0-9]+)-([0-9]*)")
_SUFFIX_RANGE = re.compile(r"-([0-9]+)")
_OWS = " \t"


class Unsatisfiable(Exception):
    """The range asked for is invalid or lies past the end: answer 416 with `Content-Range: bytes */<size>`."""

    def __init__(self, header: str, size: int) -> None:
        super().__init__(f"Range {header[:100]!r} selects nothing of the {size} bytes")
        self.size = size

    @property
    def content_range(self) -> str:
        return f"bytes */{self.size}"


def span(method: str, headers: Headers, size: int, etag: str) -> tuple[int, int] | None:
    """[start, end) to send as 206, or None to send the whole blob (200); raises Unsatisfiable (416)."""
    values = headers.getlist("range")
    if method != "GET" or len(values) != 1 or size == 0:
        return None
    if_range = headers.getlist("if-range")
    if if_range and if_range != [etag]:  # a strong comparison: W/ tags and dates never match
        return None
    unit, equals, range_set = values[0].partition("=")
    if not equals or unit.strip(_OWS).lower() != "bytes":
        return None
    specs = [spec.strip(_OWS) for spec in range_set.split(",")]
    specs = [spec for spec in specs if spec]  # a list may have empty elements (RFC 9110 §5.6.1)
    parsed: list[tuple[int | None, int | None]] = []  # (first, last) of int-ranges, (None, length) of suffixes
    for spec in specs:
        if match := _INT_RANGE.fullmatch(spec):
            parsed.append((_number(match[1]), _number(match[2]) if match[2] else None))
        elif match := _SUFFIX_RANGE.fullmatch(spec):
            parsed.append((None, _number(match[1])))
        else:
            return None  # not a bytes range-set: ignored
    if not parsed:
        return None
    if any(first is not None and last is not None and last < first for first, last in parsed):
        raise Unsatisfiable(values[0], size)  # invalid: rejected (see above)
    satisfiable = [_clip(first, last, size) for first, last in parsed if _satisfiable(first, last, size)]
    if not satisfiable:
        raise Unsatisfiable(values[0], size)
    return satisfiable[0] if len(parsed) == 1 else None  # several ranges: the whole blob


def _number(digits: str) -> int:
    # Past any blob's size, and short of int()'s limit on digits (a header of 5,000 nines would raise).
    return int(digits) if len(digits) <= 18 else 10**18


def _satisfiable(first: int | None, last: int | None, size: int) -> bool:
    return first < size if first is not None else bool(last)


def _clip(first: int | None, last: int | None, size: int) -> tuple[int, int]:
    if first is None:  # the last `last` bytes
        return max(size - (last or 0), 0), size
    return first, size if last is None else min(last + 1, size)


class BlobFileResponse(FileResponse):
    """A file sent whole (by the server itself, ASGI pathsend) or as the one range `span` chose.

    Starlette's FileResponse reads Range and If-Range on its own terms (400 for a range it cannot parse,
    416 when any range starts past the end, 206 to a HEAD); this one shows it only the decision made
    above, as a canonical "bytes=first-last", or no Range at all."""

    def __init__(
        self,
        path: Path,
        chosen: tuple[int, int] | None,
        headers: Mapping[str, str],
        media_type: str,
        stat: stat_result | None,
    ) -> None:
        super().__init__(path, media_type=media_type, headers=headers, stat_result=stat)
        self._range = None if chosen is None else f"bytes={chosen[0]}-{chosen[1] - 1}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kept: list[Any] = [(k, v) for k, v in scope["headers"] if k.lower() not in (b"range", b"if-range")]
        if self._range is not None:
            kept.append((b"range", self._range))
        await super().__call__({**scope, "headers": kept}, receive, send)
