"""``GET /v1/models`` and ``GET /v1/models/{id}`` from the catalogue."""

from __future__ import annotations

from imageforge.config import Catalogue
from imageforge.protocol.models import Model, ModelList

__all__ = ["ModelsService"]


class ModelsService:
    def __init__(self, catalogue: Catalogue, created: int) -> None:
        self.catalogue = catalogue
        self.created = created  # when this server started serving its catalogue

    def _model(self, model_id: str) -> Model:
        self.catalogue.entry(model_id)  # ModelNotFoundError (404 model_not_found) for an unknown id
        return Model(id=model_id, created=self.created, owned_by="imageforge")

    def list(self) -> ModelList:
        return ModelList(data=[self._model(m) for m in sorted(self.catalogue.models)])

    def get(self, model_id: str) -> Model:
        return self._model(model_id)
