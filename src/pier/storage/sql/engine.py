"""The engine and what every aggregate's rows share: transactions that write, connections that read.

SQLite runs in WAL mode with synchronous=FULL: a write is durable when the call returns, and readers
never wait for writers. Writers queue across threads and processes, and share commits
(storage/sqlite_writers.py). PostgreSQL runs the same statements.

The SQLite file holds secrets (users' access keys, token signing keys), so it is mode 0600, and so are
its -wal and -shm files (SQLite gives them the database file's mode) and the writers' lock file.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    event,
    select,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from pier.storage import migrate, schema
from pier.storage.generation import REPOSITORIES_SUFFIX, WriteGeneration
from pier.storage.sql import prepared
from pier.storage.sql.prepared import Parameters, Prepared, Reader, Row
from pier.storage.sqlite_writers import SqliteWriters

WRITE_ATTEMPTS = 3  # a write that lost a race to another process is tried again this often


PRIVATE = 0o600
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_sqlite_files(database: str) -> None:
    """Create the database file readable by its owner only (before SQLite does, with the umask's mode), and
    make it and its companions so if an older pier left them readable by others."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    os.close(os.open(database, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE))
    for path in (database, *(database + suffix for suffix in SQLITE_COMPANIONS)):
        try:
            if os.stat(path).st_mode & 0o777 != PRIVATE:
                os.chmod(path, PRIVATE)
        except FileNotFoundError:
            pass


def open_engine(url: str) -> Engine:
    # hide_parameters: a failed statement's message (and so a logged traceback) never shows the values it
    # carried, such as a token signing key.
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        private_sqlite_files(engine.url.database or "")

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we BEGIN ourselves (SqlBase._reading, SqliteWriters)
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # Dead pooled connections are noticed before use (a database restart costs no failed requests once it
    # is back), and a database that does not answer a connection attempt is given up on after 5 s.
    # TCP keepalives notice a database that vanished without a word (a dead host, a dropped route) in
    # about 30 s, and no statement waits more than a minute, so a thread is never held for ever.
    connect_args: dict[str, Any] = (
        {
            "connect_timeout": 5,
            "keepalives": 1,
            "keepalives_idle": 15,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            "options": "-c statement_timeout=60000",
        }
        if url.startswith("postgresql")
        else {}
    )
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, hide_parameters=True)


def insert_or_ignore(dialect: str, table: Any) -> Any:
    """INSERT that does nothing when the row exists, in the dialect's own words (no race, no exception).
    Its rowcount says which happened: SQLAlchemy 2.1 keeps an INSERT's rowcount only when asked to (with
    psycopg it is -1 otherwise, which reads as "inserted")."""
    statement: Any
    if dialect == "postgresql":
        statement = postgresql_insert(table).on_conflict_do_nothing()
    else:
        statement = sqlite_insert(table).on_conflict_do_nothing()
    return statement.execution_options(preserve_rowcount=True)


# Every blob upload records its blob and its use by the repository with these (storage/sql/prepared.py).
INSERT_BLOB = Prepared(
    functools.partial(insert_or_ignore, table=schema.blobs), keys=("digest", "size", "created_at", "touched_at")
)
INSERT_REPOSITORY_BLOB = Prepared(
    functools.partial(insert_or_ignore, table=schema.repository_blobs),
    keys=("repository_id", "digest", "created_at"),
)


class SqlBase:
    """The connection plumbing each aggregate's rows (the mixins beside this module) build on."""

    def __init__(self, engine: Engine, generation: WriteGeneration | None = None) -> None:
        self.engine = engine
        self._generation = generation or WriteGeneration()
        self._sqlite = engine.dialect.name == "sqlite"
        database = engine.url.database or ""
        self._repository_generation = (
            WriteGeneration(Path(database + REPOSITORIES_SUFFIX))
            if self._sqlite and database and database != ":memory:" and not database.startswith("file:")
            else None
        )
        self._insert_blob = self._insert_or_ignore(schema.blobs)
        self._insert_repository_blob = self._insert_or_ignore(schema.repository_blobs)
        self._sqlite_writers = SqliteWriters(engine, engine.url.database or "") if self._sqlite else None
        migrate.upgrade(engine)

    @contextmanager
    def _writing(self, repositories: bool = False) -> Iterator[Connection]:
        """A transaction that writes (every write goes through here). Once it has ended, committed or not,
        the write generation moves: what any process on this host remembers of earlier reads is dropped.
        With `repositories` (the writes that create or delete a repository, or set its policy or catalog
        data), the repository generation moves too."""
        try:
            if self._sqlite_writers is not None:
                with self._sqlite_writers.transaction() as conn:
                    yield conn
            else:
                with self.engine.begin() as conn:
                    yield conn
        finally:
            if repositories and self._repository_generation is not None:
                self._repository_generation.bump()
            self._generation.bump()

    def write_generation(self) -> int:
        return self._generation.current()

    def repository_generation(self) -> int | None:
        # SQLite: every process that writes this database runs on this host and maps the file beside it,
        # whatever its data dir. A PostgreSQL database may have writers on other hosts, which no file on this
        # host can show.
        generation = self._repository_generation
        return generation.current() if generation is not None and generation.shared else None

    def _reading(self, snapshot: bool = False) -> Connection:
        """A connection that only reads: one statement, or with snapshot=True several that must agree.

        On SQLite a read of one statement needs no BEGIN (the statement is its own snapshot; BEGIN and
        ROLLBACK were half of a short read's time); several that must agree get a BEGIN here. pier says
        BEGIN itself rather than through a "begin" event: any connection event on the engine makes
        SQLAlchemy dispatch (empty) events around every statement, a large share of a short one's time."""
        conn = self.engine.connect()
        if snapshot and self._sqlite:
            try:
                conn.exec_driver_sql("BEGIN")
            except BaseException:
                conn.close()
                raise
        return conn

    def _rows(self, statement: Prepared, parameters: Parameters) -> list[Row]:
        """One statement's rows, read on a pooled DBAPI connection (the hottest reads: prepared.py)."""
        return prepared.read(self.engine, statement, parameters)

    def _prepared_reading(self, snapshot: bool = False) -> AbstractContextManager[Reader]:
        """Like _reading, for Prepared statements on a pooled DBAPI connection."""
        return prepared.reading(self.engine, "BEGIN" if snapshot and self._sqlite else None)

    def close(self) -> None:
        self.engine.dispose()
        self._generation.close()
        if self._repository_generation is not None:
            self._repository_generation.close()
        if self._sqlite_writers is not None:
            self._sqlite_writers.close()

    # Health

    def ping(self) -> None:
        with self._reading() as conn:
            conn.execute(select(1)).scalar()

    def free_bytes(self) -> int | None:
        if self.engine.dialect.name != "sqlite" or not self.engine.url.database:
            return None
        stats = os.statvfs(os.path.dirname(os.path.abspath(self.engine.url.database)))
        return stats.f_bavail * stats.f_frsize

    # Shared

    def _insert_or_ignore(self, table: Any) -> Any:
        return insert_or_ignore(self.engine.dialect.name, table)


class Keep(Exception):
    """Roll a transaction back on purpose: what it was about to remove is in use again."""
