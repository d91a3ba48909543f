"""Statements written in SQLAlchemy Core and run on the DBAPI cursor: the hot path of every image push and pull.

Connection.execute costs ~43 us for a cached select by primary key, and engine.connect()/close around it
~100 us; the same SQL on the DBAPI cursor costs ~9 us, ~28 us with a pooled connection's checkout and
return. An image op (two blob uploads, a manifest put and get, a blob get) runs ~33 statements, so that
difference was a tenth of a request's CPU. The statements stay Core (the schema is written once, in
storage/schema.py): a Prepared is compiled once per dialect by SQLAlchemy, and what the compiled form says
(its SQL, the order and names of its parameters, their fixed values, the bind and result processors of
their types) is kept and replayed without the machinery around it.

It does only what the statements it was written for need, and refuses the rest when it is built (at
import), so that a statement or a schema change it cannot replay fails loudly instead of running wrong:
values rendered into the SQL (literal_execute), Python-side column defaults (an INSERT's prefetch),
callable or tuple parameters, escaped parameter names, numbered parameter styles. A value written into
the statement (`.values(size=-1)`, a bindparam with a value) is always the one sent: unlike
Connection.execute, a caller's parameter of the same name does not replace it. Processors are not run on
None (no type in storage/schema.py maps None to anything else).

A DBAPI error is raised as SQLAlchemy raises it (sqlalchemy.exc.DBAPIError.instance: IntegrityError,
OperationalError, ...), so storage/faults.py and the aggregates' `except IntegrityError` see what they
saw before; a connection found dead is invalidated, as SQLAlchemy does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn, cast

from sqlalchemy import Connection, Engine, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter

Parameters = Mapping[str, Any]
Row = tuple[Any, ...]

# The dialects pier runs on: every Prepared is checked against both when it is built.
_CHECKED = (sqlite.dialect(), postgresql.psycopg.dialect())  # type: ignore[no-untyped-call]


class Unsupported(TypeError):
    """A statement this module cannot run as SQLAlchemy would: run it through Connection.execute."""


class _Slot:
    """Where an argument comes from: the caller's parameter `key` (its `index`-th element when expanding)."""

    __slots__ = ("index", "key")

    def __init__(self, key: str, index: int | None) -> None:
        self.key = key
        self.index = index


class _Plan:
    """The SQL and arguments of a compiled statement for one shape of parameters (the lengths of its lists)."""

    __slots__ = ("names", "positional", "slots", "sql")

    def __init__(self, compiled: SQLCompiler, lengths: Mapping[str, int]) -> None:
        dummies: dict[str, Any] = {}
        for key in _required(compiled):
            n = lengths.get(key)
            dummies[key] = _Slot(key, None) if n is None else [_Slot(key, i) for i in range(n)]
        state = compiled.construct_expanded_state(dummies)
        # the latter: the elements of expanded lists (tuples, whose processors are sequences, are refused)
        processors = cast(dict[str, Callable[[Any], Any]], {**compiled._bind_processors, **state.processors})
        order = state.positiontup if compiled.positional else list(state.parameters)
        if order is None:
            raise Unsupported("a positional statement without the order of its parameters")
        self.sql = state.statement
        self.positional = compiled.positional
        self.names = tuple(order)
        # (key, index, fixed value, processor) per argument, in order
        self.slots: tuple[tuple[str | None, int | None, Any, Callable[[Any], Any] | None], ...] = tuple(
            (
                (value.key, value.index, None, processors.get(name))
                if isinstance(value, _Slot)
                else (None, None, _processed(value, processors.get(name)), None)
            )
            for name in order
            for value in (state.parameters[name],)
        )

    def arguments(self, parameters: Parameters) -> Any:
        values = []
        for key, index, fixed, processor in self.slots:
            if key is None:
                values.append(fixed)
                continue
            value = parameters[key] if index is None else parameters[key][index]
            values.append(value if processor is None or value is None else processor(value))
        return tuple(values) if self.positional else dict(zip(self.names, values, strict=True))


def _processed(value: Any, processor: Callable[[Any], Any] | None) -> Any:
    return value if processor is None or value is None else processor(value)


def _required(compiled: SQLCompiler) -> list[str]:
    """The keys of the parameters a caller passes (the others have fixed values); refuses what it cannot replay."""
    if compiled.literal_execute_params:
        raise Unsupported("values rendered into the SQL (literal_execute)")
    if compiled.insert_prefetch or compiled.update_prefetch:
        raise Unsupported("Python-side column defaults (pass every column's value, or use a server default)")
    if compiled.escaped_bind_names:
        raise Unsupported(f"parameter names that need escaping: {sorted(compiled.escaped_bind_names)}")
    if getattr(compiled, "_numeric_binds", False):
        raise Unsupported("a numbered parameter style")
    keys: list[str] = []
    for bind in compiled.bind_names:
        if not isinstance(bind, BindParameter):
            raise Unsupported(f"a parameter of an unknown kind: {bind!r}")
        if bind.callable is not None:
            raise Unsupported(f"a parameter with a callable value: {bind.key}")
        if bind.type._is_tuple_type:
            raise Unsupported(f"a tuple parameter: {bind.key}")
        if bind.required and bind.key not in keys:
            keys.append(bind.key)
    return keys


class _Compiled:
    """A Prepared compiled for one dialect."""

    def __init__(self, prepared: Prepared, dialect: Dialect) -> None:
        statement = prepared.statement(dialect.name) if callable(prepared.statement) else prepared.statement
        compiled = statement.compile(dialect=dialect, column_keys=prepared.keys)
        if not isinstance(compiled, SQLCompiler):
            raise Unsupported(f"not a SQL statement: {type(compiled).__name__}")
        self.dialect = dialect
        self.required = _required(compiled)
        self.expanding = frozenset(bind.key for bind in compiled.post_compile_params)
        self.columns = tuple(column[0] for column in compiled._result_columns)
        self._types = tuple(column[3] for column in compiled._result_columns)
        self._compiled = compiled
        self._plans: dict[tuple[int, ...], _Plan] = {}
        self._plain = None if self.expanding else _Plan(compiled, {})
        self._row_processors: tuple[Callable[[Any], Any] | None, ...] | None = None

    def plan(self, parameters: Parameters) -> _Plan:
        if self._plain is not None:
            return self._plain
        shape = tuple(len(parameters[key]) for key in sorted(self.expanding))
        plan = self._plans.get(shape)
        if plan is None:
            if len(self._plans) >= 64:  # lists of many lengths: keep the memory bounded
                self._plans.clear()
            plan = self._plans[shape] = _Plan(self._compiled, dict(zip(sorted(self.expanding), shape, strict=True)))
        return plan

    def rows(self, cursor: Any) -> list[Row]:
        """The rows the cursor holds, with the result processors of their columns' types (a Boolean on SQLite
        comes back as an int): learnt from the first result's description, as SQLAlchemy learns them."""
        rows: list[Row] = cursor.fetchall()
        processors = self._row_processors
        if processors is None:
            description = cursor.description or ()
            if len(description) != len(self._types):
                raise Unsupported(f"{len(description)} columns came back, {len(self._types)} were compiled")
            processors = self._row_processors = tuple(
                kind._cached_result_processor(self.dialect, column[1])
                for kind, column in zip(self._types, description, strict=True)
            )
        if not any(processors):
            return rows
        return [
            tuple(value if p is None or value is None else p(value) for p, value in zip(processors, row, strict=True))
            for row in rows
        ]


class Prepared:
    """A Core statement run on the DBAPI cursor: the statement, or a function of the dialect's name that makes
    it (for statements in a dialect's own words, such as ON CONFLICT). `keys`: for an INSERT or UPDATE
    without explicit values, the columns its parameters give (SQLAlchemy compiles those from the first
    execution's parameters)."""

    def __init__(self, statement: Any, keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.keys = list(keys) if keys is not None else None
        self._by_dialect: dict[int, _Compiled] = {}
        for dialect in _CHECKED:  # refused now, at import, rather than on the first request
            _Compiled(self, dialect)

    def on(self, dialect: Dialect) -> _Compiled:
        found = self._by_dialect.get(id(dialect))
        if found is None or found.dialect is not dialect:
            if len(self._by_dialect) >= 8:  # engines come and go (tests, pier gc): keep the memory bounded
                self._by_dialect.clear()
            found = self._by_dialect[id(dialect)] = _Compiled(self, dialect)
        return found


class Result:
    __slots__ = ("lastrowid", "rowcount", "rows")

    def __init__(self, rows: list[Row], rowcount: int, lastrowid: int | None = None) -> None:
        self.rows = rows
        self.rowcount = rowcount
        self.lastrowid = lastrowid  # an INSERT's new row id where the driver tells it (SQLite)


def _raise(error: BaseException, dialect: Dialect, statement: str | None, invalidated: bool) -> NoReturn:
    if isinstance(error, dialect.loaded_dbapi.Error):
        raise exc.DBAPIError.instance(
            statement,
            None,
            error,
            dialect.loaded_dbapi.Error,
            hide_parameters=True,
            connection_invalidated=invalidated,
            dialect=dialect,
        ) from error
    raise error


@contextmanager
def _cursor(proxied: Any, dialect: Dialect, sql: str, invalidate: Callable[[BaseException], None]) -> Iterator[Any]:
    """A cursor of a pooled DBAPI connection, closed after use. A DBAPI error is raised as SQLAlchemy raises it,
    and a connection it shows to be gone is invalidated (`invalidate`), as SQLAlchemy does."""
    cursor = None
    try:
        cursor = proxied.cursor()
        try:
            yield cursor
        finally:
            cursor.close()
    except BaseException as error:
        gone = _disconnected(error, dialect, proxied.dbapi_connection, cursor)
        if gone:
            invalidate(error)
        _raise(error, dialect, sql, gone)


def _disconnected(error: BaseException, dialect: Dialect, dbapi_connection: Any, cursor: Any) -> bool:
    return isinstance(error, dialect.loaded_dbapi.Error) and dialect.is_disconnect(error, dbapi_connection, cursor)


class Reader:
    """Statements on one pooled DBAPI connection that only reads."""

    __slots__ = ("_connection", "_dialect")

    def __init__(self, connection: Any, dialect: Dialect) -> None:
        self._connection = connection
        self._dialect = dialect

    def rows(self, prepared: Prepared, parameters: Parameters) -> list[Row]:
        compiled = prepared.on(self._dialect)
        plan = compiled.plan(parameters)
        with _cursor(self._connection, self._dialect, plan.sql, self._connection.invalidate) as cursor:
            cursor.execute(plan.sql, plan.arguments(parameters))
            return compiled.rows(cursor) if compiled.columns else []

    def mappings(self, prepared: Prepared, parameters: Parameters) -> list[dict[str, Any]]:
        """The rows as dicts by column name."""
        columns = prepared.on(self._dialect).columns
        return [dict(zip(columns, row, strict=True)) for row in self.rows(prepared, parameters)]

    def execute(self, sql: str) -> None:
        """A statement of the driver's own (BEGIN)."""
        cursor = self._connection.cursor()
        try:
            cursor.execute(sql)
        finally:
            cursor.close()


@contextmanager
def reading(engine: Engine, begin: str | None = None) -> Iterator[Reader]:
    """A pooled connection that only reads; `begin`: a statement that opens a snapshot (SQLite's BEGIN) for
    reads that must agree (the connection's return to the pool rolls it back)."""
    dialect = engine.dialect
    try:
        connection = engine.raw_connection()
    except dialect.loaded_dbapi.Error as error:
        _raise(error, dialect, None, _disconnected(error, dialect, None, None))
    try:
        reader = Reader(connection, dialect)
        if begin is not None:
            try:
                reader.execute(begin)
            except BaseException as error:
                _raise(error, dialect, begin, False)
        yield reader
    finally:
        connection.close()


def read(engine: Engine, prepared: Prepared, parameters: Parameters) -> list[Row]:
    """One statement's rows, on a pooled connection (one statement is a snapshot by itself)."""
    with reading(engine) as reader:
        return reader.rows(prepared, parameters)


def write(conn: Connection, prepared: Prepared, parameters: Parameters) -> Result:
    """One statement in the transaction `conn` is in, on its DBAPI connection."""
    compiled = prepared.on(conn.dialect)
    plan = compiled.plan(parameters)
    with _cursor(conn.connection, conn.dialect, plan.sql, conn.invalidate) as cursor:
        cursor.execute(plan.sql, plan.arguments(parameters))
        rows = compiled.rows(cursor) if compiled.columns else []
        return Result(rows, cursor.rowcount, getattr(cursor, "lastrowid", None))


def write_many(conn: Connection, prepared: Prepared, rows: Sequence[Parameters]) -> None:
    """One statement for each of `rows` (all of the same shape), in the transaction `conn` is in."""
    if not rows:
        return
    compiled = prepared.on(conn.dialect)
    plan = compiled.plan(rows[0])
    with _cursor(conn.connection, conn.dialect, plan.sql, conn.invalidate) as cursor:
        cursor.executemany(plan.sql, [plan.arguments(row) for row in rows])
