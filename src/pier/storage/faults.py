"""What a failure of a store amounts to, in the domain's words: full, unavailable, or neither.

The stores raise their libraries' own exceptions (OSError, SQLAlchemy's, botocore's); this is the one
place that knows them, so the doors can answer 507 for a full disk and 503 (worth retrying) for a
database or bucket that does not answer, instead of a bare 500.
"""

from __future__ import annotations

import errno
import sqlite3

from botocore.exceptions import ClientError, HTTPClientError
from sqlalchemy import exc as sa

from pier import errors

# sqlite3 primary result codes (the low byte of an extended code)
_SQLITE_FULL = 13
_SQLITE_UNAVAILABLE = {5: "the database is busy", 6: "the database is locked", 10: "disk I/O error", 14: "cannot open"}
# PostgreSQL SQLSTATE: 53100 disk_full; classes 08 (connection), 53 (resources), 57P (shutdown, crash, starting)
_PG_FULL = "53100"
_PG_UNAVAILABLE_PREFIXES = ("08", "53", "57P", "40001", "40P01")
_S3_RETRYABLE = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeTooSkewed"}
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def translate(error: BaseException) -> errors.PierError | None:
    """The domain error for a store's failure, or None when it is not one (a bug, say)."""
    seen = 0
    current: BaseException | None = error
    while current is not None and seen < 6:
        found = _one(current)
        if found is not None:
            return found
        current = current.__cause__ or current.__context__
        seen += 1
    return None


def _one(error: BaseException) -> errors.PierError | None:
    if isinstance(error, errors.PierError):
        return error
    if isinstance(error, sa.DBAPIError):
        return _database(error)
    if isinstance(error, sa.TimeoutError):  # no pooled connection came free in time
        return errors.Unavailable("database", "no connection available")
    if isinstance(error, HTTPClientError):  # could not connect, connection closed, timeouts
        return errors.Unavailable("blob store", type(error).__name__)
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if status >= 500 or code in _S3_RETRYABLE:
            return errors.Unavailable("blob store", f"{code or status}")
        return None
    if isinstance(error, OSError) and error.errno in _FULL_ERRNOS:
        return errors.StorageFull("the disk")
    return None


def _database(error: sa.DBAPIError) -> errors.PierError | None:
    original = error.orig
    if isinstance(original, sqlite3.Error):
        code = getattr(original, "sqlite_errorcode", 0) & 0xFF
        if code == _SQLITE_FULL:
            return errors.StorageFull("the database's disk")
        if code in _SQLITE_UNAVAILABLE:
            return errors.Unavailable("database", _SQLITE_UNAVAILABLE[code])
        return None
    state = str(getattr(original, "sqlstate", None) or "")
    if state == _PG_FULL:
        return errors.StorageFull("the database's disk")
    if state.startswith(_PG_UNAVAILABLE_PREFIXES):
        return errors.Unavailable("database", f"SQLSTATE {state}")
    if error.connection_invalidated or isinstance(error, (sa.OperationalError, sa.InterfaceError)):
        return errors.Unavailable("database", type(original).__name__ if original else "connection lost")
    return None
