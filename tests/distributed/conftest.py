"""A local two-node Ray cluster running ImageForge's Serve application, for the Ray suite (marker ``ray``).

``ray.cluster_utils.Cluster`` starts real Ray processes on this machine: a head node (2 CPUs and a custom ``head``
resource, where Serve's one proxy runs) and a worker node with 2 CPUs and 2 *logical* GPUs, so placement by
``num_gpus`` and ``CUDA_VISIBLE_DEVICES`` are real without a GPU. The application serves:

- ``gpt-image-1`` and ``dall-e-2`` (url images): the fake engine (fast steps), one deployment of two replicas of one
  logical GPU each;
- ``slow``: the fake engine at 0.3 s a step, one replica, for streaming, disconnects and a killed replica;

behind two ingress replicas that share a filesystem image store and a URL signing key.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from tests.services import free_port, unavailable

SIGNING_KEY = "8f3a" * 16  # hex, 32 bytes: every ingress replica signs and checks with it
READY_TIMEOUT_S = 180.0

CATALOGUE = """
include_defaults = false

[models."gpt-image-1"]
engine = "fake"
profile = "gpt-image-1"
options = { step_delay = 0.05 }
[models."gpt-image-1".replicas]
num_replicas = 2
num_gpus = 1
num_cpus = 0.25

[models."dall-e-2"]  # the same engine as gpt-image-1: its deployment serves both ids
engine = "fake"
profile = "dall-e-2"
options = { step_delay = 0.05 }

[models.slow]
engine = "fake"
profile = "gpt-image-1"
options = { step_delay = 0.3, quality_steps = { low = 2, medium = 6, high = 10 } }
[models.slow.replicas]
num_gpus = 0
num_cpus = 0.25
"""


@dataclass
class RayServer:
    base_url: str
    session_dirs: list[Path]  # every node's (they may share one)

    @property
    def v1(self) -> str:
        return f"{self.base_url}/v1"

    def client(self, **kw: object) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.v1, api_key="sk-anything", **{"max_retries": 0, "timeout": 120, **kw})

    def health(self) -> dict[str, object]:
        r = httpx.get(f"{self.base_url}/health", timeout=10)
        r.raise_for_status()
        return dict(r.json())

    def replicas(self, deployment: str) -> list[dict[str, object]]:
        found = self.health().get("replicas", [])
        assert isinstance(found, list)
        return [r for r in found if r["deployment"] == deployment]

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples over the whole cluster's /metrics, for the label sets carrying ``labels``."""
        return _sum(httpx.get(f"{self.base_url}/metrics", timeout=10).text, name, labels)

    def engine_metric(self, deployment: str, name: str, **labels: str) -> float:
        """A metric of an engine deployment read from a replica now, through a Serve handle (``/metrics`` serves
        the replicas' last reports, up to a couple of seconds old). With one replica, that replica's."""
        from ray import serve

        from imageforge.distributed.app import APP_NAME

        info = serve.get_deployment_handle(deployment, app_name=APP_NAME).info.remote().result(timeout_s=30)
        return _sum(info.metrics, name, labels)

    def ingress_of(self, request_id: str) -> str:
        """Which ingress replica answered a request, from Serve's own per-replica access logs (written a moment
        after the response)."""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for d in self.session_dirs:
                for log in (d / "logs" / "serve").glob("replica_imageforge_ingress_*.log"):
                    if request_id in log.read_text(errors="replace"):
                        return log.name.removeprefix("replica_imageforge_ingress_").removesuffix(".log")
            time.sleep(0.2)
        raise AssertionError(f"no ingress replica logged {request_id}")


def _sum(page: str, name: str, labels: dict[str, str]) -> float:
    total = 0.0
    for line in page.splitlines():
        if line.startswith(name + "{"):
            head, value = line.rsplit(" ", 1)
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
    return total


def poll_ready(base_url: str, timeout_s: float = READY_TIMEOUT_S, check: Callable[[], None] | None = None) -> None:
    """Until ``/ready`` answers 200; ``check`` runs between tries (to fail at once when a server died)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if check is not None:
            check()
        try:
            if httpx.get(f"{base_url}/ready", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{base_url} did not become ready"
        time.sleep(0.5)


def wait_ready(server: RayServer, timeout_s: float = READY_TIMEOUT_S) -> None:
    poll_ready(server.base_url, timeout_s)


@pytest.fixture(scope="package")
def ray_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayServer]:
    try:
        import ray
        from ray import serve
        from ray.cluster_utils import Cluster
    except ImportError:
        unavailable("ray[serve] is not installed (pip install -e '.[test]')")
    from imageforge.config import Settings
    from imageforge.distributed.app import APP_NAME, build_application

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # The one proxy would otherwise keep every request on the ingress replica of its own node; on a real cluster
    # a load balancer spreads clients over the proxies of every node, which is what this stands for.
    os.environ["RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING"] = "0"
    root = tmp_path_factory.mktemp("ray")
    (root / "catalogue.toml").write_text(CATALOGUE)
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "resources": {"head": 1}, "include_dashboard": False},
    )
    try:
        cluster.add_node(num_cpus=2, num_gpus=2)
        ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port}, proxy_location="HeadOnly")
        settings = Settings(
            data_dir=root / "data",
            config=root / "catalogue.toml",
            image_store_path=root / "shared-images",  # "the shared filesystem" both ingress replicas mount
            url_signing_key=SIGNING_KEY,
            queue_limit=3,
            max_batch=2,
            max_queue_seconds=30,  # the count bound (queue_limit) is what the flood meets
            ray_ingress_replicas=2,
            ray_ingress_cpus=0.25,
        )
        serve.run(build_application(settings, gpus_available=True), name=APP_NAME, route_prefix="/")
        dirs = {Path(node.get_session_dir_path()) for node in cluster.list_all_nodes()}
        server = RayServer(f"http://127.0.0.1:{port}", sorted(dirs))
        wait_ready(server)
        yield server
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            cluster.shutdown()
