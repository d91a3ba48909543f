"""The metadata store on SQLAlchemy Core: SQLite by default, PostgreSQL with the same code.

The one implementation of storage/metadata.py's protocol, one module per aggregate, each a mixin of the
rows it owns: repositories.py (repositories, resource tags, registries), images.py (images and tags),
blobs.py (blobs, their use by repositories, GC and leftovers) with uploads.py (uploads in progress and
finishing them; GC safety lies in how blobs.py and uploads.py meet, read them together), gallery.py (the
search index and the gallery's listings), image_details.py (what the gallery shows of an image, gathered
at push time), downloads.py (download counts, added in batches), keys.py (signing keys), users.py (IAM
users, their access keys and the counter of changes to them) and snapshot.py (a consistent copy, for
backups), pullthrough.py (pull-through caches: images stored before their blobs, tags with the time the
upstream confirmed them). engine.py has the plumbing they share.
"""

from __future__ import annotations

from pathlib import Path

from pier.storage.generation import WriteGeneration
from pier.storage.sql.downloads import DownloadRows
from pier.storage.sql.engine import open_engine
from pier.storage.sql.gallery import GalleryRows
from pier.storage.sql.image_details import ImageDetailRows
from pier.storage.sql.images import ImageRows
from pier.storage.sql.keys import SigningKeyRows
from pier.storage.sql.pullthrough import PullThroughRows
from pier.storage.sql.repositories import RepositoryRows
from pier.storage.sql.snapshot import Snapshots
from pier.storage.sql.uploads import UploadRows
from pier.storage.sql.users import IamUserRows

__all__ = ["SqlMetadataStore", "open_engine"]


class SqlMetadataStore(
    RepositoryRows,
    PullThroughRows,
    ImageRows,
    ImageDetailRows,
    UploadRows,
    GalleryRows,
    DownloadRows,
    SigningKeyRows,
    IamUserRows,
    Snapshots,
):
    @classmethod
    def from_url(cls, url: str, generation_file: Path | None = None) -> SqlMetadataStore:
        """The store at `url`; its writes move the generation in `generation_file` (storage/generation.py)."""
        return cls(open_engine(url), WriteGeneration(generation_file))
