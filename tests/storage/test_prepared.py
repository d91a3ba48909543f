"""Prepared statements (storage/sql/prepared.py) on both databases: what they cannot replay is refused when
they are built, and what they run answers as SQLAlchemy's Connection.execute would (types, lists, errors)."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import bindparam, insert, literal_column, select
from sqlalchemy.exc import IntegrityError

from pier.core.catalog import EMPTY
from pier.storage import schema
from pier.storage.metadata import UploadRow
from pier.storage.sql import SqlMetadataStore
from pier.storage.sql.prepared import Prepared, Unsupported, read, write
from tests.images import digest_of


def test_what_it_cannot_replay_is_refused_when_built() -> None:
    repositories = schema.repositories
    literal = select(repositories.c.id).where(repositories.c.id == bindparam("id", 1, literal_execute=True))
    with pytest.raises(Unsupported, match="literal_execute"):
        Prepared(literal)
    # has_catalog_data has a Python-side default: an INSERT that leaves it out needs SQLAlchemy to fill it in
    with pytest.raises(Unsupported, match="defaults"):
        Prepared(insert(repositories), keys=("registry_id", "name", "created_at"))
    with pytest.raises(Unsupported, match="callable"):
        Prepared(select(repositories.c.id).where(repositories.c.id == bindparam("id", callable_=lambda: 1)))
    Prepared(select(repositories.c.id).where(repositories.c.id == bindparam("id")))  # and this one is fine


def test_rows_come_back_with_their_types_and_lists_of_any_length(metadata: SqlMetadataStore) -> None:
    repository = metadata.insert_repository("123456789012", "prepared", 0.0, EMPTY, {}, 10)
    upload_id = str(uuid.uuid4())
    assert metadata.insert_upload(UploadRow(upload_id, repository.id, 5, 5, True, 1.0, 2.0))
    found = metadata.get_upload(upload_id)
    assert found == UploadRow(upload_id, repository.id, 5, 5, True, 1.0, 2.0)
    assert found is not None and found.small_inner_part is True  # a Boolean, not SQLite's 1
    assert metadata.get_upload(str(uuid.uuid4())) is None

    digests = [digest_of(bytes([n])) for n in range(4)]
    for n, digest in enumerate(digests[:3]):
        metadata.add_repository_blob(repository.id, digest, 10 + n, time.time())
    for length in (1, 3, 4, 2, 1):
        wanted = digests[:length]
        assert metadata.get_repository_blobs(repository.id, wanted) == {
            digest: (10 + n, None) for n, digest in enumerate(wanted) if n < 3
        }


def test_errors_are_sqlalchemys_and_leave_the_transaction_usable(metadata: SqlMetadataStore) -> None:
    repository = metadata.insert_repository("123456789012", "errors", 0.0, EMPTY, {}, 10)
    registries = schema.registries
    add = Prepared(insert(registries), keys=("registry_id", "display_name"))
    with metadata.engine.begin() as conn:
        write(conn, add, {"registry_id": "123456789012", "display_name": "one"})
    with pytest.raises(IntegrityError), metadata.engine.begin() as conn:
        write(conn, add, {"registry_id": "123456789012", "display_name": "two"})
    names = Prepared(select(registries.c.display_name).where(registries.c.registry_id == bindparam("registry_id")))
    assert read(metadata.engine, names, {"registry_id": "123456789012"}) == [("one",)]
    # a statement SQLAlchemy would also refuse to run: a column that is not there
    broken = Prepared(select(literal_column("no_such_column")).select_from(registries))
    with pytest.raises(Exception) as raised:
        read(metadata.engine, broken, {})
    assert type(raised.value).__module__ == "sqlalchemy.exc"
    assert metadata.get_repository("123456789012", "errors") == repository  # the pool still serves
