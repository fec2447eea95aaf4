"""Moderation as a stage of the generation pipeline: the prompt and input images before any work, every image
(partial images included) before it is sent; checks run in a worker thread and are timed into the audit line.

A flagged check raises the refusal a client of the model expects (:func:`refusal`, reference §5.4).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from imageforge.errors import ContentPolicyViolationError, ModerationBlockedError
from imageforge.metrics import Metrics
from imageforge.moderation import Level, Moderator, Verdict
from imageforge.serving.audit import RequestAudit

__all__ = ["Screening", "level_of", "refusal"]

log = logging.getLogger(__name__)


def level_of(moderation: str | None) -> Level:
    """A request's moderation policy: its ``moderation``; ``auto`` for models without the parameter (DALL·E)."""
    return "low" if moderation == "low" else "auto"


def refusal(verdict: Verdict, gpt: bool, request_id: str) -> ModerationBlockedError:
    """GPT image models get ``moderation_blocked`` with ``moderation_details``, DALL·E models
    ``content_policy_violation``."""
    stage, categories = verdict.stage, verdict.categories
    if not gpt:
        what = {"input": "Your prompt may contain text that is not allowed by our safety system.",
                "output": "The image generated from your prompt was flagged by our safety system."}[stage]  # fmt: skip
        return ContentPolicyViolationError(
            f"Your request was rejected as a result of our safety system. {what}", stage=stage, categories=categories
        )
    return ModerationBlockedError(
        "Your request was rejected by the safety system. If you believe this is an error, contact the operator of "
        f"this server and include the request ID {request_id}. safety_violations=[{', '.join(categories)}].",
        stage=stage,
        categories=categories,
    )


class Screening:
    def __init__(self, moderator: Moderator, metrics: Metrics) -> None:
        self.moderator = moderator
        self.metrics = metrics

    async def inputs(
        self,
        prompt: str,
        images: Sequence[Any],
        level: Level,
        audit: RequestAudit,
        *,
        also: str | None = None,
        gpt: bool,
    ) -> Verdict:
        """Check the prompt (and ``also``, the user's own words when a planner wrote the prompt) and the input
        images; raises the refusal when flagged. The verdict's ``minor`` applies to the output checks."""
        m = self.moderator
        verdict = await asyncio.to_thread(m.check_prompt, prompt, level)
        self._timed(audit, verdict)
        if also and not verdict.flagged:
            own = await asyncio.to_thread(m.check_prompt, also, level)
            self._timed(audit, own)
            verdict = dataclasses.replace(own, minor=own.minor or verdict.minor)
        if not verdict.flagged and images:
            verdict = await asyncio.to_thread(m.check_input_images, list(images), level, minor=verdict.minor)
            self._timed(audit, verdict)
        if verdict.flagged:
            raise self._blocked(verdict, gpt, audit)
        return verdict

    async def outputs(
        self, images: Sequence[Any], level: Level, minor: bool, audit: RequestAudit, *, gpt: bool
    ) -> None:
        """Check images about to be sent; raises the refusal when one is flagged."""
        verdict = await asyncio.to_thread(self.moderator.check_output, list(images), level, minor=minor)
        self._timed(audit, verdict)
        if verdict.flagged:
            raise self._blocked(verdict, gpt, audit)

    def _timed(self, audit: RequestAudit, verdict: Verdict) -> None:
        audit.moderation_ms += verdict.seconds * 1000
        if verdict.seconds:
            self.metrics.moderation_seconds.labels(verdict.stage).observe(verdict.seconds)

    @staticmethod
    def _blocked(verdict: Verdict, gpt: bool, audit: RequestAudit) -> ModerationBlockedError:
        log.info("[%s] moderation blocked the request at stage %s: %s", audit.request_id, verdict.stage,
                 ",".join(verdict.categories))  # fmt: skip
        return refusal(verdict, gpt, audit.request_id)
