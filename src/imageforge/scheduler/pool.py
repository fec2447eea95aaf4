"""The engines of a catalogue: one :class:`EngineWorker` per distinct engine (ids that share options share it)."""

from __future__ import annotations

from imageforge.config import Catalogue, Settings
from imageforge.engines.registry import create_engine
from imageforge.params import EngineCapabilities
from imageforge.scheduler.worker import EngineWorker

__all__ = ["EnginePool"]


class EnginePool:
    def __init__(self, catalogue: Catalogue, settings: Settings) -> None:
        self.catalogue = catalogue
        self._settings = settings
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
            engine = create_engine(entry.engine, entry.options, self._settings.engine_defaults())
            worker = EngineWorker(entry.engine, engine, self._settings.queue_limit)
            self._workers[key] = worker
        self._by_model[model_id] = worker
        return worker

    def capabilities(self, model_id: str) -> EngineCapabilities:
        return self.worker(model_id).capabilities

    def start_all(self) -> None:
        """Create every engine and queue its ``load()`` on its own worker thread (returns at once)."""
        for model_id in self.catalogue.models:
            self.worker(model_id).start()

    def status(self) -> dict[str, str]:
        """Each engine's load state: ``loading``, ``ready`` or ``failed: <reason>``."""
        return {f"{w.name}#{i}": w.state() for i, w in enumerate(self._workers.values())}

    def close(self) -> None:
        for worker in self._workers.values():
            worker.close(wait=False)
        self._workers.clear()
        self._by_model.clear()
