"""Moderation that works offline: a prompt lexicon of our own and the open_nsfw image classifier.

``service.Moderator`` checks the prompt and input images (stage ``input``) and every image before it leaves the
server, streamed partial images included (stage ``output``); ``policy.Policy`` holds the ``auto``/``low``
thresholds. What is and is not detected is written down in docs/moderation.md.
"""

from imageforge.moderation.policy import CATEGORIES, Level, Policy
from imageforge.moderation.service import Moderator, Stage, Verdict

__all__ = ["CATEGORIES", "Level", "Moderator", "Policy", "Stage", "Verdict"]
