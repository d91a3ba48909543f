"""The architecture, checked: the core knows no HTTP, SQL or SDK, and the doors do not lean on each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "pier"
FORBIDDEN = {
    # The domain: no web framework, no SQL, no AWS SDK, no door, no concrete store.
    "core": (
        "starlette",
        "sqlalchemy",
        "boto3",
        "botocore",
        "granian",
        "pier.api",
        "pier.oci",
        "pier.gallery",
        "pier.web",
        "pier.app",
        "pier.storage.sql",
        "pier.storage.blobs_fs",
        "pier.storage.blobs_s3",
    ),
    # Storage knows the row types and errors, never the core's logic or a door.
    "storage": ("pier.core", "pier.api", "pier.oci", "pier.gallery", "pier.web", "starlette"),
    # The doors are independent of each other.
    "api": ("pier.oci", "pier.gallery"),
    "oci": ("pier.api", "pier.gallery"),
    "gallery": ("pier.api", "pier.oci"),
    # Pull-through caches talk to upstreams; the /v2/ door answers clients with what they return.
    "pullthrough": ("starlette", "pier.api", "pier.oci", "pier.gallery"),
}


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_what_its_layer_may(package: str) -> None:
    offences = []
    for path in sorted((SRC / package).rglob("*.py")):
        for name in imports(path):
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[package]):
                offences.append(f"{path.relative_to(SRC)} imports {name}")
    assert offences == []
