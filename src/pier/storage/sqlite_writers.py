"""SQLite's writers: one at a time across threads and processes, and several of them to one commit.

SQLite lets one writer in at a time, and in WAL mode with synchronous=FULL each commit waits for an
fsync. Writers that queue while a transaction is open join it instead of paying for their own BEGIN and
COMMIT: each writer's work runs in a SAVEPOINT of the shared transaction (a writer that fails undoes
only its own changes), the last writer in the queue commits for all of them, and every writer returns
only after the commit that made its work durable. This is group commit, which PostgreSQL does itself.

Across processes (pier serve --workers, pier gc), an flock on a file beside the database queues the
transactions; SQLite's busy handler would make them retry with sleeps of up to 100 ms instead.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, RootTransaction

MAX_BATCH = 32  # writers sharing one transaction at most: the first of them waits for the others
# Each writer's savepoint, in SQL of our own: SQLAlchemy's begin_nested() compiles a new SAVEPOINT and
# RELEASE for every writer (they have no cache key), which cost more CPU than the writer's own statements.
# One name serves all: a writer's savepoint is released (or rolled back to and released) before the next
# writer's begins.
_SAVEPOINT = "SAVEPOINT pier_writer"
_RELEASE = "RELEASE SAVEPOINT pier_writer"
_ROLLBACK_TO = "ROLLBACK TO SAVEPOINT pier_writer"


class CommitFailed(RuntimeError):
    """The shared transaction this writer's work was in could not be committed; nothing of it was kept."""


class _Batch:
    def __init__(self, connection: Connection, transaction: RootTransaction) -> None:
        self.connection = connection
        self.transaction = transaction
        self.members = 0
        self.broken = False  # a writer's savepoint could not be undone: roll the whole batch back
        self.error: BaseException | None = None
        self.done = threading.Event()


class SqliteWriters:
    def __init__(self, engine: Engine, database: str) -> None:
        self._engine = engine
        self._turn = threading.Lock()  # one writer's work at a time in this process
        self._counting = threading.Lock()
        self._waiting = 0  # writers waiting for their turn: they will join the open batch
        self._batch: _Batch | None = None
        self._processes = os.open(f"{database}.write-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self._counting:
            self._waiting += 1
        self._turn.acquire()
        with self._counting:
            self._waiting -= 1
        try:
            batch = self._batch or self._open()
        except BaseException:
            self._turn.release()
            raise
        failure: BaseException | None = None
        connection = batch.connection
        try:
            connection.exec_driver_sql(_SAVEPOINT)
        except BaseException:
            batch.broken = True  # committed by nobody: _commit rolls the batch back for those in it
            self._commit(batch)
            raise
        try:
            yield connection
        except BaseException as error:
            failure = error
            try:
                connection.exec_driver_sql(_ROLLBACK_TO)
                connection.exec_driver_sql(_RELEASE)
            except BaseException:
                batch.broken = True
        else:
            try:
                connection.exec_driver_sql(_RELEASE)
            except BaseException as error:
                failure, batch.broken = error, True
        batch.members += 1
        with self._counting:
            others = self._waiting
        if others and batch.members < MAX_BATCH and not batch.broken:
            self._turn.release()  # the next writer joins this transaction, and the last one commits
            if failure is not None:
                raise failure  # this writer's changes are undone: nothing to wait for
            batch.done.wait()
        else:
            self._commit(batch)
            if failure is not None:
                raise failure
        if batch.error is not None:
            raise CommitFailed(str(batch.error)) from batch.error

    def _open(self) -> _Batch:
        fcntl.flock(self._processes, fcntl.LOCK_EX)
        try:
            connection = self._engine.connect()
            try:
                transaction = connection.begin()
                # The write lock up front (IMMEDIATE): writers queue here instead of one failing when it
                # upgrades from reading to writing (the DBAPI connection's isolation_level is None: this is
                # the only BEGIN it sees).
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                self._batch = _Batch(connection, transaction)
            except BaseException:
                connection.close()
                raise
        except BaseException:
            fcntl.flock(self._processes, fcntl.LOCK_UN)
            raise
        return self._batch

    def _commit(self, batch: _Batch) -> None:
        """Commit (or roll back) the batch for all its writers, and pass the turn on."""
        try:
            if batch.broken:
                batch.transaction.rollback()
                batch.error = CommitFailed("a writer's changes could not be undone on their own")
            else:
                batch.transaction.commit()
        except BaseException as error:
            batch.error = error
        finally:
            try:
                batch.connection.close()  # rolls back whatever a failed commit left
            finally:
                self._batch = None
                fcntl.flock(self._processes, fcntl.LOCK_UN)
                batch.done.set()
                self._turn.release()

    def close(self) -> None:
        os.close(self._processes)
