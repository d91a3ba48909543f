"""InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload, BatchCheckLayerAvailability.

Not served yet: they arrive with the data-plane work (issue 3), and until then answer
UnsupportedCommandException rather than a fake success.
"""

from __future__ import annotations

from pier.api.images import _unsupported

for _name in ("InitiateLayerUpload", "UploadLayerPart", "CompleteLayerUpload", "BatchCheckLayerAvailability"):
    _unsupported(_name)
