"""Bring a database's schema to the current revision, at every start (Alembic, both engines).

Several pier processes may start at once against one PostgreSQL: an advisory lock lets one migrate
while the others wait, then find nothing left to do.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

MIGRATIONS = Path(__file__).parent / "migrations"
LOCK_ID = 7_311_904_215  # any constant: the key of pier's advisory lock


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine) -> None:
    config = alembic_config()
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_ID})
            connection.commit()
        if sqlite:
            # SQLite changes a column by copying its table (Alembic's batch mode), and dropping a table that
            # others reference fails while foreign keys are enforced. So, as SQLite's documentation says:
            # enforcement off (possible only outside a transaction), the whole migration in one write
            # transaction (which also makes processes starting together take turns), a check, then on.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
            connection.exec_driver_sql("BEGIN IMMEDIATE")  # the DBAPI connection leaves BEGIN to us (sql/engine.py)
        try:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            if sqlite and (broken := connection.exec_driver_sql("PRAGMA foreign_key_check").all()):
                raise RuntimeError(f"the migration left rows whose foreign keys point nowhere: {broken[:5]}")
            connection.commit()
        finally:
            if sqlite:
                connection.rollback()  # nothing, after a commit; all of it, after a failure
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_ID})
                connection.commit()
