"""PutImage, DescribeImages, DescribeImageTags, BatchDeleteImage."""

from __future__ import annotations

from typing import Any

from pier.api.operations import Params, from_memory, operation
from pier.core import images
from pier.core.context import Core
from pier.core.principals import Caller
from pier.storage.metadata import ImageRow


def _image_ids(given: list[dict[str, str]] | None) -> list[images.ImageId] | None:
    if given is None:
        return None
    return [images.ImageId(i.get("imageDigest"), i.get("imageTag")) for i in given]


def _image_id(image_id: images.ImageId) -> dict[str, Any]:
    return {"imageDigest": image_id.digest, "imageTag": image_id.tag}


def _referenced(image: ImageRow) -> dict[str, Any]:
    return {
        "imageDigest": image.digest,
        "imageSizeInBytes": image.size,
        "imagePushedAt": image.pushed_at,
        "imageManifestMediaType": image.media_type,
        "artifactMediaType": image.artifact_media_type,
    }


@operation("PutImage")
def put_image(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    result = images.put_image_api(
        core,
        caller,
        params.get("registryId"),
        params["repositoryName"],
        params["imageManifest"].encode(),
        params.get("imageManifestMediaType"),
        params.get("imageTag"),
        params.get("imageDigest"),
    )
    return {
        "image": {
            "registryId": result.registry_id,
            "repositoryName": result.repository_name,
            "imageId": _image_id(images.ImageId(result.digest, result.tag)),
            "imageManifest": result.manifest.decode(),
            "imageManifestMediaType": result.media_type,
        }
    }


@operation("DescribeImages")
def describe_images(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    return _describe_images(core, caller, params, memory_only=False)


@from_memory("DescribeImages")
def describe_images_from_memory(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    return _describe_images(core, caller, params, memory_only=True)


def _describe_images(core: Core, caller: Caller, params: Params, memory_only: bool) -> dict[str, Any]:
    repository, page = images.describe_images(
        core,
        caller,
        params.get("registryId"),
        params["repositoryName"],
        _image_ids(params.get("imageIds")),
        params.get("maxResults"),
        params.get("nextToken"),
        memory_only=memory_only,
    )
    details = [
        {
            "registryId": repository.registry_id,
            "repositoryName": repository.name,
            "imageTags": list(image.tags) or None,
            **_referenced(image),
        }
        for image in page.items
    ]
    return {"imageDetails": details, "nextToken": page.next_token}


@operation("DescribeImageTags")
def describe_image_tags(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    _, page = images.describe_image_tags(
        core,
        caller,
        params.get("registryId"),
        params["repositoryName"],
        params.get("maxResults"),
        params.get("nextToken"),
    )
    details = [{"imageTag": t.tag, "createdAt": t.created_at, "imageDetail": _referenced(t.image)} for t in page.items]
    return {"imageTagDetails": details, "nextToken": page.next_token}


@operation("BatchDeleteImage")
def batch_delete_image(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    deleted, failures = images.batch_delete_image(
        core, caller, params.get("registryId"), params["repositoryName"], _image_ids(params["imageIds"]) or []
    )
    return {
        "imageIds": [_image_id(i) for i in deleted],
        "failures": [
            {"imageId": _image_id(f.image_id), "failureCode": f.code, "failureReason": f.reason} for f in failures
        ],
    }
