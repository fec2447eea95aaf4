"""Two real servers sharing an S3 image store (moto over HTTP) and a signing key: a URL minted by one is served by
the other, as two replicas behind one load balancer would, and both refuse it once it has expired."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.api.server import serve
from tests.moto_s3 import AWS_ENV, S3Endpoint, moto_endpoint, new_bucket

SIGNING_KEY = "5e" * 32


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Endpoint]:
    with moto_endpoint() as endpoint:
        yield endpoint


def test_a_url_minted_by_one_server_is_served_by_another(s3: S3Endpoint, tmp_path: Path) -> None:
    bucket = new_bucket(s3)
    env = {
        **AWS_ENV,
        "IMAGEFORGE_IMAGE_STORE": "s3",
        "IMAGEFORGE_S3_BUCKET": bucket,
        "IMAGEFORGE_S3_PREFIX": "replicas",
        "IMAGEFORGE_S3_ENDPOINT_URL": s3.url,
        "IMAGEFORGE_URL_SIGNING_KEY": SIGNING_KEY,
    }
    # A TTL of a few seconds: long enough to fetch through both servers on a loaded 2-core machine (the expiry is
    # stamped when the image is stored, rounded down to the second), short enough to wait out.
    with serve(tmp_path / "a", "--url-ttl", "5", env=env) as a, serve(tmp_path / "b", env=env) as b:
        r = a.client().images.generate(model="dall-e-3", prompt="a blue heart")
        assert r.data is not None and r.data[0].url is not None
        url = r.data[0].url
        first = httpx.get(url, timeout=30)
        assert first.status_code == 200 and first.headers["content-type"] == "image/png"
        assert first.content[:8] == b"\x89PNG\r\n\x1a\n"
        other = httpx.get(url.replace(a.base_url, b.base_url), timeout=30)
        assert other.status_code == 200 and other.content == first.content, "served by the other replica"
        name = urlsplit(url).path.rsplit("/", 1)[1]
        client = s3.client()
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
        client.close()
        assert len(keys) == 1 and keys[0].startswith("replicas/exp/") and keys[0].endswith("/" + name)
        assert not list((tmp_path / "a").rglob("*.png")) and not list((tmp_path / "b").rglob("*.png"))

        expires_at = int(name.split("-")[0])
        while time.time() < expires_at + 0.2:  # both servers share this machine's clock
            time.sleep(0.2)
        for server in (a, b):
            gone = httpx.get(url.replace(a.base_url, server.base_url), timeout=30)
            assert gone.status_code == 404
            error = gone.json()["error"]
            assert error["type"] == "invalid_request_error" and error["code"] == "image_not_found"
            assert set(error) == {"message", "type", "param", "code"}


def test_a_server_with_an_unusable_bucket_does_not_start(s3: S3Endpoint, tmp_path: Path) -> None:
    env = {
        **AWS_ENV,
        "PATH": "/usr/bin:/bin",
        "HF_HUB_OFFLINE": "1",
        "IMAGEFORGE_IMAGE_STORE": "s3",
        "IMAGEFORGE_S3_BUCKET": "no-such-bucket",
        "IMAGEFORGE_S3_ENDPOINT_URL": s3.url,
    }
    cmd = [sys.executable, "-m", "imageforge", "serve", "--port", "0", "--data-dir", str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and "s3_bucket 'no-such-bucket'" in r.stderr, r.stderr
