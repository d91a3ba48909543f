"""A consistent copy of the whole metadata database, taken while others write (pier backup).

SQLite's online backup API (sqlite3.Connection.backup) copies every page in one step, inside one read
transaction: the copy is the database as of one moment, and in WAL mode writers go on meanwhile. The copy
is one self-contained file (rollback journal), and leaves out uploads in progress: their bytes are not
backed up, so a restored pier has none (clients start them again). PostgreSQL has its own tools
(pg_dump), and this refuses.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from pier.storage.metadata import SnapshotUnsupported
from pier.storage.sql.engine import SqlBase


class Snapshots(SqlBase):
    def snapshot(self, target: Path) -> None:
        if self.engine.dialect.name != "sqlite":
            raise SnapshotUnsupported(f"pier copies SQLite databases only, not {self.engine.dialect.name}")
        if target.exists():
            raise FileExistsError(target)
        copy = sqlite3.connect(target, isolation_level=None)
        try:
            with self.engine.connect() as conn:
                live = conn.connection.driver_connection
                assert isinstance(live, sqlite3.Connection)
                live.backup(copy)  # all pages in one step: one read transaction, one moment
            copy.execute("PRAGMA journal_mode=DELETE")
            copy.execute("PRAGMA foreign_keys=ON")
            copy.execute("BEGIN IMMEDIATE")
            copy.execute("DELETE FROM uploads")
            copy.execute("COMMIT")
            copy.execute("VACUUM")
        finally:
            copy.close()
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
