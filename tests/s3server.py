"""A local S3 (a real moto server over HTTP on 127.0.0.1) for object-store tests.

Import the fixtures into a test module: ``from s3server import s3_server, s3_uri``.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

BUCKET = "nbregistry-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, str]]:
    """A moto S3 server on a free port with one bucket; yields the storage options."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(["moto_server", "-p", str(port), "-H", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/", timeout=1):
                    break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"moto_server exited with code {server.returncode}")
                if time.monotonic() > deadline:
                    pytest.fail("moto_server did not answer within 30 s")
                time.sleep(0.1)
        options = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                   "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
                   "AWS_ALLOW_HTTP": "true"}
        s3_client(options).create_bucket(Bucket=BUCKET)
        yield options
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def s3_client(options: dict[str, str]) -> Any:
    return boto3.client("s3", endpoint_url=options["AWS_ENDPOINT_URL"],
                        aws_access_key_id=options["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=options["AWS_SECRET_ACCESS_KEY"],
                        region_name=options["AWS_REGION"])


@pytest.fixture
def s3_uri(s3_server: dict[str, str]) -> str:
    """A fresh registry prefix in the session bucket."""
    return f"s3://{BUCKET}/reg-{uuid.uuid4().hex[:12]}"
