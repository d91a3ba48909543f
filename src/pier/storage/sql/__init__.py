"""The metadata store on SQLAlchemy Core: SQLite by default, PostgreSQL with the same code.

The one implementation of storage/metadata.py's protocol, one module per aggregate, each a mixin of the
rows it owns: repositories.py (repositories, resource tags, registries), images.py (images and tags),
blobs.py (blobs, their use by repositories, GC and leftovers) with uploads.py (uploads in progress and
finishing them; GC safety lies in how blobs.py and uploads.py meet, read them together), gallery.py (the
search index), keys.py (signing keys) and pullthrough.py (pull-through caches: images stored before their
blobs, tags with the time the upstream confirmed them). engine.py has the plumbing they share.
"""

from __future__ import annotations

from pier.storage.sql.engine import open_engine
from pier.storage.sql.gallery import GalleryRows
from pier.storage.sql.images import ImageRows
from pier.storage.sql.keys import SigningKeyRows
from pier.storage.sql.pullthrough import PullThroughRows
from pier.storage.sql.repositories import RepositoryRows
from pier.storage.sql.uploads import UploadRows

__all__ = ["SqlMetadataStore", "open_engine"]


class SqlMetadataStore(RepositoryRows, PullThroughRows, ImageRows, UploadRows, GalleryRows, SigningKeyRows):
    @classmethod
    def from_url(cls, url: str) -> SqlMetadataStore:
        return cls(open_engine(url))
