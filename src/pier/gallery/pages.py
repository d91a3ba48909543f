"""Rendering: the Jinja2 environment (autoescaping on), and the filters templates use."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from starlette.templating import Jinja2Templates

from pier.core import catalog, manifests
from pier.gallery import markdown

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
UNITS = ("B", "KB", "MB", "GB", "TB")
MEDIA_TYPE_NAMES = {
    manifests.DOCKER_MANIFEST: "Docker image",
    manifests.DOCKER_LIST: "Docker manifest list",
    manifests.OCI_MANIFEST: "OCI image",
    manifests.OCI_INDEX: "OCI index",
}


def human_size(size: int) -> str:
    value = float(size)
    for unit in UNITS:
        if value < 1000 or unit == UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def timestamp(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def count(value: int) -> str:
    """1234567 -> 1,234,567."""
    return f"{value:,}"


def short_digest(digest: str) -> str:
    algorithm, _, hexes = digest.partition(":")
    return f"{algorithm}:{hexes[:12]}"


def command(values: list[str] | None) -> str:
    """An entrypoint or cmd as Dockerfiles write the exec form."""
    return json.dumps(values or [])


def iso(seconds: float | None) -> str:
    return "" if seconds is None else datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat()


TEMPLATES.env.filters.update(
    human_size=human_size,
    timestamp=timestamp,
    iso=iso,
    markdown=markdown.render,
    media_type=lambda value: MEDIA_TYPE_NAMES.get(value, value),
    count=count,
    short_digest=short_digest,
    command=command,
)
TEMPLATES.env.globals.update(ARCHITECTURES=catalog.ARCHITECTURES, OPERATING_SYSTEMS=catalog.OPERATING_SYSTEMS)
