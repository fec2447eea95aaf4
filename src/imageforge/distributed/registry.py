"""Which replicas are alive, where they run, and their metrics: a one-replica Serve deployment every replica
reports to every few seconds, and every ingress reads.

A Serve handle reaches *one* replica of a deployment, chosen by the router; it cannot ask all of them. So each
replica (engine and ingress) pushes a :class:`ReplicaInfo` here, and an entry not refreshed within
``STALE_AFTER_S`` is dropped (a killed replica leaves the list by itself). ``/health`` shows the list, ``/ready``
waits for a ready replica of every engine, and ``/metrics`` serves every replica's series with ``replica``,
``deployment`` and ``node`` labels added (:func:`merge_metrics`), whichever ingress answers. The registry holds
only what replicas resend, so losing it loses nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

__all__ = ["REPORT_INTERVAL_S", "STALE_AFTER_S", "ReplicaInfo", "ReplicaRegistry", "merge_metrics", "replica_identity"]

REPORT_INTERVAL_S = 2.0
STALE_AFTER_S = 10.0


@dataclass(frozen=True)
class ReplicaInfo:
    replica: str  # Serve's replica id
    deployment: str
    actor: str  # the replica's Ray actor name (ray.get_actor(actor, namespace="serve"))
    node: str  # the Ray node id it runs on
    kind: str  # "engine" or "ingress"
    pid: int
    state: str = "loading"  # an engine's: loading, warming, ready, failed: ...; an ingress's: ready
    models: tuple[str, ...] = ()
    cuda_visible_devices: str | None = None
    metrics: str = ""  # prometheus text of the replica's own registry

    def with_state(self, **changes: object) -> ReplicaInfo:
        if "models" in changes:
            changes["models"] = tuple(changes["models"])  # type: ignore[arg-type]
        return replace(self, **changes)  # type: ignore[arg-type]

    def public(self) -> dict[str, object]:
        """What ``/health`` shows (no metrics text)."""
        out = asdict(self)
        out.pop("metrics")
        out["models"] = list(self.models)
        return out


def replica_identity(kind: str) -> ReplicaInfo:
    """This replica's identity, from Serve's and Ray's runtime context (call inside a replica)."""
    import os

    import ray
    from ray import serve

    ctx = serve.get_replica_context()
    return ReplicaInfo(
        replica=ctx.replica_tag,
        deployment=ctx.deployment,
        actor=ctx.replica_id.to_full_id_str(),
        node=ray.get_runtime_context().get_node_id(),
        kind=kind,
        pid=os.getpid(),
        state="ready" if kind == "ingress" else "loading",
    )


class ReplicaRegistry:
    """The deployment class (one replica, no resources of its own)."""

    def __init__(self, clock: object = time.monotonic) -> None:
        self._clock = clock
        self._seen: dict[str, tuple[float, ReplicaInfo]] = {}

    def report(self, info: ReplicaInfo) -> None:
        self._seen[info.replica] = (self._now(), info)

    def snapshot(self) -> list[ReplicaInfo]:
        now = self._now()
        for replica, (seen, _) in list(self._seen.items()):
            if now - seen > STALE_AFTER_S:
                del self._seen[replica]
        return sorted((info for _, info in self._seen.values()), key=lambda i: (i.kind, i.deployment, i.replica))

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]


class _Families:
    """A prometheus collector that yields already-built metric families (the merged page)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def merge_metrics(replicas: Iterable[ReplicaInfo]) -> bytes:
    """One prometheus page of every replica's series, each sample labelled with where it came from."""
    merged: dict[str, Metric] = {}
    for info in replicas:
        extra = {"replica": info.replica, "deployment": info.deployment, "node": info.node[:12]}
        for family in text_string_to_metric_families(info.metrics):
            into = merged.get(family.name)
            if into is None:
                into = merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
            for s in family.samples:
                into.samples.append(Sample(s.name, {**s.labels, **extra}, s.value, s.timestamp, s.exemplar))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(merged.values()))
    return generate_latest(registry)
