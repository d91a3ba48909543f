"""InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload, BatchCheckLayerAvailability."""

from __future__ import annotations

from typing import Any

from pier.api.inline_blobs import parts_of
from pier.api.operations import Params, operation
from pier.core import uploads
from pier.core.context import Core
from pier.core.principals import Caller
from pier.web import metrics


@operation("InitiateLayerUpload")
def initiate_layer_upload(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    upload_id, part_size = uploads.initiate_layer_upload(
        core, caller, params.get("registryId"), params["repositoryName"]
    )
    return {"uploadId": upload_id, "partSize": part_size}


@operation("UploadLayerPart")
def upload_layer_part(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    name, upload_id = params["repositoryName"], params["uploadId"]
    parts, length = parts_of(params["layerPartBlob"])  # decoded from the body as they are written
    registry_id, last_byte = uploads.upload_layer_part(
        core,
        caller,
        params.get("registryId"),
        name,
        upload_id,
        params["partFirstByte"],
        params["partLastByte"],
        parts,
        length,
    )
    metrics.BLOB_BYTES_RECEIVED.inc(length)
    return {"registryId": registry_id, "repositoryName": name, "uploadId": upload_id, "lastByteReceived": last_byte}


@operation("CompleteLayerUpload")
def complete_layer_upload(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    name, upload_id = params["repositoryName"], params["uploadId"]
    registry_id, digest = uploads.complete_layer_upload(
        core, caller, params.get("registryId"), name, upload_id, params["layerDigests"]
    )
    return {"registryId": registry_id, "repositoryName": name, "uploadId": upload_id, "layerDigest": digest}


@operation("BatchCheckLayerAvailability")
def batch_check_layer_availability(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    layers, failures = uploads.batch_check_layer_availability(
        core, caller, params.get("registryId"), params["repositoryName"], params["layerDigests"]
    )
    return {
        "layers": [
            {
                "layerDigest": layer.digest,
                "layerAvailability": "AVAILABLE",
                "layerSize": layer.size,
                "mediaType": layer.media_type,
            }
            for layer in layers
        ],
        "failures": [{"layerDigest": d, "failureCode": c, "failureReason": r} for d, c, r in failures],
    }
