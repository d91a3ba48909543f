"""The migrations build exactly the schema pier's code declares, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from pier.storage.migrate import upgrade
from pier.storage.schema import metadata
from tests.backends import Backend, PostgresS3


def test_migrations_match_the_declared_schema(backend: Backend, tmp_path: Path) -> None:
    if isinstance(backend, PostgresS3):
        name = f"pier_{uuid.uuid4().hex[:12]}"
        backend.postgres.create_database(name)
        url = f"{backend.postgres.url}/{name}"
    else:
        url = f"sqlite:///{tmp_path / 'migrated.db'}"
    engine = create_engine(url)
    upgrade(engine)
    upgrade(engine)  # a second start finds nothing to do
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0002"
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
