"""Servers with their own settings: API keys, short-lived image URLs, the sweeper, and a restart."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import openai
import pytest

from tests.api.images import decode_b64
from tests.api.server import serve


def test_api_keys(tmp_path: Path) -> None:
    with serve(tmp_path / "data", "--api-key", "sk-one", "--api-key", "sk-two", api_key="sk-two") as server:
        with pytest.raises(openai.AuthenticationError) as info:
            server.client("sk-wrong-000000").models.list()
        assert info.value.code == "invalid_api_key" and info.value.response.headers["x-should-retry"] == "false"
        r = httpx.post(f"{server.v1}/images/generations", json={"prompt": "a cat"})
        assert r.status_code == 401 and r.json()["error"]["code"] is None and "x-request-id" in r.headers
        assert "didn't provide an API key" in r.json()["error"]["message"]
        for key in ("sk-one", "sk-two"):
            assert len(server.client(key).models.list().data) > 0
        # url images are fetched without a key, as OpenAI's are.
        img = server.client().images.generate(model="dall-e-2", prompt="a cat", size="256x256")
        assert img.data is not None and img.data[0].url is not None
        assert httpx.get(img.data[0].url).status_code == 200
        assert httpx.get(f"{server.base_url}/health").status_code == 200


def test_env_keys(tmp_path: Path) -> None:
    with serve(tmp_path / "data", env={"IMAGEFORGE_API_KEYS": "sk-env"}, api_key="sk-env") as server:
        assert server.client().models.retrieve("dall-e-3").id == "dall-e-3"
        with pytest.raises(openai.AuthenticationError):
            server.client("sk-other").models.list()


def test_non_loopback_bind_needs_keys_or_an_explicit_flag(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "imageforge", "serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "without API keys" in r.stderr


def test_urls_expire_refuse_tampering_and_are_swept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serve(data, "--url-ttl", "3", env={"IMAGEFORGE_SWEEP_INTERVAL_SECONDS": "0.5"}) as server:
        r = server.client().images.generate(model="dall-e-2", prompt="a red heart", size="256x256")
        assert r.data is not None and r.data[0].url is not None
        url = r.data[0].url
        assert url.startswith(server.v1 + "/images/files/")
        got = httpx.get(url)
        assert got.status_code == 200 and got.headers["content-type"] == "image/png" and got.content[:4] == b"\x89PNG"
        parts = urlsplit(url)
        name, sig = parts.path.rsplit("/", 1)[1], parts.query.removeprefix("sig=")
        later = str(int(name.split("-")[0]) + 3600)
        tampered = [
            url.replace(sig, sig[:-1] + ("0" if sig[-1] != "0" else "1")),  # another signature
            url.replace(f"/{name.split('-')[0]}-", f"/{later}-"),  # a later expiry, same signature
            url.split("?")[0],  # no signature
        ]
        for bad in tampered:
            resp = httpx.get(bad)
            assert resp.status_code == 404 and resp.json()["error"]["type"] == "invalid_request_error", bad
        stored = data / "images" / name
        assert stored.exists()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (httpx.get(url).status_code == 200 or stored.exists()):
            time.sleep(0.5)
        assert httpx.get(url).status_code == 404, "expired"
        assert not stored.exists(), "the sweeper deleted the expired file"


def test_urls_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serve(data) as first:
        r = first.client().images.generate(
            model="dall-e-3", prompt="a blue heart", response_format="url", size="1024x1024"
        )
        assert r.data is not None and r.data[0].url is not None
        path_and_query = r.data[0].url.split("/v1/", 1)[1]
        before = httpx.get(r.data[0].url).content
    with serve(data) as second:  # a new process, a new port, the same data directory
        after = httpx.get(f"{second.v1}/{path_and_query}")
        assert after.status_code == 200 and after.content == before
        b64 = second.client().images.generate(model="dall-e-2", prompt="x", size="256x256", response_format="b64_json")
        assert decode_b64(b64.data[0].b64_json)[0].size == (256, 256)  # type: ignore[index]


def test_public_base_url_is_used_for_image_urls(tmp_path: Path) -> None:
    with serve(tmp_path / "data", "--public-base-url", "https://images.example.test/base/") as server:
        r = server.client().images.generate(model="dall-e-2", prompt="x", size="256x256")
        assert r.data is not None and r.data[0].url is not None
        assert r.data[0].url.startswith("https://images.example.test/base/v1/images/files/")
