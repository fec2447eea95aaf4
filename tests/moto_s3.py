"""A real S3 endpoint for the image store's tests: moto's server on a free loopback port, spoken to over HTTP by
real boto3 (no mocks of boto3, no AWS network; reference D6). Each test gets a fresh bucket.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

__all__ = ["AWS_ENV", "S3Endpoint", "moto_endpoint", "new_bucket"]

# Dummy credentials for moto, and nothing read from this machine's ~/.aws or an instance metadata service.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}


class S3Endpoint:
    def __init__(self, url: str) -> None:
        self.url = url

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@contextmanager
def moto_endpoint() -> Iterator[S3Endpoint]:
    """moto's S3 server in a thread of this process, on 127.0.0.1 and a port the OS picks."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        pytest.skip("moto[server] is not installed (pip install -e '.[test]')")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.WARNING)  # one INFO line per request would bury a failing test's own output
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Endpoint(f"http://{host}:{port}")
    finally:
        server.stop()
        werkzeug.setLevel(level)


def new_bucket(endpoint: S3Endpoint) -> str:
    name = f"imageforge-{uuid.uuid4().hex[:12]}"
    client = endpoint.client()
    client.create_bucket(Bucket=name)
    client.close()
    return name
