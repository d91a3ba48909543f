"""The migrations build exactly the schema pier's code declares, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, exc, text

from pier.storage.migrate import alembic_config, upgrade
from pier.storage.schema import metadata
from pier.storage.sql import open_engine
from tests.backends import Backend, PostgresS3

HEAD = "0009"  # the newest revision


def database_url(backend: Backend, tmp_path: Path) -> str:
    if isinstance(backend, PostgresS3):
        name = f"pier_{uuid.uuid4().hex[:12]}"
        backend.postgres.create_database(name)
        return f"{backend.postgres.url}/{name}"
    return f"sqlite:///{tmp_path / 'migrated.db'}"


def test_migrations_match_the_declared_schema(backend: Backend, tmp_path: Path) -> None:
    engine = create_engine(database_url(backend, tmp_path))
    upgrade(engine)
    upgrade(engine)  # a second start finds nothing to do
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD
    engine.dispose()


def test_a_page_of_images_never_sorts_the_whole_repository(tmp_path: Path) -> None:
    """DescribeImages pages must cost the same in a small and a huge repository: no sort of all images."""
    from sqlalchemy import select

    from pier.storage import schema

    engine = create_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    upgrade(engine)
    images = schema.images
    query = select(images.c.id).where(images.c.repository_id == 1, images.c.id > 5).order_by(images.c.id).limit(101)
    compiled = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as connection:
        plan = " ".join(str(row[-1]) for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled))
    assert "TEMP B-TREE" not in plan, plan
    engine.dispose()


SHA512 = "sha512:" + "ab" * 64


def test_widening_digest_columns_keeps_rows_and_foreign_keys(backend: Backend, tmp_path: Path) -> None:
    """Revision 0003 widens every digest column for sha512 on a database that has rows referencing each
    other (SQLite copies each table for it): the rows stay, and the database still refuses orphans."""
    engine = open_engine(database_url(backend, tmp_path))  # pier's own engine: foreign keys on in SQLite
    config = alembic_config()
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
        connection.commit()
    blob = "sha256:" + "0" * 64
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO repositories (id, registry_id, name, created_at, has_catalog_data) "
                "VALUES (1, '111122223333', 'r', 0, false)"
            )
        )
        connection.execute(text("INSERT INTO blobs VALUES (:d, 1, 0, 0)"), {"d": blob})
        connection.execute(text("INSERT INTO repository_blobs VALUES (1, :d, NULL, 0)"), {"d": blob})
        connection.execute(
            text(
                "INSERT INTO images (id, repository_id, digest, manifest, media_type, size, pushed_at) "
                "VALUES (1, 1, :d, :m, 'application/vnd.oci.image.manifest.v1+json', 1, 0)"
            ),
            {"d": "sha256:" + "1" * 64, "m": b"{}"},
        )
        connection.execute(text("INSERT INTO image_blobs VALUES (1, :d)"), {"d": blob})
    upgrade(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD
        assert connection.execute(text("SELECT digest FROM image_blobs")).scalars().all() == [blob]
        assert connection.execute(text("SELECT digest FROM repository_blobs")).scalars().all() == [blob]
        assert connection.execute(text("SELECT lost_at FROM blobs")).scalars().all() == [None]  # 0004: not lost
    with engine.begin() as connection:  # a sha512 digest fits everywhere now
        connection.execute(
            text("INSERT INTO blobs (digest, size, created_at, touched_at) VALUES (:d, 2, 0, 0)"), {"d": SHA512}
        )
        connection.execute(text("INSERT INTO image_blobs VALUES (1, :d)"), {"d": SHA512})
        connection.execute(text("UPDATE images SET subject_digest = :d"), {"d": SHA512})
    with pytest.raises(exc.IntegrityError), engine.begin() as connection:
        connection.execute(text("DELETE FROM blobs WHERE digest = :d"), {"d": blob})  # an image needs it
    engine.dispose()
