"""The Ray backend's pure parts, without a cluster: deployment options from the catalogue, the replica registry,
the merged metrics page, errors that cross processes, Serve's exceptions as OpenAI errors, request-id adoption."""

from __future__ import annotations

import asyncio
import pickle

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import imageforge.errors as errors
from imageforge.api.middleware import RequestIdMiddleware
from imageforge.config import Catalogue, ModelEntry, ReplicaOptions, Settings, default_catalogue
from imageforge.distributed.app import deployment_options, engine_groups
from imageforge.distributed.registry import STALE_AFTER_S, ReplicaInfo, ReplicaRegistry, merge_metrics
from imageforge.metrics import Metrics


def test_ids_sharing_an_engine_share_one_deployment_named_for_its_own_id() -> None:
    groups = engine_groups(default_catalogue())
    assert list(groups) == ["engine-imageforge-emoji"]
    assert set(groups["engine-imageforge-emoji"]) == set(default_catalogue().models)
    cat = Catalogue({"b": ModelEntry(engine="fake", profile="gpt-image-1", options={"step_delay": 0.1}),
                     "a/x y": ModelEntry(engine="fake", profile="gpt-image-1")})  # fmt: skip
    assert list(engine_groups(cat)) == ["engine-b", "engine-a-x-y"]


def test_deployment_options_come_from_the_catalogue_and_the_settings() -> None:
    s = Settings(queue_limit=10, max_batch=4, drain_timeout_seconds=90)
    plain = {"m": ModelEntry(engine="fake")}
    opts = deployment_options("engine-m", plain, s, gpus_available=True)
    assert opts["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 1.0}
    assert opts["num_replicas"] == 1 and opts["max_ongoing_requests"] == 14 and opts["max_queued_requests"] == 10
    assert opts["graceful_shutdown_timeout_s"] == 90
    assert deployment_options("engine-m", plain, s, gpus_available=False)["ray_actor_options"]["num_gpus"] == 0.0
    auto = {"m": ModelEntry(engine="fake", replicas=ReplicaOptions(max_replicas=6, min_replicas=2, num_gpus=0.5,
                                                                   accelerator_type="H100"))}  # fmt: skip
    opts = deployment_options("engine-m", auto, s, gpus_available=True)
    assert "num_replicas" not in opts
    assert opts["autoscaling_config"] == {"min_replicas": 2, "max_replicas": 6, "target_ongoing_requests": 4,
                                          "downscale_delay_s": 600}  # fmt: skip
    assert opts["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 0.5, "accelerator_type": "H100"}


def test_ids_of_one_engine_must_not_disagree_on_placement() -> None:
    entries = {"a": ModelEntry(engine="fake", replicas=ReplicaOptions(num_replicas=2)),
               "b": ModelEntry(engine="fake", replicas=ReplicaOptions(num_replicas=3))}  # fmt: skip
    with pytest.raises(errors.ConfigurationError, match="share one engine"):
        deployment_options("engine-a", entries, Settings(), gpus_available=False)
    one = {"a": entries["a"], "b": ModelEntry(engine="fake")}  # set on one, default on the other: fine
    assert deployment_options("engine-a", one, Settings(), gpus_available=False)["num_replicas"] == 2


def test_the_catalogue_file_rejects_unknown_replica_options() -> None:
    with pytest.raises(ValueError, match="num_gpu"):
        ModelEntry.model_validate({"engine": "fake", "replicas": {"num_gpu": 1}})


def _info(replica: str, kind: str = "engine", metrics: str = "") -> ReplicaInfo:
    return ReplicaInfo(replica, f"engine-{kind}", f"SERVE_REPLICA::app#x#{replica}", "n" * 40, kind, 1,
                       metrics=metrics)  # fmt: skip


def test_the_registry_forgets_a_replica_that_stopped_reporting() -> None:
    now = [100.0]
    reg = ReplicaRegistry(clock=lambda: now[0])
    reg.report(_info("a"))
    reg.report(_info("b"))
    now[0] += STALE_AFTER_S - 1
    reg.report(_info("b").with_state(state="ready"))
    assert [(i.replica, i.state) for i in reg.snapshot()] == [("a", "loading"), ("b", "ready")]
    now[0] += 2
    assert [i.replica for i in reg.snapshot()] == ["b"]


def test_merged_metrics_label_every_sample_with_its_replica() -> None:
    pages = []
    for n in (1, 3):
        m = Metrics()
        m.images.labels("gpt-image-1", "ok").inc(n)
        pages.append(m.render().decode())
    page = merge_metrics([_info("r1", metrics=pages[0]), _info("r2", metrics=pages[1])]).decode()
    [images] = [f for f in text_string_to_metric_families(page) if f.name == "imageforge_images"]
    totals = {s.labels["replica"]: s.value for s in images.samples if s.name == "imageforge_images_total"}
    assert totals == {"r1": 1.0, "r2": 3.0}
    assert all(s.labels["deployment"] == "engine-engine" and s.labels["node"] == "n" * 12 for s in images.samples)
    assert page.count("# TYPE imageforge_images_total counter") == 1, "one family, not one per replica"


@pytest.mark.parametrize("cls", [c for c in vars(errors).values()
                                 if isinstance(c, type) and issubclass(c, errors.ImageForgeError)])  # fmt: skip
def test_every_error_crosses_a_process_boundary_whole(cls: type[errors.ImageForgeError]) -> None:
    if issubclass(cls, errors.RateLimitError):
        err: errors.ImageForgeError = cls("busy", retry_after=2.5, limits=(errors.LimitState("requests", 3, 0, 2.5),))
    elif issubclass(cls, errors.ModerationBlockedError):
        err = cls("blocked", stage="output", categories=["violence"])  # type: ignore[call-arg]
    else:
        err = cls("it failed", param="size", code="some_code")
    err.extra["moderation_details"] = {"x": 1}
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and str(back) == str(err)
    assert vars(back) == vars(err) and back.code == err.code and back.status == err.status


def test_serve_exceptions_become_openai_errors() -> None:
    pytest.importorskip("ray")
    import ray.exceptions as rex
    from ray.serve.exceptions import BackPressureError

    from imageforge.distributed.gateway import translate

    full = translate(BackPressureError(num_queued_requests=3, max_queued_requests=3), "m")
    assert isinstance(full, errors.QueueFullError) and full.status == 429 and full.retry_after > 0
    lost = translate(rex.ActorDiedError(), "m")
    assert isinstance(lost, errors.ServiceUnavailableError) and lost.code == "engine_replica_lost"
    own = errors.InvalidRequestError("bad size", param="size")
    assert translate(own, "m") is own
    other = translate(RuntimeError("boom"), "m")
    assert isinstance(other, errors.EngineError) and "boom" in other.message


def _echo_app(adopt: object) -> object:
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.scope["state"]["request_id"])

    return RequestIdMiddleware(Starlette(routes=[Route("/", echo)]), adopt=adopt)  # type: ignore[arg-type]


def test_request_ids_are_minted_alone_and_adopted_behind_a_proxy() -> None:
    async def get(app: object) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.get("/")

    alone = asyncio.run(get(_echo_app(None)))
    assert alone.text.startswith("req_") and alone.headers.get_list("x-request-id") == [alone.text]
    proxied = asyncio.run(get(_echo_app(lambda scope: "uuid-from-proxy")))
    assert proxied.text == "uuid-from-proxy" and "x-request-id" not in proxied.headers  # the proxy writes it
