"""The Verify build's part: the page goes to the stage's bucket and the approval's variables to the shell."""

from __future__ import annotations

import subprocess
from pathlib import Path

from gitops.config import load_stages
from gitops.local.embedded import start_server, stop_server
from gitops.report.publish import page_location, upload_page, write_exports
from gitops.target import Target

ROOT = Path(__file__).resolve().parents[2]
DEV = load_stages(ROOT)["dev"]


def test_the_page_is_uploaded_encrypted_where_the_approval_link_points(tmp_path):
    server = start_server(tmp_path / "local")
    try:
        target = Target("local", tmp_path / "local", server.endpoint_url)
        s3 = target.client(DEV, "s3")
        s3.create_bucket(Bucket=DEV.artifact_bucket_name, CreateBucketConfiguration={"LocationConstraint": DEV.region})
        release_id = "ab" * 32
        where = upload_page(target, DEV, release_id, "<!DOCTYPE html><title>Release abababababab</title>")
        got = s3.get_object(Bucket=DEV.artifact_bucket_name, Key=f"reports/{release_id}/release.html")
        assert got["Body"].read().startswith(b"<!DOCTYPE html>")
        assert got["ContentType"] == "text/html; charset=utf-8" and got["ServerSideEncryption"] == "aws:kms"
        assert where == page_location(DEV, release_id)
        assert where.s3_uri == f"s3://{DEV.artifact_bucket_name}/reports/{release_id}/release.html"
        assert where.console_url.startswith(f"https://{DEV.region}.console.aws.amazon.com/s3/object/")
        assert f"prefix=reports/{release_id}/release.html" in where.console_url
    finally:
        stop_server(tmp_path / "local")


def test_the_exports_file_gives_the_shell_the_release_id_and_the_link(tmp_path):
    where = page_location(DEV, "cd" * 32)
    exports = tmp_path / "release-page.env"
    write_exports(exports, "cd" * 32, where)
    shown = subprocess.run(
        ["bash", "-c", f'. {exports} && printf "%s\\n%s\\n" "$RELEASE_ID" "$RELEASE_PAGE_URL"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert shown == ["cd" * 32, where.console_url]  # the & and ? of the URL survive the shell
