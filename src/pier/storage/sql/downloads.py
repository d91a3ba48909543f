"""Download counts: per image (by digest) and per repository, added in batches that are never added twice.

Each pier process counts manifest GETs in memory and adds them here every few seconds, as one batch with
an id of its own. The batch id is recorded in the same transaction as the counts, so a batch written
again (after a failure that left it unclear whether the first write was committed) changes nothing, and
counts are added (count = count + n), never set, so processes sharing the database never overwrite
each other's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from pier.storage import schema
from pier.storage.sql.engine import SqlBase

_repos = schema.repositories
_counts = schema.image_downloads
_batches = schema.download_batches

BATCHES_KEPT_SECONDS = 24 * 3600  # a batch is retried within seconds; its id is kept far longer than that

_ADD_TO_REPOSITORY = (
    update(_repos).where(_repos.c.id == bindparam("repository")).values(downloads=_repos.c.downloads + bindparam("n"))
)
_COUNTS_OF = select(_counts.c.digest, _counts.c.count).where(
    _counts.c.repository_id == bindparam("repository_id"), _counts.c.digest.in_(bindparam("digests", expanding=True))
)
_FORGET_OLD_BATCHES = delete(_batches).where(_batches.c.flushed_at < bindparam("before"))


class DownloadRows(SqlBase):
    def add_downloads(self, batch_id: str, counts: Mapping[tuple[int, str], int], now: float) -> bool:
        """Add a batch of counts ((repository id, image digest) -> downloads) unless a batch of this id was
        added before; False if it was. Counts of repositories deleted meanwhile are dropped."""
        with self._writing() as conn:
            recorded = conn.execute(self._insert_batch, {"id": batch_id, "flushed_at": now}).rowcount
            if recorded == 0:
                return False
            wanted = sorted({repository_id for repository_id, _ in counts})
            present = set(conn.execute(select(_repos.c.id).where(_repos.c.id.in_(wanted))).scalars())
            kept = {key: n for key, n in counts.items() if key[0] in present and n > 0}
            if kept:
                # Sorted, so two processes adding to the same rows take their locks in the same order.
                rows = [{"repository_id": r, "digest": d, "count": n} for (r, d), n in sorted(kept.items())]
                conn.execute(self._upsert_count, rows)
                totals: dict[int, int] = {}
                for (repository_id, _), n in kept.items():
                    totals[repository_id] = totals.get(repository_id, 0) + n
                conn.execute(_ADD_TO_REPOSITORY, [{"repository": r, "n": n} for r, n in sorted(totals.items())])
            conn.execute(_FORGET_OLD_BATCHES, {"before": now - BATCHES_KEPT_SECONDS})
        return True

    def image_downloads(self, repository_id: int, digests: Sequence[str]) -> dict[str, int]:
        """Downloads of those of `digests` that were ever downloaded."""
        if not digests:
            return {}
        with self._reading() as conn:
            rows = conn.execute(_COUNTS_OF, {"repository_id": repository_id, "digests": sorted(set(digests))})
            return {digest: int(count) for digest, count in rows}

    def registry_downloads(self, registry_id: str) -> int:
        """The downloads of all the registry's repositories together."""
        query = select(func.coalesce(func.sum(_repos.c.downloads), 0)).where(_repos.c.registry_id == registry_id)
        with self._reading() as conn:
            return int(conn.execute(query).scalar_one())

    @property
    def _insert_batch(self) -> Any:
        return self._insert_or_ignore(_batches)

    @property
    def _upsert_count(self) -> Any:
        statement: Any = (
            postgresql_insert(_counts) if self.engine.dialect.name == "postgresql" else sqlite_insert(_counts)
        )
        return statement.on_conflict_do_update(
            index_elements=[_counts.c.repository_id, _counts.c.digest],
            set_={"count": _counts.c.count + statement.excluded["count"]},
        )
