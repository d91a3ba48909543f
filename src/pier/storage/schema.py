"""The metadata tables (SQLAlchemy Core), shared by SQLite and PostgreSQL.

One MetaData with a naming convention, so constraint names are stable across engines and migrations.
Timestamps are float seconds since the epoch: what the AWS JSON protocol sends, with no time-zone games.
Digest columns hold any digest pier supports (pier.digests): up to 135 characters, for sha512.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

DIGEST = 135  # len("sha512:") + 128 hex digits; migration 0003 widened the columns from 80

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

repositories = Table(
    "repositories",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", String(12), nullable=False),
    Column("name", String(205), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("policy_text", Text),
    # Catalog data (PutRepositoryCatalogData); lists are JSON arrays.
    Column("description", Text),
    Column("about_text", Text),
    Column("usage_text", Text),
    Column("architectures", Text),
    Column("operating_systems", Text),
    Column("logo_digest", String(DIGEST)),
    Column("has_catalog_data", Boolean, nullable=False, default=False),
    Column("last_pushed_at", Float),  # the last image or tag push; the gallery lists newest first
    # Manifest GETs on /v2/ of any of its images, ever (counted in memory, added in batches: downloads.py).
    Column("downloads", BigInteger, nullable=False, default=0, server_default="0"),
    UniqueConstraint("registry_id", "name"),
    Index("ix_repositories_last_pushed_at", "last_pushed_at"),
    Index("ix_repositories_downloads", "downloads"),
)

# The gallery's search index: the words of each repository's name (weight 2) and description (weight 1).
# Searching looks words up here by prefix, never scanning repositories.
search_terms = Table(
    "search_terms",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("term", String(64), primary_key=True, index=True),
    Column("weight", Integer, primary_key=True),
)

# Badges from catalog data (kind "architecture" or "os"), for the gallery's filters.
repository_badges = Table(
    "repository_badges",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(20), primary_key=True),
    Column("value", String(50), primary_key=True),
    Index("ix_repository_badges_kind_value", "kind", "value"),
)

# Resource tags (TagResource) on repositories.
repository_tags = Table(
    "repository_tags",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("value", String(256), nullable=False),
)

# Registry catalog data (PutRegistryCatalogData); one row per registry that has any.
registries = Table(
    "registries",
    metadata,
    Column("registry_id", String(12), primary_key=True),
    Column("display_name", String(100), nullable=False),
)

# Keys that sign tokens (GetAuthorizationToken, bearer tokens, nextToken). Kept in the database so
# every pier process sharing it accepts the others' tokens; a new row rotates, old rows still verify.
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("secret", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
)

# IAM users of an account (`pier users`), with their identity policies; user_id never repeats.
iam_users = Table(
    "iam_users",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("user_id", String(32), nullable=False, unique=True),
    Column("policy_text", Text),
    Column("created_at", Float, nullable=False),
)

# Their access keys. `secret` is what SigV4 needs, sealed when PIER_SECRETS_KEY is set (core/secrets.py).
iam_access_keys = Table(
    "iam_access_keys",
    metadata,
    Column("access_key_id", String(128), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("user_name", String(64), nullable=False),
    Column("secret", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    ForeignKeyConstraint(["account_id", "user_name"], ["iam_users.account_id", "iam_users.name"]),
    Index("ix_iam_access_keys_user", "account_id", "user_name"),
)

# One row (id 1): bumped by every change to users or keys, so each process learns of changes (and
# reloads them) with one small read.
iam_generation = Table(
    "iam_generation",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("generation", BigInteger, nullable=False),
)

# Blobs pier has stored (layers, configs, logos): one row per digest, shared by every repository.
# touched_at moves whenever the blob is uploaded or mounted again: GC spares blobs touched recently.
# lost_at: when `pier fsck --repair` found the bytes missing or corrupt and forgot them (NULL while they are
# there). A lost blob keeps its row, so the images that need it keep their claim (and GC's protection), but
# no repository serves, lists or mounts it until a publish of the same bytes clears lost_at.
blobs = Table(
    "blobs",
    metadata,
    Column("digest", String(DIGEST), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("touched_at", Float, nullable=False, index=True),
    Column("lost_at", Float),
)

# Blobs a repository may use (uploaded or mounted into it). media_type is learnt from manifests.
repository_blobs = Table(
    "repository_blobs",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("digest", String(DIGEST), ForeignKey("blobs.digest"), primary_key=True),
    Column("media_type", String(255)),
    Column("created_at", Float, nullable=False),
)

# Manifests and indexes, stored byte for byte (the digest is of these exact bytes).
# The id orders images by push, which is what DescribeImages pages over.
images = Table(
    "images",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("digest", String(DIGEST), nullable=False),
    Column("manifest", LargeBinary, nullable=False),
    Column("media_type", String(255), nullable=False),
    Column("artifact_media_type", String(255)),  # the config's media type, or an index's artifactType
    Column("artifact_type", String(255)),  # OCI artifactType (referrers filter on it)
    Column("subject_digest", String(DIGEST)),  # OCI subject: the manifest this one refers to
    Column("size", BigInteger, nullable=False),
    Column("pushed_at", Float, nullable=False),
    UniqueConstraint("repository_id", "digest"),
    Index("ix_images_subject", "repository_id", "subject_digest"),
    # DescribeImages pages in push order: this index serves the filter and the order together, so a page
    # costs the same in a repository of a thousand images or of a million.
    Index("ix_images_repository_id_id", "repository_id", "id"),
)

image_tags = Table(
    "image_tags",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(300), primary_key=True),
    Column("image_id", Integer, ForeignKey("images.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    # The gallery lists a repository's tags newest first (ties: by name, descending), a page at a time,
    # reading this index backwards: no sort, however many tags there are.
    Index("ix_image_tags_repository_id_created_at", "repository_id", "created_at", "tag"),
)

# What each image needs: its config and layers (blobs) and, for an index, its manifests.
image_blobs = Table(
    "image_blobs",
    metadata,
    Column("image_id", Integer, ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    # No cascade: the database refuses to delete a blob an image needs, which is what makes GC safe.
    Column("digest", String(DIGEST), ForeignKey("blobs.digest"), primary_key=True, index=True),
)

image_children = Table(
    "image_children",
    metadata,
    Column("image_id", Integer, ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    Column("child_digest", String(DIGEST), primary_key=True),
)

# What the gallery shows about an image, gathered once when it is pushed (from its manifest and, for an
# image, its config blob), so no page reads a blob: `platforms` (a JSON list of os/architecture[/variant]),
# the kind of artifact it is when it refers to another (signature, sbom, attestation) and `facts` (JSON:
# the config's entrypoint, cmd, env with secret-looking values masked, ports, labels, history...).
# `version` says which extraction made the row.
image_details = Table(
    "image_details",
    metadata,
    Column("image_id", Integer, ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("platforms", Text, nullable=False),
    Column("artifact_kind", String(20)),
    Column("facts", Text, nullable=False),
)

# Downloads of each image (manifest GETs on /v2/, by tag or digest), by digest, so a count outlives a
# delete and a push of the same image again. The repository's total is repositories.downloads.
image_downloads = Table(
    "image_downloads",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("digest", String(DIGEST), primary_key=True),
    Column("count", BigInteger, nullable=False),
)

# Batches of download counts already added, by the id their process gave them: a batch written again
# after a failure that left it unclear whether it was committed is never added twice. Pruned after a day.
download_batches = Table(
    "download_batches",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("flushed_at", Float, nullable=False, index=True),
)

# Layer uploads in progress. `size` counts the bytes acknowledged (durable in the blob store).
uploads = Table(
    "uploads",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("size", BigInteger, nullable=False),
    Column("last_part_size", BigInteger, nullable=False, default=0),
    Column("small_inner_part", Boolean, nullable=False, default=False),  # a part before the last was < 5 MiB
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
# Uploads in progress, by repository: their number is counted each time an upload's first bytes come, and
# rows of ended uploads (size -1, metadata.UPLOAD_ENDED, kept until they expire: storage/sql/uploads.py)
# are left out of it. Queries say it in these same words, so that SQLite sees they may use this index.
UPLOAD_IN_PROGRESS = text("size != -1")
Index(
    "ix_uploads_in_progress",
    uploads.c.repository_id,
    sqlite_where=UPLOAD_IN_PROGRESS,
    postgresql_where=UPLOAD_IN_PROGRESS,
)
# Ended uploads, by when they ended: the expiry sweep deletes the oldest of them a batch at a time, and
# without this index each batch read the whole table (a busy registry ends ~17 million uploads a day).
UPLOAD_ENDED = text("size = -1")
Index("ix_uploads_ended", uploads.c.updated_at, sqlite_where=UPLOAD_ENDED, postgresql_where=UPLOAD_ENDED)

# Pull-through caches (core/pullthrough.py). When the upstream last confirmed each cached tag: a tag is
# trusted for the rule's tag_ttl_seconds after that, then asked about again.
pull_through_tags = Table(
    "pull_through_tags",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(300), primary_key=True),
    Column("digest", String(DIGEST), nullable=False),
    Column("checked_at", Float, nullable=False),
)

# Every blob a cached image's manifest names, stored yet or not (image_blobs lists those stored): blobs
# are fetched when a client asks for them, and then linked to the images that name them.
pull_through_blobs = Table(
    "pull_through_blobs",
    metadata,
    Column("image_id", Integer, ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    Column("digest", String(DIGEST), primary_key=True, index=True),
    Column("size", BigInteger, nullable=False),
    Column("media_type", String(255), nullable=False),
)
