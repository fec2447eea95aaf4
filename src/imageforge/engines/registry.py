"""Engine lookup by name. Engines come from the ``imageforge.engines`` entry-point group, so a third-party
package adds one with a line in its ``pyproject.toml``::

    [project.entry-points."imageforge.engines"]
    my-engine = "my_package.engine:MyEngine"

The built-in engines are declared the same way in ImageForge's own ``pyproject.toml``; the table below only
covers running from a source tree that was never installed (no entry-point metadata).
"""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import entry_points
from typing import Any

from imageforge.engines.base import Engine
from imageforge.errors import ConfigurationError

__all__ = ["ENTRY_POINT_GROUP", "available_engines", "create_engine", "engine_factory"]

ENTRY_POINT_GROUP = "imageforge.engines"
_BUILTIN = {
    "embedded": "imageforge.engines.embedded.engine:EmbeddedEngine",
    "diffusers": "imageforge.engines.diffusers:DiffusersEngine",
    "fake": "imageforge.engines.fake:FakeEngine",
}


def _targets() -> dict[str, str]:
    targets = dict(_BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        targets[ep.name] = ep.value
    return targets


def available_engines() -> list[str]:
    return sorted(_targets())


def engine_factory(name: str) -> Any:
    target = _targets().get(name)
    if target is None:
        raise ConfigurationError(f"unknown engine {name!r}; available: {', '.join(available_engines())}")
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"engine {name!r} ({target}) cannot be imported: {exc}") from exc


def create_engine(name: str, options: dict[str, Any] | None = None, defaults: dict[str, Any] | None = None) -> Engine:
    """Instantiate engine ``name`` with its options from the model catalogue (not loaded yet).

    ``defaults`` (server-wide settings such as ``device`` and ``dtype``) fill in options the entry does not set,
    for engines whose constructor takes them.
    """
    factory = engine_factory(name)
    kwargs = dict(options or {})
    if defaults:
        accepted = inspect.signature(factory).parameters
        kwargs.update({k: v for k, v in defaults.items() if k in accepted and k not in kwargs})
    try:
        engine: Engine = factory(**kwargs)
    except TypeError as exc:
        raise ConfigurationError(f"bad options for engine {name!r}: {exc}") from exc
    return engine
