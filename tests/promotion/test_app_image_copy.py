"""Promote copies the app image into the next stage's repository (Stubber: ECR's registry API), every byte checked."""

from __future__ import annotations

import hashlib
import json

import boto3
import pytest
from botocore.stub import ANY, Stubber

from gitops.promotion.app_image import ImageCopyFailed, copy_image


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


CONFIG = b'{"architecture":"amd64"}'
LAYER = b"layer bytes" * 100
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": _sha(CONFIG),
            "size": len(CONFIG),
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": _sha(LAYER), "size": len(LAYER)}
        ],
    }
).encode()
DIGEST = _sha(MANIFEST)
MEDIA = "application/vnd.oci.image.manifest.v1+json"
SRC, DST = "mlops-dev-app", "mlops-prod-app"
URL = "https://prod-eu-west-1-starport-layer-bucket.s3.eu-west-1.amazonaws.com/layer"


def _ecr():
    return boto3.client("ecr", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")


def _expect_get(stub: Stubber, manifest: bytes = MANIFEST) -> None:
    stub.add_response(
        "batch_get_image",
        {"images": [{"imageManifest": manifest.decode(), "imageManifestMediaType": MEDIA}]},
        {"repositoryName": SRC, "imageIds": [{"imageDigest": DIGEST}], "acceptedMediaTypes": ANY},
    )


def test_missing_blobs_are_copied_checked_and_the_manifest_put_with_its_digest():
    source, dest = _ecr(), _ecr()
    downloads: list[str] = []
    with Stubber(source) as src, Stubber(dest) as dst:
        _expect_get(src)
        dst.add_response(
            "batch_check_layer_availability",
            {"layers": [{"layerDigest": _sha(CONFIG), "layerAvailability": "AVAILABLE"}]},
            {"repositoryName": DST, "layerDigests": [_sha(CONFIG), _sha(LAYER)]},
        )
        src.add_response(
            "get_download_url_for_layer",
            {"downloadUrl": URL, "layerDigest": _sha(LAYER)},
            {"repositoryName": SRC, "layerDigest": _sha(LAYER)},
        )
        dst.add_response("initiate_layer_upload", {"uploadId": "u1", "partSize": 5242880}, {"repositoryName": DST})
        dst.add_response(
            "upload_layer_part",
            {"uploadId": "u1", "lastByteReceived": len(LAYER) - 1},
            {
                "repositoryName": DST,
                "uploadId": "u1",
                "partFirstByte": 0,
                "partLastByte": len(LAYER) - 1,
                "layerPartBlob": LAYER,
            },
        )
        dst.add_response(
            "complete_layer_upload",
            {"uploadId": "u1", "layerDigest": _sha(LAYER)},
            {"repositoryName": DST, "uploadId": "u1", "layerDigests": [_sha(LAYER)]},
        )
        dst.add_response(
            "put_image",
            {"image": {"imageId": {"imageDigest": DIGEST}}},
            {
                "repositoryName": DST,
                "imageManifest": MANIFEST.decode(),
                "imageManifestMediaType": MEDIA,
                "imageDigest": DIGEST,
                "imageTag": "sha256-0123",
            },
        )
        written = copy_image(
            source, SRC, dest, DST, DIGEST, tag="sha256-0123", download=lambda u: downloads.append(u) or LAYER
        )
        src.assert_no_pending_responses()
        dst.assert_no_pending_responses()
    assert written == 1 and downloads == [URL]


def test_a_manifest_that_does_not_hash_to_the_pinned_digest_is_refused_before_any_write():
    source, dest = _ecr(), _ecr()
    with Stubber(source) as src, Stubber(dest):
        _expect_get(src, MANIFEST.replace(b"amd64", b"arm64") + b" ")
        with pytest.raises(ImageCopyFailed, match="the registry returned a manifest of sha256:"):
            copy_image(source, SRC, dest, DST, DIGEST, tag="t")


def test_a_blob_that_downloads_as_other_bytes_is_refused():
    source, dest = _ecr(), _ecr()
    with Stubber(source) as src, Stubber(dest) as dst:
        _expect_get(src)
        dst.add_response(
            "batch_check_layer_availability",
            {"layers": []},
            {"repositoryName": DST, "layerDigests": [_sha(CONFIG), _sha(LAYER)]},
        )
        src.add_response(
            "get_download_url_for_layer", {"downloadUrl": URL}, {"repositoryName": SRC, "layerDigest": _sha(CONFIG)}
        )
        with pytest.raises(ImageCopyFailed, match=f"blob {_sha(CONFIG)} downloaded as"):
            copy_image(source, SRC, dest, DST, DIGEST, tag="t", download=lambda _u: b"tampered")
