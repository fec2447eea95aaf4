"""The moderation service: ``input`` checks (the prompt, input images) and ``output`` checks (every image before
it leaves the server, streamed partial images included), judged by the :class:`~.policy.Policy`.

All methods block (the image classifier runs a ResNet for ~6-12 ms); the serving layer calls them in a worker
thread, never on the event loop. Nothing here knows HTTP: a flagged check returns a :class:`Verdict`, and the
serving layer raises the refusal in the model's shape.

Plug-ins add classifiers whose licences keep them out of the default install (an operator installs them and
names them in the ``moderation_plugins`` setting). A plug-in is an entry point in the ``imageforge.moderation``
group whose object, called with no arguments, returns either a *prompt* plug-in (``kind = "prompt"``,
``classify(text) -> {category: score}``) or an *image* plug-in (``kind = "image"``,
``score(image) -> {category: score}``). Their scores join ours (the maximum per category) and are judged by the
same per-category thresholds as prompts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal, Protocol

from imageforge.errors import ConfigurationError
from imageforge.moderation.images import NsfwClassifier
from imageforge.moderation.lexicon import Lexicon
from imageforge.moderation.policy import CATEGORIES, Level, Policy
from imageforge.moderation.prompts import PromptClassifier

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["ImagePlugin", "Moderator", "PromptPlugin", "Stage", "Verdict", "load_plugins"]

log = logging.getLogger(__name__)
Stage = Literal["input", "output"]
PLUGIN_GROUP = "imageforge.moderation"


class PromptPlugin(Protocol):
    kind: Literal["prompt"]
    name: str

    def classify(self, text: str) -> Mapping[str, float]: ...


class ImagePlugin(Protocol):
    kind: Literal["image"]
    name: str

    def score(self, image: Image) -> Mapping[str, float]: ...


@dataclass(frozen=True)
class Verdict:
    stage: Stage
    categories: tuple[str, ...] = ()  # flagged categories, in CATEGORIES order; empty = allowed
    scores: dict[str, float] = field(default_factory=dict)
    minor: bool = False  # the prompt places a minor in the scene (the output check's minors rule uses it)
    seconds: float = 0.0

    @property
    def flagged(self) -> bool:
        return bool(self.categories)


def load_plugins(names: Sequence[str]) -> list[Any]:
    """Instantiate the named entry points of :data:`PLUGIN_GROUP` (a missing one is a configuration error)."""
    found = {ep.name: ep for ep in entry_points(group=PLUGIN_GROUP)}
    plugins = []
    for name in names:
        if name not in found:
            known = ", ".join(sorted(found)) or "none installed"
            raise ConfigurationError(f"moderation plug-in {name!r} is not installed ({PLUGIN_GROUP}: {known})")
        plugin = found[name].load()()
        if getattr(plugin, "kind", None) not in ("prompt", "image"):
            raise ConfigurationError(f"moderation plug-in {name!r} has no kind 'prompt' or 'image'")
        plugins.append(plugin)
    return plugins


def _ordered(categories: set[str]) -> tuple[str, ...]:
    return tuple(c for c in CATEGORIES if c in categories)


class Moderator:
    def __init__(
        self,
        policy: Policy | None = None,
        *,
        input_enabled: bool = True,
        output_enabled: bool = True,
        prompts: PromptClassifier | None = None,
        images: NsfwClassifier | None = None,
        plugins: Sequence[Any] = (),
    ) -> None:
        self.policy = policy or Policy.build()
        self.input_enabled = input_enabled
        self.output_enabled = output_enabled
        self.prompts = prompts or PromptClassifier()
        self.images = images or NsfwClassifier()
        self.prompt_plugins = [p for p in plugins if p.kind == "prompt"]
        self.image_plugins = [p for p in plugins if p.kind == "image"]

    @classmethod
    def from_settings(cls, settings: Any) -> Moderator:
        lexicon = Lexicon.load(settings.moderation_lexicon) if settings.moderation_lexicon else None
        return cls(
            Policy.build(settings.moderation_auto, settings.moderation_low),
            input_enabled=settings.moderation_input,
            output_enabled=settings.moderation_output,
            prompts=PromptClassifier(lexicon),
            images=NsfwClassifier(threads=settings.moderation_threads),
            plugins=load_plugins(settings.moderation_plugins),
        )

    def load(self) -> None:
        """Load the image classifier now (start-up), not on the first request. Blocking."""
        if self.input_enabled or self.output_enabled:
            self.images.load()

    # Input ----------------------------------------------------------------------------------------------------

    def check_prompt(self, text: str, level: Level) -> Verdict:
        """The prompt's verdict. Scored even with the input stage off: the output check needs ``minor``."""
        started = time.perf_counter()
        result = self.prompts.classify(text)
        scores = dict(result.scores)
        for plugin in self.prompt_plugins:
            for category, score in plugin.classify(text).items():
                if category in scores:
                    scores[category] = max(scores[category], float(score))
        flagged = set(self.policy.prompt_categories(scores, level)) if self.input_enabled else set()
        if flagged:
            log.debug("prompt flagged %s by lexicon terms %s", sorted(flagged), result.terms)
        return Verdict("input", _ordered(flagged), scores, result.minor, time.perf_counter() - started)

    def check_input_images(self, images: Sequence[Image], level: Level, *, minor: bool = False) -> Verdict:
        """Images a client sent (an edit's image): judged like output, reported as stage ``input``."""
        if not self.input_enabled:
            return Verdict("input", minor=minor)
        return self._check_images(images, level, minor, "input")

    # Output ---------------------------------------------------------------------------------------------------

    def check_output(self, images: Sequence[Image], level: Level, *, minor: bool = False) -> Verdict:
        """Generated images (or one partial image) before they are sent: one flagged image flags them all."""
        if not self.output_enabled:
            return Verdict("output", minor=minor)
        return self._check_images(images, level, minor, "output")

    def _check_images(self, images: Sequence[Image], level: Level, minor: bool, stage: Stage) -> Verdict:
        started = time.perf_counter()
        flagged: set[str] = set()
        worst = 0.0
        scores: dict[str, float] = {}
        for image in images:
            nsfw = self.images.score(image)
            worst = max(worst, nsfw)
            flagged.update(self.policy.image_categories(nsfw, level, minor=minor))
            for plugin in self.image_plugins:
                for category, score in plugin.score(image).items():
                    scores[category] = max(scores.get(category, 0.0), float(score))
        flagged.update(self.policy.prompt_categories(scores, level))
        scores["nsfw"] = worst
        return Verdict(stage, _ordered(flagged), scores, minor, time.perf_counter() - started)
