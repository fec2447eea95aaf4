"""ImageForge on Ray Serve, through the official openai SDK: a local two-node cluster (conftest.py) with two ingress
replicas, engine replicas on logical GPUs, and a shared image store."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from tests.distributed.conftest import RayServer

pytestmark = [pytest.mark.ray, pytest.mark.slow]

GEN = "/images/generations"


def _png(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG"
    img.load()
    return img


def test_b64_images_through_the_sdk(ray_server: RayServer) -> None:
    with ray_server.client() as c:
        raw = c.images.with_raw_response.generate(model="gpt-image-1", prompt="a red apple", quality="low", n=2)
    r = raw.parse()
    assert len(r.data) == 2 and r.usage is not None
    sizes = {_png(base64.b64decode(d.b64_json or "")).size for d in r.data}
    assert sizes == {(1024, 1024)}
    assert len(raw.headers.get_list("x-request-id")) == 1, "the app adopts the proxy's id and adds none of its own"


def test_a_client_request_id_is_the_request_id_everywhere(ray_server: RayServer) -> None:
    r = httpx.post(f"{ray_server.v1}{GEN}", json={"model": "gpt-image-1", "prompt": "x", "quality": "low"},
                   headers={"x-request-id": "req-from-client-1"}, timeout=60)  # fmt: skip
    assert r.status_code == 200
    assert r.headers.get_list("x-request-id") == ["req-from-client-1"]


def test_url_minted_by_one_ingress_replica_is_served_by_another(ray_server: RayServer) -> None:
    """Both ingress replicas share the image store and the signing key: any of them serves any URL."""
    minted: list[tuple[str, str]] = []
    with ray_server.client() as c:
        for i in range(4):
            raw = c.images.with_raw_response.generate(model="dall-e-2", prompt=f"a cube {i}", size="256x256",
                                                      response_format="url")  # fmt: skip
            url = raw.parse().data[0].url
            assert url and url.startswith(ray_server.base_url + "/v1/images/files/")
            minted.append((url, raw.headers["x-request-id"]))
    crossed = 0
    for url, mint_id in minted:
        for _ in range(4):
            got = httpx.get(url, timeout=30)
            assert got.status_code == 200 and got.headers["content-type"] == "image/png"
            assert _png(got.content).size == (256, 256)
            crossed += ray_server.ingress_of(got.headers["x-request-id"]) != ray_server.ingress_of(mint_id)
    assert crossed > 0, "every fetch landed on the replica that minted its URL: the test proved nothing"
    tampered = minted[0][0].replace("sig=", "sig=0")
    bad = httpx.get(tampered, timeout=30)
    assert bad.status_code == 404 and bad.json()["error"]["type"] == "invalid_request_error"


def test_engine_replicas_get_distinct_gpus_on_the_gpu_node(ray_server: RayServer) -> None:
    engines = ray_server.replicas("engine-gpt-image-1")
    assert sorted(str(r["cuda_visible_devices"]) for r in engines) == ["0", "1"]
    assert {str(r["state"]) for r in engines} == {"ready"}
    ingress = ray_server.replicas("ingress")
    assert len(ingress) == 2
    slow = ray_server.replicas("engine-slow")
    assert len(slow) == 1 and slow[0]["cuda_visible_devices"] in (None, ""), "num_gpus = 0: no device"


def test_streamed_partial_images_arrive_while_the_engine_still_runs(ray_server: RayServer) -> None:
    running_at_first_partial: list[float] = []
    events: list[dict[str, Any]] = []
    with ray_server.client() as c:
        stream = c.images.generate(model="slow", prompt="a lighthouse", quality="high", stream=True,
                                   partial_images=2)  # fmt: skip
        for event in stream:
            events.append(event.model_dump())
            if event.type == "image_generation.partial_image" and not running_at_first_partial:
                running_at_first_partial.append(ray_server.engine_metric("engine-slow", "imageforge_running_jobs"))
    assert [e["type"] for e in events] == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    assert [e["partial_image_index"] for e in events[:2]] == [0, 1]
    assert running_at_first_partial == [1.0], "the first partial image came only after the engine had finished"
    assert _png(base64.b64decode(events[-1]["b64_json"])).size == (1024, 1024)


def test_a_disconnect_stops_the_engine_within_one_step(ray_server: RayServer) -> None:
    steps = ray_server.engine_metric("engine-slow", "imageforge_request_steps_total")
    body = {"model": "slow", "prompt": "a long road", "quality": "high", "stream": True, "partial_images": 3}
    # 10 steps; partial images after steps 2 (index 0), 5 and 8: leave after the first.
    with httpx.stream("POST", f"{ray_server.v1}{GEN}", json=body, timeout=60) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                assert json.loads(line[6:])["type"] == "image_generation.partial_image"
                break
    deadline = time.monotonic() + 30
    while ray_server.engine_metric("engine-slow", "imageforge_running_jobs") > 0:
        assert time.monotonic() < deadline, "the abandoned job kept running"
        time.sleep(0.2)
    done = ray_server.engine_metric("engine-slow", "imageforge_request_steps_total") - steps
    # Step 2 made the preview; the cancel reaches the replica during step 3 (a step is 0.3 s), which finishes.
    assert 2 <= done <= 4, f"the engine computed {done} of the job's 10 steps"
    assert ray_server.engine_metric("engine-slow", "imageforge_images_total", outcome="cancelled") >= 1


def test_a_flood_is_answered_with_openai_429_envelopes(ray_server: RayServer) -> None:
    body = {"model": "gpt-image-1", "prompt": "a flood", "quality": "high"}

    def post(_: int) -> httpx.Response:
        return httpx.post(f"{ray_server.v1}{GEN}", json=body, timeout=120)

    with ThreadPoolExecutor(max_workers=40) as pool:
        answers = list(pool.map(post, range(40)))
    codes = [a.status_code for a in answers]
    assert set(codes) == {200, 429}, [(a.status_code, a.text[:300]) for a in answers if a.status_code not in (200, 429)]
    for a in answers:
        if a.status_code == 429:
            err = a.json()["error"]
            assert err["code"] == "rate_limit_exceeded" and err["type"] == "requests", err
            assert float(a.headers["retry-after"]) > 0
            assert a.headers["content-type"].startswith("application/json")
    with ray_server.client() as c:  # and the cluster is fine afterwards
        assert c.images.generate(model="gpt-image-1", prompt="after", quality="low").data


def test_a_replica_killed_mid_load_gives_retriable_errors_then_is_replaced(ray_server: RayServer) -> None:
    import ray

    [victim] = ray_server.replicas("engine-slow")
    results: list[BaseException | str] = []
    streamed: list[dict[str, Any]] = []

    def call() -> None:
        try:
            with ray_server.client() as c:
                c.images.generate(model="slow", prompt="under load", quality="high")
            results.append("ok")
        except BaseException as exc:
            results.append(exc)

    def stream() -> None:
        body = {"model": "slow", "prompt": "streamed under load", "quality": "high", "stream": True}
        with httpx.stream("POST", f"{ray_server.v1}{GEN}", json=body, timeout=120) as r:
            streamed.extend(json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: "))

    started = ray_server.engine_metric("engine-slow", "imageforge_request_steps_total")
    threads = [threading.Thread(target=call), threading.Thread(target=call), threading.Thread(target=stream)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while ray_server.engine_metric("engine-slow", "imageforge_request_steps_total") == started:
        assert time.monotonic() < deadline, "the load never reached the engine"
        time.sleep(0.1)
    ray.kill(ray.get_actor(str(victim["actor"]), namespace="serve"), no_restart=True)
    for t in threads:
        t.join(120)
    assert len(results) == 2 and all(isinstance(r, openai.APIStatusError) for r in results), results
    for r in results:
        assert isinstance(r, openai.APIStatusError)
        assert r.status_code == 503 and r.code == "engine_replica_lost", (r.status_code, r.body)
        assert r.response.headers.get("x-should-retry") != "false"  # the SDKs retry it
    assert [e["type"] for e in streamed] == ["error"], streamed  # the stream had begun: the error is in-band
    assert streamed[0]["error"]["code"] == "engine_replica_lost"
    # Serve starts a new replica; the SDK's own retries carry the next requests through the gap.
    with ray_server.client(max_retries=5) as c:
        assert c.images.generate(model="slow", prompt="after the kill", quality="low").data
    deadline = time.monotonic() + 60  # the dead replica's last report goes stale (registry.STALE_AFTER_S)
    while [(r["replica"] != victim["replica"], r["state"]) for r in ray_server.replicas("engine-slow")] != [
        (True, "ready")
    ]:
        assert time.monotonic() < deadline, f"not replaced: {ray_server.replicas('engine-slow')}"
        time.sleep(0.5)


def test_metrics_carry_every_replica(ray_server: RayServer) -> None:
    served = [r for r in ray_server.replicas("ingress") + ray_server.replicas("engine-gpt-image-1")]
    assert len(served) == 4  # two ingress replicas, two engine replicas: all have served requests by now
    page = httpx.get(f"{ray_server.base_url}/metrics", timeout=10).text
    for r in served:
        assert f'deployment="{r["deployment"]}"' in page
        assert f'replica="{r["replica"]}"' in page, f"no series of {r['deployment']}/{r['replica']}"
    images = ray_server.metric("imageforge_images_total", deployment="engine-gpt-image-1", outcome="ok")
    assert images >= 2, "the engine replicas' own counters are in the page"
