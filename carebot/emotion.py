"""The emotion signal: how upset a customer sounds, in [0, 1].

VADER's compound sentiment (built for social-media text) gives the base: its negative part.
Intensity cues that VADER under-weights for care work are added on top (weights in config):
shouting in capitals, runs of exclamation marks, and a configurable list of escalation words
("lawyer", "fraud", ...), any one of which is enough to escalate on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from carebot.config import EmotionSettings

ESCALATION_FLOOR = 0.9
_WORD = re.compile(r"[^\W\d_]+")
_EXCLAMATIONS = re.compile(r"[!?]*![!?]*!+")


@dataclass(frozen=True, slots=True)
class EmotionSignal:
    value: float
    cues: tuple[str, ...]


class EmotionScorer:
    """Scores one message; cheap (well under a millisecond), pure, thread-safe."""

    def __init__(self, settings: EmotionSettings) -> None:
        self._vader = SentimentIntensityAnalyzer()
        self._shouting = settings.shouting
        self._exclamations = settings.exclamations
        words = sorted({w.casefold() for w in settings.escalation_words if w.strip()})
        pattern = "|".join(re.escape(w) for w in words)
        self._escalation = re.compile(rf"\b({pattern})\b", re.IGNORECASE) if words else None

    def score(self, text: str) -> EmotionSignal:
        cues: list[str] = []
        compound = self._vader.polarity_scores(text)["compound"]
        value = max(0.0, -compound)
        if value > 0:
            cues.append("negative_sentiment")
        if _is_shouting(text):
            value += self._shouting
            cues.append("shouting")
        if _EXCLAMATIONS.search(text):
            value += self._exclamations
            cues.append("exclamations")
        if self._escalation and (found := self._escalation.search(text)):
            value = max(value, ESCALATION_FLOOR)
            cues.append(f"escalation_word:{found.group(1).casefold()}")
        return EmotionSignal(round(min(value, 1.0), 4), tuple(cues))


def _is_shouting(text: str) -> bool:
    """At least two words of three or more letters, and most words, in capitals."""
    words = [w for w in _WORD.findall(text) if len(w) >= 3]
    loud = [w for w in words if w.isupper()]
    return len(loud) >= 2 and len(loud) * 2 >= len(words)
