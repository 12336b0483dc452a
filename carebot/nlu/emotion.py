"""The emotion signal: how upset a customer sounds, in [0, 1].

Without an embedding, VADER's compound sentiment (built for social-media text) gives the base:
its negative part. With the message's sentence embedding (the one the matcher computes anyway)
and the emotion head (:mod:`carebot.nlu.emotion_head`, trained on GoEmotions), the base is the
head's calibrated probability that the message is ``negative`` (or ``anger``, per ``target``);
the head takes VADER's scores as inputs beside the embedding. The head is calibrated so that a
signal of 0.5, the default ``[emotion] threshold``, is the point chosen on GoEmotions dev: a lower
threshold escalates more, a higher one less.

Intensity cues that VADER under-weights for care work are added on top either way (weights in
config): shouting in capitals, runs of exclamation marks, and a configurable list of escalation
words ("lawyer", "fraud", ...), any one of which is enough to escalate on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from carebot.config import EmotionSettings
from carebot.exceptions import ConfigError
from carebot.nlu.emotion_head import EmotionHead

ESCALATION_FLOOR = 0.9
# The head's cue for each of its targets, when its calibrated probability reaches 0.5.
HEAD_CUES = {"negative": "upset_tone", "anger": "angry_tone"}
_WORD = re.compile(r"[^\W\d_]+")
_EXCLAMATIONS = re.compile(r"[!?]*![!?]*!+")


@dataclass(frozen=True, slots=True)
class EmotionSignal:
    value: float
    cues: tuple[str, ...]


class EmotionScorer:
    """Scores one message; cheap (well under a millisecond), pure, thread-safe.

    ``use_head``: use the emotion head when :meth:`score` gets an embedding; ``head_weights``:
    its weights file (default: the packaged ``carebot/nlu/data/emotion_head.npz``); ``target``: the
    head output that is the signal (``"negative"``: any negative emotion, or ``"anger"``: anger,
    annoyance, disapproval); ``dim``: the encoder's embedding dimension, checked at once. The
    first three default to ``[emotion] head``, ``head_weights`` and ``target``.
    """

    def __init__(
        self,
        settings: EmotionSettings,
        *,
        use_head: bool | None = None,
        head_weights: Path | str | None = None,
        target: str | None = None,
        dim: int | None = None,
    ) -> None:
        use_head = settings.head if use_head is None else use_head
        target = settings.target if target is None else target
        head_weights = head_weights or settings.head_weights or None
        self._vader = SentimentIntensityAnalyzer()
        self._shouting = settings.shouting
        self._exclamations = settings.exclamations
        words = sorted({w.casefold() for w in settings.escalation_words if w.strip()})
        pattern = "|".join(re.escape(w) for w in words)
        self._escalation = re.compile(rf"\b({pattern})\b", re.IGNORECASE) if words else None
        self.head = EmotionHead.load(head_weights, dim=dim) if use_head else None
        if self.head is not None and target not in self.head.targets:
            raise ConfigError(
                f"[emotion] target: unknown target {target!r}; the emotion head "
                f"{self.head.path} has {', '.join(self.head.targets)}"
            )
        self._target = target

    def score(self, text: str, embedding: np.ndarray | None = None) -> EmotionSignal:
        """The signal for ``text``; ``embedding``: its L2-normalised sentence embedding, if known.

        Raises :class:`carebot.nlu.emotion_head.EmotionHeadError` when the embedding does not have
        the dimension the head was trained for.
        """
        cues: list[str] = []
        polarity = self._vader.polarity_scores(text)
        compound = polarity["compound"]
        if compound < 0:
            cues.append("negative_sentiment")
        bonuses, floor, rule_cues = self.rules(text)
        if embedding is not None and self.head is not None:
            inputs = self._inputs(polarity, rule_cues)
            probabilities = self.head.probabilities(embedding, inputs, text)
            value = probabilities[self._target]
            cues += [HEAD_CUES.get(t, f"{t}_tone") for t, p in probabilities.items() if p >= 0.5]
        else:
            value = max(0.0, -compound)
        for bonus in bonuses:
            value += bonus
        value = max(value, floor)
        return EmotionSignal(round(min(value, 1.0), 4), tuple(cues + rule_cues))

    def rules(self, text: str) -> tuple[list[float], float, list[str]]:
        """The intensity rules: what they add to the signal, the floor they set, their cues."""
        bonuses: list[float] = []
        floor, cues = 0.0, []
        if _is_shouting(text):
            bonuses.append(self._shouting)
            cues.append("shouting")
        if _EXCLAMATIONS.search(text):
            bonuses.append(self._exclamations)
            cues.append("exclamations")
        if self._escalation and (found := self._escalation.search(text)):
            floor = ESCALATION_FLOOR
            cues.append(f"escalation_word:{found.group(1).casefold()}")
        return bonuses, floor, cues

    def _inputs(self, polarity: dict[str, float], rule_cues: list[str]) -> np.ndarray:
        """The head's text features, in its order (VADER's scores; the rules' cues as 0/1)."""
        assert self.head is not None
        values = {f"vader_{key}": value for key, value in polarity.items()}
        values["shouting"] = float("shouting" in rule_cues)
        values["exclamations"] = float("exclamations" in rule_cues)
        return np.array([values[name] for name in self.head.features], dtype=np.float32)


def _is_shouting(text: str) -> bool:
    """At least two words of three or more letters, and most words, in capitals."""
    words = [w for w in _WORD.findall(text) if len(w) >= 3]
    loud = [w for w in words if w.isupper()]
    return len(loud) >= 2 and len(loud) * 2 >= len(words)
