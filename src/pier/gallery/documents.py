"""The gallery's pages as JSON (the same paths with Accept: application/json, and /search).

Field names follow the AWS APIs' camelCase. What a page does not show (policies, resource tags, account
ids) is not here either, and secret-looking values are masked here as on the page.
"""

from __future__ import annotations

from typing import Any

from pier.core import gallery, image_pages


def card(c: gallery.Card) -> dict[str, Any]:
    return {
        "alias": c.alias,
        "name": c.name,
        "path": c.path,
        "uri": c.uri,
        "displayName": c.display_name,
        "description": c.description,
        "logoUrl": c.logo_url,
        "architectures": list(c.architectures),
        "operatingSystems": list(c.operating_systems),
        "lastPushedAt": c.last_pushed_at,
        "downloads": c.downloads,
        "verified": c.verified,
        "signed": c.signed,
        "cacheOf": c.cache_of,
    }


def listing(found: gallery.Listing) -> dict[str, Any]:
    return {"repositories": [card(c) for c in found.cards], "nextToken": found.next_token, "sort": found.sort}


def publisher(found: gallery.Publisher) -> dict[str, Any]:
    return {
        "alias": found.alias,
        "displayName": found.display_name,
        "verified": found.verified,
        "downloads": found.downloads,
        **listing(found.listing),
    }


def repository(page: gallery.RepositoryPage) -> dict[str, Any]:
    return {
        **card(page.card),
        "aboutText": page.about_text,
        "usageText": page.usage_text,
        "pullCommand": page.pull_command,
        "commands": dict(page.commands),
        "tags": [
            {
                "tag": t.tag,
                "digest": t.digest,
                "mediaType": t.media_type,
                "size": t.size,
                "pushedAt": t.pushed_at,
                "platforms": list(t.platforms),
                "downloads": t.downloads,
                "signed": t.signed,
                "artifact": t.artifact,
                "path": t.path,
                "pullCommand": t.pull_command,
            }
            for t in page.tags
        ],
        "sort": page.sort,
        "nextToken": page.next_token,
    }


def _artifact(a: image_pages.Artifact) -> dict[str, Any]:
    return {
        "digest": a.digest,
        "kind": a.kind,
        "label": a.label,
        "format": a.format,
        "artifactType": a.artifact_type,
        "size": a.size,
        "pushedAt": a.pushed_at,
        "path": a.path,
    }


def _label(label: image_pages.Label) -> dict[str, Any]:
    return {"key": label.key, "value": label.value, "name": label.name}


def _config(config: image_pages.Config | None) -> dict[str, Any] | None:
    if config is None:
        return None
    return {
        "entrypoint": config.entrypoint,
        "cmd": config.cmd,
        "env": [{"name": name, "value": value} for name, value in config.env],
        "exposedPorts": config.exposed_ports,
        "workingDir": config.working_dir,
        "user": config.user,
        "volumes": config.volumes,
        "stopSignal": config.stop_signal,
        "labels": {label.key: label.value for label in config.labels},
        "namedLabels": [_label(label) for label in config.named_labels],
        "created": config.created,
        "author": config.author,
        "history": config.history,
        "historyOmitted": config.history_omitted,
    }


def image(page: image_pages.ImagePage) -> dict[str, Any]:
    return {
        "repository": card(page.card),
        "reference": page.reference,
        "tag": page.tag,
        "digest": page.digest,
        "mediaType": page.media_type,
        "size": page.size,
        "pushedAt": page.pushed_at,
        "tags": page.tags,
        "tagCount": page.tag_count,
        "downloads": page.downloads,
        "signed": page.signed,
        "isIndex": page.is_index,
        "pullCommand": page.pull_command,
        "digestPullCommand": page.digest_pull_command,
        "subject": page.subject,
        "artifact": page.artifact,
        "annotations": page.annotations,
        "artifacts": [_artifact(a) for a in page.artifacts],
        "platforms": [
            {
                "platform": p.platform,
                "digest": p.digest,
                "mediaType": p.media_type,
                "size": p.size,
                "downloads": p.downloads,
                "signed": p.signed,
                "layers": [
                    {"digest": layer.digest, "size": layer.size, "mediaType": layer.media_type} for layer in p.layers
                ],
                "config": _config(p.config),
                "configDigest": p.config_digest,
                "configMediaType": p.config_media_type,
                "detailsPending": p.pending,
                "note": p.note,
                "artifacts": [_artifact(a) for a in p.artifacts],
            }
            for p in page.platforms
        ],
    }
