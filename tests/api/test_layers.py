"""The ECR layer API: InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload, BatchCheckLayerAvailability."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import OWNER, client
from tests.images import MIB, digest_of, push_blob
from tests.signing import call

UPLOAD = "12345678-1234-1234-1234-123456789012"


def upload(ecr: Any, repo: str, part: bytes, first: int, upload_id: str) -> Any:
    return ecr.upload_layer_part(
        repositoryName=repo,
        uploadId=upload_id,
        partFirstByte=first,
        partLastByte=first + len(part) - 1,
        layerPartBlob=part,
    )


def test_multi_part_upload_becomes_an_available_layer(ecr: Any, repo: str) -> None:
    data = os.urandom(12 * MIB + 123)
    started = ecr.initiate_layer_upload(repositoryName=repo)
    assert started["partSize"] >= 5 * MIB
    upload_id = started["uploadId"]
    for first in range(0, len(data), 5 * MIB):
        answer = upload(ecr, repo, data[first : first + 5 * MIB], first, upload_id)
        assert answer["lastByteReceived"] == min(first + 5 * MIB, len(data)) - 1
    done = ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[digest_of(data)])
    assert done["layerDigest"] == digest_of(data)
    checked = ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=[digest_of(data)])
    assert checked["layers"] == [
        {"layerDigest": digest_of(data), "layerAvailability": "AVAILABLE", "layerSize": len(data)}
    ]
    with pytest.raises(ecr.exceptions.UploadNotFoundException):  # a finished upload is gone
        upload(ecr, repo, b"more", len(data), upload_id)


def test_out_of_order_part_reports_the_last_valid_byte(ecr: Any, repo: str) -> None:
    first, second = b"a" * (5 * MIB), b"b" * 100
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    upload(ecr, repo, first, 0, upload_id)
    with pytest.raises(ecr.exceptions.InvalidLayerPartException) as info:
        upload(ecr, repo, second, len(first) + 100, upload_id)
    assert info.value.response["lastValidByteReceived"] == len(first) - 1
    assert info.value.response["uploadId"] == upload_id
    with pytest.raises(ecr.exceptions.InvalidLayerPartException):  # a resend of acknowledged bytes
        upload(ecr, repo, b"a" * 100, 0, upload_id)
    with pytest.raises(ecr.exceptions.InvalidLayerPartException):  # lastByte that disagrees with the size
        ecr.upload_layer_part(
            repositoryName=repo,
            uploadId=upload_id,
            partFirstByte=len(first),
            partLastByte=len(first) + 500,
            layerPartBlob=b"c" * 10,
        )
    upload(ecr, repo, second, len(first), upload_id)  # the right continuation still works
    digest = digest_of(first + second)
    assert (
        ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[digest])["layerDigest"]
        == digest
    )


def test_wrong_digest_is_invalid_layer_and_keeps_the_upload(ecr: Any, repo: str) -> None:
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    upload(ecr, repo, b"payload", 0, upload_id)
    with pytest.raises(ecr.exceptions.InvalidLayerException):
        ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[digest_of(b"other")])
    assert ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=[digest_of(b"other")])["failures"]
    # Nothing was lost: completing with the right digest works.
    done = ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[digest_of(b"payload")])
    assert done["layerDigest"] == digest_of(b"payload")


def test_empty_upload(ecr: Any, repo: str) -> None:
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    with pytest.raises(ecr.exceptions.EmptyUploadException):
        ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[digest_of(b"")])


def test_small_inner_part_is_too_small(ecr: Any, repo: str) -> None:
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    upload(ecr, repo, b"x" * 1000, 0, upload_id)
    upload(ecr, repo, b"y" * 1000, 1000, upload_id)
    with pytest.raises(ecr.exceptions.LayerPartTooSmallException):
        ecr.complete_layer_upload(
            repositoryName=repo, uploadId=upload_id, layerDigests=[digest_of(b"x" * 1000 + b"y" * 1000)]
        )


def test_layer_already_exists(ecr: Any, repo: str) -> None:
    push_blob(ecr, repo, b"same bytes")
    with pytest.raises(ecr.exceptions.LayerAlreadyExistsException):
        push_blob(ecr, repo, b"same bytes")


def test_the_same_blob_in_another_repository_is_not_shared_until_uploaded(ecr: Any, repo: str) -> None:
    other = repo + "-other"
    ecr.create_repository(repositoryName=other)
    push_blob(ecr, repo, b"shared content")
    assert (
        ecr.batch_check_layer_availability(repositoryName=other, layerDigests=[digest_of(b"shared content")])[
            "failures"
        ][0]["failureCode"]
        == "MissingLayerDigest"
    )
    push_blob(ecr, other, b"shared content")  # deduplicated in storage, but now usable in `other`
    assert ecr.batch_check_layer_availability(repositoryName=other, layerDigests=[digest_of(b"shared content")])[
        "layers"
    ]


def test_unknown_and_foreign_uploads(ecr: Any, ecr_other: Any, repo: str) -> None:
    with pytest.raises(ecr.exceptions.UploadNotFoundException):
        upload(ecr, repo, b"x", 0, UPLOAD)
    with pytest.raises(ecr.exceptions.UploadNotFoundException):
        ecr.complete_layer_upload(repositoryName=repo, uploadId=UPLOAD, layerDigests=[digest_of(b"x")])
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    other_repo = repo + "-second"
    ecr.create_repository(repositoryName=other_repo)
    with pytest.raises(ecr.exceptions.UploadNotFoundException):  # an upload belongs to its repository
        upload(ecr, other_repo, b"x", 0, upload_id)
    with pytest.raises(ecr_other.exceptions.RepositoryNotFoundException):
        ecr_other.upload_layer_part(
            registryId="111122223333",
            repositoryName=repo,
            uploadId=upload_id,
            partFirstByte=0,
            partLastByte=0,
            layerPartBlob=b"x",
        )


def test_unknown_registry_and_repository(ecr: Any) -> None:
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.initiate_layer_upload(repositoryName="test/nowhere")
    with pytest.raises(ecr.exceptions.RegistryNotFoundException):
        ecr.initiate_layer_upload(registryId="no-such-alias", repositoryName="test/nowhere")


def test_layer_part_size_limit_reaches_the_server(pier: Any, repo: str) -> None:
    import base64

    from tests.conftest import OWNER
    from tests.signing import call

    part = base64.b64encode(b"x" * (20 * MIB + 1)).decode()
    response = call(
        pier.url,
        OWNER,
        "UploadLayerPart",
        {
            "repositoryName": repo,
            "uploadId": UPLOAD,
            "partFirstByte": 0,
            "partLastByte": 20 * MIB,
            "layerPartBlob": part,
        },
    )
    assert response.status_code == 400
    assert "layerPartBlob" in response.json()["message"]


def test_batch_check_reports_each_digest(ecr: Any, repo: str) -> None:
    digest = push_blob(ecr, repo, b"present")
    answer = ecr.batch_check_layer_availability(
        repositoryName=repo, layerDigests=[digest, digest_of(b"absent"), "sha256:xyz", "md5:abc"]
    )
    assert [layer["layerDigest"] for layer in answer["layers"]] == [digest]
    assert {f["layerDigest"]: f["failureCode"] for f in answer["failures"]} == {
        digest_of(b"absent"): "MissingLayerDigest",
        "sha256:xyz": "InvalidLayerDigest",
        "md5:abc": "InvalidLayerDigest",
    }


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def test_sha512_layers_through_the_layer_api(ecr: Any, repo: str) -> None:
    """layerDigests may name a sha512 digest: the parts are hashed in it, and it is what /v2/ serves."""
    data = os.urandom(6 * MIB + 5)
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    upload(ecr, repo, data[: 5 * MIB], 0, upload_id)
    upload(ecr, repo, data[5 * MIB :], 5 * MIB, upload_id)
    with pytest.raises(ecr.exceptions.InvalidLayerException) as wrong:
        ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[sha512(b"other")])
    assert sha512(data) in str(wrong.value)  # the bytes' digest, in the algorithm asked for
    done = ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[sha512(data)])
    assert done["layerDigest"] == sha512(data)
    checked = ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=[sha512(data), digest_of(data)])
    assert checked["layers"] == [
        {"layerDigest": sha512(data), "layerAvailability": "AVAILABLE", "layerSize": len(data)}
    ]
    assert [f["failureCode"] for f in checked["failures"]] == ["MissingLayerDigest"]  # not as sha256: never pushed so


def test_layer_digests_pier_does_not_support(ecr: Any, repo: str) -> None:
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    upload(ecr, repo, b"payload", 0, upload_id)
    # What the model's pattern refuses is refused in ECR's words, before pier looks at the digest.
    with pytest.raises(ecr.exceptions.InvalidParameterException) as pattern:
        ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=["sha512:xyz"])
    assert "Member must satisfy regular expression pattern" in str(pattern.value)
    # What the pattern lets through but no supported algorithm is: pier names the ones it supports.
    for bad in ("md5:" + "0" * 32, "sha512:" + "ab" * 10, "sha256:" + "AB" * 32):
        with pytest.raises(ecr.exceptions.InvalidParameterException) as info:
            ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[bad])
        message = str(info.value)
        assert "Invalid parameter at 'layerDigests'" in message and "sha256" in message and "sha512" in message
    answer = ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=["md5:" + "0" * 32])
    failure = answer["failures"][0]
    assert failure["failureCode"] == "InvalidLayerDigest" and "sha512" in failure["failureReason"]
    # The upload is still there: completing with a supported digest works.
    done = ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[sha512(b"payload")])
    assert done["layerDigest"] == sha512(b"payload")


def test_put_image_by_sha512_digest(ecr: Any, repo: str) -> None:
    """imageDigest in sha512: the image is stored, described and deleted under it."""
    from tests.images import config, image_manifest

    config_blob = config()
    push_blob(ecr, repo, config_blob.data)
    manifest = image_manifest(config_blob, [])
    with pytest.raises(ecr.exceptions.ImageDigestDoesNotMatchException):
        ecr.put_image(repositoryName=repo, imageManifest=manifest.decode(), imageDigest=sha512(b"other"))
    with pytest.raises(ecr.exceptions.InvalidParameterException) as bad:
        ecr.put_image(repositoryName=repo, imageManifest=manifest.decode(), imageDigest="sha1:" + "0" * 40)
    assert "imageDigest" in str(bad.value) and "sha512" in str(bad.value)
    put = ecr.put_image(
        repositoryName=repo, imageManifest=manifest.decode(), imageDigest=sha512(manifest), imageTag="v512"
    )
    assert put["image"]["imageId"] == {"imageDigest": sha512(manifest), "imageTag": "v512"}
    described = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "v512"}])["imageDetails"]
    assert [d["imageDigest"] for d in described] == [sha512(manifest)]
    deleted = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": sha512(manifest)}])
    assert deleted["imageIds"] == [{"imageDigest": sha512(manifest), "imageTag": "v512"}]


def part_body(repo: str, upload_id: str, first: int, length: int, text: str) -> bytes:
    """An UploadLayerPart body with `text` as the base64 member, as written (escapes and all)."""
    fields = {"repositoryName": repo, "uploadId": upload_id, "partFirstByte": first, "partLastByte": first + length - 1}
    return (json.dumps(fields)[:-1] + f', "layerPartBlob": "{text}"}}').encode()


def test_a_part_whose_base64_is_written_with_escapes_is_read_the_same(pier: Any, ecr: Any, repo: str) -> None:
    """JSON may escape '/' (as "\\/"): such a member is parsed whole, not decoded from the body as it lies."""
    data = os.urandom(3 * MIB)
    text = base64.b64encode(data).decode()
    assert "/" in text
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    body = part_body(repo, upload_id, 0, len(data), text.replace("/", "\\/"))
    answer = call(pier.url, OWNER, "UploadLayerPart", body=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["lastByteReceived"] == len(data) - 1
    done = ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[digest_of(data)])
    assert done["layerDigest"] == digest_of(data)


def test_a_part_that_stops_being_base64_past_its_first_mib_keeps_nothing(pier: Any, ecr: Any, repo: str) -> None:
    """The member is decoded a slice at a time as it is written: a slice that is not base64 is the same
    InvalidParameterException as before, and nothing of the part is kept (the next part starts at 0)."""
    data = os.urandom(3 * MIB)
    text = base64.b64encode(data).decode()
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    for broken in (text[: 2 * MIB] + "!" + text[2 * MIB + 1 :], text[: 2 * MIB] + "==" + text[2 * MIB + 2 :]):
        answer = call(pier.url, OWNER, "UploadLayerPart", body=part_body(repo, upload_id, 0, len(data), broken))
        assert answer.status_code == 400, answer.text
        assert answer.headers["x-amzn-errortype"].startswith("InvalidParameterException")
        assert "'layerPartBlob'" in answer.json()["message"] and "base64" in answer.json()["message"]
    assert upload(ecr, repo, data, 0, upload_id)["lastByteReceived"] == len(data) - 1
    done = ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[digest_of(data)])
    assert done["layerDigest"] == digest_of(data)


def test_a_part_with_other_errors_reports_them_with_its_length(pier: Any, repo: str) -> None:
    text = base64.b64encode(b"x" * (20 * MIB + 1)).decode()
    answer = call(pier.url, OWNER, "UploadLayerPart", body=part_body(repo, "not-an-upload", 0, 20 * MIB + 1, text))
    assert answer.status_code == 400
    message = answer.json()["message"]
    assert message.startswith("2 validation errors detected") and "'uploadId'" in message
    assert "'layerPartBlob'" in message and "less than or equal to 20971520" in message


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_20_mib_part_costs_its_body_not_copies_of_it(make_plain_server: Any) -> None:
    """A 20 MiB part is ~27 MiB of JSON. Decoded the plain way (text, then the parsed string, then the
    bytes), the server's peak memory rose by 64-83 MiB; decoded from the body as it lies, by ~36 (the body
    and what the heap keeps). Memory, not a timing: the kernel's high-water mark of the serving process."""
    server = make_plain_server("workers = 1\n")
    ecr = client(server)
    ecr.create_repository(repositoryName="parts")
    data = os.urandom(20 * MIB)
    idle = peak_rss_mib(server.process.pid)
    upload_id = ecr.initiate_layer_upload(repositoryName="parts")["uploadId"]
    for first in range(0, 3 * len(data), len(data)):
        upload(ecr, "parts", data, first, upload_id)
    body = len(base64.b64encode(data)) / MIB
    grown = peak_rss_mib(server.process.pid) - idle
    assert grown < body + 20, f"peak memory rose {grown:.0f} MiB for a part of {body:.0f} MiB of JSON"
