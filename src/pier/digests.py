"""Identifiers every layer checks before they touch a path or a key: content digests (only sha256,
always lowercase hex) and upload ids (the lowercase UUIDs pier hands out)."""

import re

SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
UPLOAD_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_sha256(digest: str) -> bool:
    return SHA256.fullmatch(digest) is not None


def is_upload_id(upload_id: str) -> bool:
    return UPLOAD_ID.fullmatch(upload_id) is not None
