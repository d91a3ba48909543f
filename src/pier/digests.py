"""Content digests, shared by every layer: only sha256, always lowercase hex."""

import re

SHA256 = re.compile(r"sha256:[0-9a-f]{64}")


def is_sha256(digest: str) -> bool:
    return SHA256.fullmatch(digest) is not None
