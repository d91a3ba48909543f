"""What the gallery shows about an image, gathered once, when it is pushed, so no page ever reads a blob.

For an image: its config blob (read once, if at most CONFIG_READ_MAX bytes) gives the platform and the
facts people look for (entrypoint, cmd, env, exposed ports, working dir, user, labels, history), each
bounded in count and length. Secrets stay out: the value of an environment variable (or label) whose
name contains SECRET, PASSWORD, PASSWD, TOKEN, KEY, CREDENTIAL or PRIVATE, in any case, is masked before
it is kept, and so is any NAME=value of such a name in the history and the command line (a Dockerfile's
`ENV API_TOKEN=...` is in the history too). For an index: the platforms it lists. For an artifact that
refers to another image: what kind it is (core/artifacts.py).

Images pushed before pier kept details get them from backfill(), which the server runs in the
background: a bounded batch at a time, from the start, then every few minutes for any an outage left out.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from pier import errors
from pier.core import artifacts, manifests
from pier.core.context import Core
from pier.storage.metadata import ImageDetails, ImageRow

log = logging.getLogger("pier")

VERSION = 1
CONFIG_READ_MAX = 1024 * 1024  # larger configs are not read (their facts are simply not shown)
TEXT_MAX = 2000  # characters of any one value kept
LIST_MAX = 200  # env entries, labels, ports, volumes, entrypoint/cmd arguments
HISTORY_MAX = 300
IMAGE_CONFIG_TYPES = (
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
)
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|KEY|CREDENTIAL|PRIVATE", re.IGNORECASE)
MASK = "********"
# NAME=value in free text (a history line, a command argument), value quoted or up to a space or ; & |
_ASSIGNMENT = re.compile(r"""([A-Za-z_][A-Za-z0-9_.\-]*)=("(?:[^"\\]|\\.)*"?|'[^']*'?|[^\s;&|]*)""")


def is_secret_name(name: str) -> bool:
    return SECRET_NAME.search(name) is not None


def mask_text(text: str) -> str:
    """`text` with the value of every NAME=value whose NAME looks secret masked."""

    def masked(match: re.Match[str]) -> str:
        return f"{match[1]}={MASK}" if is_secret_name(match[1]) else match[0]

    return _ASSIGNMENT.sub(masked, text)


def platform_name(values: Mapping[str, Any]) -> str | None:
    """os/architecture[/variant], or None when either is missing (or "unknown", as attestation entries say)."""
    os_name, architecture = values.get("os"), values.get("architecture")
    if not isinstance(os_name, str) or not isinstance(architecture, str) or not os_name or not architecture:
        return None
    if "unknown" in (os_name, architecture):
        return None
    variant = values.get("variant")
    return "/".join([os_name, architecture, *([variant] if isinstance(variant, str) and variant else [])])


def gather(core: Core, manifest: manifests.Manifest) -> ImageDetails:
    """The details of a manifest being pushed; reads its config blob (once, bounded) if it is an image's."""
    kind = _kind(manifest)
    about: dict[str, Any] = {"artifact_format": kind.format} if kind is not None and kind.format else {}
    if manifest.is_index:
        platforms = [p for entry in manifest.manifests if entry.platform and (p := platform_name(entry.platform))]
        return ImageDetails(VERSION, tuple(dict.fromkeys(platforms)), kind.kind if kind else None, about)
    facts: dict[str, Any] = {}
    config = manifest.config
    if config is not None and config.media_type in IMAGE_CONFIG_TYPES:
        if config.size > CONFIG_READ_MAX:
            facts["unread"] = f"the config is larger than {CONFIG_READ_MAX} bytes"
        else:
            document = _read_json(core, config.digest, config.size)
            if isinstance(document, dict):
                facts = config_facts(document)
            else:
                facts["unread"] = "the config is not a JSON object"
    platform = platform_name(facts)
    return ImageDetails(VERSION, (platform,) if platform else (), kind.kind if kind else None, {**facts, **about})


def _kind(manifest: manifests.Manifest) -> artifacts.Kind | None:
    """What a manifest that refers to another (has a subject) is; None for anything else."""
    if manifest.subject is None:
        return None
    artifact_type = manifest.artifact_type or (manifest.config.media_type if manifest.config else None)
    return artifacts.classify(artifact_type, manifest.annotations)


def _read_json(core: Core, digest: str, size: int) -> Any:
    data = b"".join(core.blobs.read(digest, 0, size))
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value if len(value) <= TEXT_MAX else value[: TEXT_MAX - 1] + "…"


def _strings(value: Any, limit: int = LIST_MAX) -> list[str] | None:
    if not isinstance(value, list):
        return None
    return [text for item in value[:limit] if (text := _text(item)) is not None]


def _keys(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return []
    return sorted(text for key in list(value)[:LIST_MAX] if (text := _text(key)) is not None)


def config_facts(document: Mapping[str, Any]) -> dict[str, Any]:
    """What the gallery keeps of an image config (OCI or Docker), bounded and with secrets masked."""
    facts: dict[str, Any] = {}
    for key in ("os", "architecture", "variant", "os.version", "created", "author"):
        if (text := _text(document.get(key))) is not None:
            facts[key] = text
    config = document.get("config")
    config = config if isinstance(config, dict) else {}
    for source, target in (("Entrypoint", "entrypoint"), ("Cmd", "cmd")):
        if (values := _strings(config.get(source))) is not None:
            facts[target] = [mask_text(value) for value in values]
    env = []
    for entry in _strings(config.get("Env")) or []:
        name, _, value = entry.partition("=")
        env.append([name, MASK if is_secret_name(name) else mask_text(value)])
    if env:
        facts["env"] = env
    for source, target in (("ExposedPorts", "exposed_ports"), ("Volumes", "volumes")):
        if keys := _keys(config.get(source)):
            facts[target] = keys
    for source, target in (("WorkingDir", "working_dir"), ("User", "user"), ("StopSignal", "stop_signal")):
        if text := _text(config.get(source)):
            facts[target] = text
    labels = config.get("Labels")
    if isinstance(labels, dict):
        kept: dict[str, str] = {}
        for key in list(labels)[:LIST_MAX]:
            label, text = _text(key), _text(labels[key])
            if label is not None and text is not None:
                kept[label] = MASK if is_secret_name(label) else text
        if kept:
            facts["labels"] = kept
    history = document.get("history")
    if isinstance(history, list):
        steps = []
        for item in history[:HISTORY_MAX]:
            if not isinstance(item, dict):
                continue
            step: dict[str, Any] = {}
            for key in ("created", "created_by", "comment", "author"):
                if (text := _text(item.get(key))) is not None:
                    step[key] = mask_text(text)
            if item.get("empty_layer") is True:
                step["empty_layer"] = True
            steps.append(step)
        facts["history"] = steps
        if len(history) > HISTORY_MAX:
            facts["history_omitted"] = len(history) - HISTORY_MAX
    return facts


def unreadable(reason: str) -> ImageDetails:
    return ImageDetails(VERSION, (), None, {"unread": reason})


# Images pushed before pier kept details


BACKFILL_BATCH = 100


def backfill(core: Core, after_id: int, limit: int = BACKFILL_BATCH) -> tuple[int, int]:
    """Gather the details of up to `limit` images (with an id above `after_id`) that have none: (the last
    id seen, how many were seen; 0 when there are no more). An image whose config cannot be read now (the
    blob store is away) is left for the next pass; one that can never be read gets a row saying why."""
    rows = core.meta.images_without_details(after_id, limit)
    found: list[tuple[int, ImageDetails]] = []
    for row in rows:
        details = _details_of(core, row)
        if details is not None:
            found.append((row.id, details))
    if found:
        core.meta.add_image_details(found)
    return (rows[-1].id if rows else after_id), len(rows)


def _details_of(core: Core, row: ImageRow) -> ImageDetails | None:
    try:
        manifest = manifests.parse(row.manifest or b"", row.media_type)
    except errors.PierError as error:
        return unreadable(f"the manifest cannot be read: {error}")
    try:
        return gather(core, manifest)
    except FileNotFoundError:
        config = manifest.config
        if config is not None and not core.meta.get_repository_blobs(row.repository_id, [config.digest]):
            # Not the repository's yet: a pull-through cache stores an image's blobs when a client first pulls
            # them. Tried again at a later pass, once it may be there.
            return None
        return unreadable("the config blob is missing")
    except Exception as error:
        log.warning("gathering the details of image %s failed (%s); trying again later", row.digest, error)
        return None


def gather_at_push(core: Core, manifest: manifests.Manifest, digest: str) -> ImageDetails | None:
    """gather(), for a push: a blob store that fails to give the config must not fail the push; the image
    gets its details from the next background pass instead."""
    try:
        return gather(core, manifest)
    except Exception as error:
        log.warning("reading the config of %s failed (%s); its details will be gathered later", digest, error)
        return None
