"""Rows of ended uploads (kept so that their ids are refused until they expire) go once they have expired:
all of them, a batch at a time, on both databases, found through their index rather than by reading the
whole table (a busy registry ends millions of uploads a day)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from pier.core.catalog import EMPTY
from pier.storage.metadata import UPLOAD_ENDED, UploadRow
from pier.storage.migrate import upgrade
from pier.storage.sql import SqlMetadataStore
from pier.storage.sql import uploads as upload_rows


def test_expired_ended_uploads_go_a_batch_at_a_time(
    metadata: SqlMetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upload_rows, "FORGET_BATCH", 3)  # 8 expired rows: batches of 3, 3 and 2
    repository = metadata.insert_repository("123456789012", "ended", 0.0, EMPTY, {}, 100)

    def row(size: int, ended_at: float) -> str:
        upload_id = str(uuid.uuid4())
        metadata.insert_upload(UploadRow(upload_id, repository.id, size, 0, False, ended_at, ended_at))
        return upload_id

    expired = [row(UPLOAD_ENDED, float(i)) for i in range(8)]
    recent = [row(UPLOAD_ENDED, 100.0) for _ in range(2)]
    in_progress = [row(5, 0.0) for _ in range(2)]  # idle as long as the expired ones: not this sweep's
    assert metadata.forget_ended_uploads(50.0) == len(expired)
    assert [metadata.get_upload(upload_id) for upload_id in expired] == [None] * len(expired)
    assert all(metadata.get_upload(upload_id) is not None for upload_id in recent + in_progress)
    assert metadata.forget_ended_uploads(50.0) == 0


def test_the_sweep_reads_only_the_rows_it_forgets(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    upgrade(engine)
    sql = str(upload_rows._FORGET_ENDED.compile(engine))  # before, batch, offset
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, (1.0, 1000, 0))
        plan = " ".join(str(row[-1]) for row in rows)
    assert "ix_uploads_ended" in plan and "SCAN uploads" not in plan, plan
    engine.dispose()
