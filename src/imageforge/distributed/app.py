"""The Ray Serve application: an ingress deployment (ImageForge's own app factory) and one engine deployment per
distinct engine of the catalogue, plus the replica registry.

::

    client ── HTTP/SSE ──► Serve proxy ──► ingress replicas (create_app: auth, validation, moderation, encoding,
                                           url images, stored responses, rate limits)
                                             │ streaming DeploymentHandle calls (ServeGateway)
                                             ▼
                                           engine replicas, one deployment per engine (EngineReplica: the
                                           scheduler and one engine each; resources from the catalogue)

Catalogue ids that share an engine (the OpenAI names of the default catalogue all run the embedded model) share
its deployment. ``imageforge serve --backend ray`` calls :func:`serve_forever`; operators who run ``serve run`` or
a Serve config file point ``import_path`` at :func:`from_args` (docs/operations.md, "Running on a Ray cluster").
"""

from __future__ import annotations

import logging
import re
import signal
import threading
from collections.abc import Mapping
from typing import Any

from imageforge.config import EMBEDDED_ID, Catalogue, ModelEntry, ReplicaOptions, Settings, load_catalogue
from imageforge.distributed.registry import ReplicaRegistry
from imageforge.distributed.replica import EngineReplica
from imageforge.errors import ConfigurationError

__all__ = ["APP_NAME", "Ingress", "build_application", "engine_groups", "from_args", "serve_forever"]

log = logging.getLogger(__name__)

APP_NAME = "imageforge"


def engine_groups(catalogue: Catalogue) -> dict[str, dict[str, ModelEntry]]:
    """Deployment name -> the catalogue ids it serves (ids with equal engine keys share one engine)."""
    by_key: dict[str, dict[str, ModelEntry]] = {}
    for model_id, entry in catalogue.models.items():
        by_key.setdefault(entry.engine_key(), {})[model_id] = entry
    groups: dict[str, dict[str, ModelEntry]] = {}
    for entries in by_key.values():
        own = [m for m, e in entries.items() if e.profile == "imageforge"] or list(entries)
        name = EMBEDDED_ID if EMBEDDED_ID in entries else own[0]  # its own id, else the catalogue's first
        groups["engine-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", name)] = entries
    return groups


def _replica_options(name: str, entries: Mapping[str, ModelEntry]) -> ReplicaOptions:
    chosen = {e.replicas for e in entries.values() if e.replicas != ReplicaOptions()}
    if len(chosen) > 1:
        raise ConfigurationError(
            f"the ids {', '.join(sorted(entries))} share one engine ({name}) but set different [replicas] options; "
            "set them on one id, or the same on all"
        )
    return chosen.pop() if chosen else ReplicaOptions()


def deployment_options(
    name: str, entries: Mapping[str, ModelEntry], settings: Settings, gpus_available: bool
) -> dict[str, Any]:
    """Serve's options for one engine deployment, from the catalogue's ``[models.<id>.replicas]``."""
    ro = _replica_options(name, entries)
    num_gpus = ro.num_gpus if ro.num_gpus is not None else (1.0 if gpus_available else 0.0)
    actor: dict[str, Any] = {"num_cpus": ro.num_cpus, "num_gpus": num_gpus}
    if ro.accelerator_type:
        actor["accelerator_type"] = ro.accelerator_type
    batch = settings.max_batch or 8
    opts: dict[str, Any] = {
        "name": name,
        "ray_actor_options": actor,
        # Room for a full queue plus a running batch: the replica's own admission (queue time, count) refuses
        # with an exact Retry-After before Serve's coarser queue in the caller does.
        "max_ongoing_requests": ro.max_ongoing_requests or settings.queue_limit + batch,
        "max_queued_requests": settings.queue_limit,
        "graceful_shutdown_timeout_s": settings.drain_timeout_seconds,
    }
    if ro.max_replicas is not None:
        opts["autoscaling_config"] = {
            "min_replicas": ro.min_replicas,
            "max_replicas": ro.max_replicas,
            "target_ongoing_requests": ro.target_ongoing_requests or batch,
            "downscale_delay_s": 600,  # image models load slowly: do not give a replica back at the first lull
        }
    else:
        opts["num_replicas"] = ro.num_replicas
    return opts


def _serve_request_id(scope: Any) -> str | None:
    """The id Serve's proxy writes as ``x-request-id`` (the client's own, or a uuid)."""
    from ray.serve.context import _get_serve_request_context

    return _get_serve_request_context().request_id or None


class Ingress:
    """The ingress deployment: each replica builds ImageForge's app with the Ray backend."""

    def __init__(
        self,
        settings: Settings,
        catalogue: Catalogue,
        engines: dict[str, Any],
        groups: dict[str, list[str]],
        registry: Any,
    ) -> None:
        self.settings, self.catalogue = settings, catalogue
        self.engines, self.groups, self.registry = engines, groups, registry

    def __serve_build_asgi_app__(self) -> Any:
        from imageforge.api.app import create_app
        from imageforge.api.state import EngineBackend
        from imageforge.distributed.gateway import RemoteEngines, ServeGateway
        from imageforge.metrics import Metrics
        from imageforge.scheduler.traffic import Traffic

        # The replicas' workers wait for batch partners as configured: a replica sees only its own queue, not the
        # requests arriving at the ingresses.
        def backend(catalogue: Catalogue, settings: Settings, metrics: Metrics, _traffic: Traffic) -> EngineBackend:
            handles = {m: self.engines[name] for name, models in self.groups.items() for m in models}
            gateway = ServeGateway(handles)
            fleet = RemoteEngines(gateway, self.registry, self.groups, metrics)
            return EngineBackend(fleet, gateway, adopt_request_id=_serve_request_id, metrics_page=fleet.metrics_page)

        return create_app(self.settings, self.catalogue, backend=backend)


def build_application(settings: Settings, catalogue: Catalogue | None = None, *, gpus_available: bool = False) -> Any:
    """The Serve application (``serve.run`` it); ``gpus_available``: engines default to one GPU each."""
    from ray import serve

    catalogue = catalogue if catalogue is not None else load_catalogue(settings)
    if settings.ray_ingress_replicas > 1 and settings.url_signing_key is None:
        log.warning(
            "%d ingress replicas without url_signing_key: each node makes its own key, so a url image minted on "
            "one node is refused on another; set IMAGEFORGE_URL_SIGNING_KEY (and a shared image store)",
            settings.ray_ingress_replicas,
        )
    groups = engine_groups(catalogue)
    registry = serve.deployment(
        name="registry", num_replicas=1, ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1000
    )(ReplicaRegistry).bind()
    engines = {
        name: serve.deployment(**deployment_options(name, entries, settings, gpus_available))(EngineReplica).bind(
            settings, entries, registry
        )
        for name, entries in groups.items()
    }
    ingress = serve.deployment(
        name="ingress",
        num_replicas=settings.ray_ingress_replicas,
        max_ongoing_requests=settings.ray_ingress_max_ongoing,  # every open stream holds a slot while it runs
        ray_actor_options={"num_cpus": settings.ray_ingress_cpus},
        graceful_shutdown_timeout_s=settings.drain_timeout_seconds,
    )(serve.ingress()(Ingress))
    models = {name: sorted(entries) for name, entries in groups.items()}
    return ingress.bind(settings, catalogue, engines, models, registry)


def from_args(args: dict[str, Any]) -> Any:
    """The application builder for ``serve run`` and Serve config files: ``args`` are Settings fields (the
    ``IMAGEFORGE_*`` environment fills the rest, as for ``imageforge serve``)."""
    settings = Settings(**args)
    return build_application(settings, gpus_available=_cluster_has_gpus())


def _cluster_has_gpus() -> bool:
    import ray

    return bool(ray.cluster_resources().get("GPU", 0) > 0)  # type: ignore[no-untyped-call]


def serve_forever(settings: Settings, catalogue: Catalogue | None = None, on_ready: Any = None) -> None:
    """``imageforge serve --backend ray``: join (or start) a Ray cluster, deploy, serve until SIGTERM/SIGINT."""
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise ConfigurationError(
            "--backend ray needs Ray Serve: pip install 'imageforge[ray]'", param="backend"
        ) from exc
    started_here = settings.ray_address is None
    ray.init(address=settings.ray_address, include_dashboard=False, logging_level=logging.WARNING)
    try:
        serve.start(
            http_options={"host": settings.host, "port": settings.port}, proxy_location=settings.ray_proxy_location
        )
        app = build_application(settings, catalogue, gpus_available=_cluster_has_gpus())
        serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
        if on_ready is not None:
            on_ready()
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
        log.info("stopping: draining the application")
        serve.delete(APP_NAME)  # replicas finish their requests first (graceful_shutdown_timeout_s)
    finally:
        if started_here:
            serve.shutdown()  # type: ignore[no-untyped-call]
            ray.shutdown()
