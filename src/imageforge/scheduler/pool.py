"""The engines of a catalogue: one :class:`EngineWorker` per distinct engine (ids that share options share it)."""

from __future__ import annotations

from imageforge.config import Catalogue, Settings
from imageforge.engines.registry import create_engine
from imageforge.errors import ConfigurationError
from imageforge.metrics import Metrics
from imageforge.params import EngineCapabilities
from imageforge.scheduler.traffic import Traffic
from imageforge.scheduler.worker import EngineWorker

__all__ = ["EnginePool"]


class EnginePool:
    def __init__(
        self,
        catalogue: Catalogue,
        settings: Settings,
        metrics: Metrics | None = None,
        traffic: Traffic | None = None,
    ) -> None:
        """``traffic``: the server's count of requests in flight; without it, workers always wait for partners."""
        self.catalogue = catalogue
        self._traffic = traffic
        self._settings = settings
        self.metrics = metrics or Metrics()
        self._workers: dict[str, EngineWorker] = {}
        self._by_model: dict[str, EngineWorker] = {}

    def worker(self, model_id: str) -> EngineWorker:
        """The worker serving ``model_id`` (created on first use; :class:`ModelNotFoundError` if unknown)."""
        found = self._by_model.get(model_id)
        if found is not None:
            return found
        entry = self.catalogue.entry(model_id)
        key = entry.engine_key()
        worker = self._workers.get(key)
        if worker is None:
            s = self._settings
            engine = create_engine(entry.engine, entry.options, s.engine_defaults())
            worker = EngineWorker(
                f"{entry.engine}#{len(self._workers)}",
                engine,
                queue_limit=s.queue_limit,
                max_queue_seconds=s.max_queue_seconds,
                batch_wait_s=s.batch_wait_ms / 1000.0,
                traffic=None if s.batch_wait_alone else self._traffic,
                max_batch=s.max_batch,
                request_timeout_s=s.request_timeout_seconds or None,
                warmup=s.warmup,
                metrics=self.metrics,
            )
            self._workers[key] = worker
        if entry.complexity != "low" and not worker.capabilities.planning:
            raise ConfigurationError(
                f"models.{model_id}.complexity is {entry.complexity!r}, but its engine ({entry.engine}) does not "
                "plan: only 'low' can be its default"
            )
        self._by_model[model_id] = worker
        return worker

    def capabilities(self, model_id: str) -> EngineCapabilities:
        return self.worker(model_id).capabilities

    def start_all(self) -> None:
        """Create every engine and start its worker, which loads and warms it (returns at once)."""
        for model_id in self.catalogue.models:
            self.worker(model_id).start()

    def status(self) -> dict[str, str]:
        """Each engine's state: ``loading``, ``warming``, ``ready``, ``failed: <reason>`` or ``closed``."""
        return {w.name: w.state() for w in self._workers.values()}

    def ready(self) -> bool:
        return bool(self._workers) and all(w.ready for w in self._workers.values())

    def died(self) -> list[str]:
        """The engines whose worker thread ended on its own (nothing will run them again)."""
        return [w.name for w in self._workers.values() if w.died]

    def replicas(self) -> list[dict[str, object]]:
        return []  # one process: the engines are this process's

    def abort(self, message: str) -> None:
        """Fail every queued and running job of every engine (thread-safe; the drain timeout)."""
        for worker in list(self._workers.values()):
            worker.abort(message)

    def close(self, timeout: float = 5.0) -> None:
        for worker in self._workers.values():
            worker.close(timeout)
        self._workers.clear()
        self._by_model.clear()
