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

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from carebot.config import EmotionSettings
from carebot.exceptions import ConfigError
from carebot.nlu.emotion_head import EmotionHead
from carebot.nlu.language import folded

ESCALATION_FLOOR = 0.9
# The head's cue for each of its targets, when its calibrated probability reaches 0.5.
HEAD_CUES = {
    "negative": "upset_tone",
    "anger": "angry_tone",
    "upset": "upset_tone",
    "frustrated": "frustrated_tone",
}
log = logging.getLogger(__name__)
_WORD = re.compile(r"[^\W\d_]+")
_EXCLAMATIONS = re.compile(r"[!?]*![!?]*!+")


@dataclass(frozen=True, slots=True)
class EmotionSignal:
    value: float  # how upset: at or above [emotion] threshold, a person takes over
    cues: tuple[str, ...]
    # how likely frustrated or upset (the head's mild target; 0.0 without one)
    frustration: float = 0.0


class EmotionScorer:
    """Scores one message; cheap (well under a millisecond), pure, thread-safe.

    ``use_head``: use the emotion head when :meth:`score` gets an embedding; ``head_weights``:
    its weights file (default: the packaged head for ``model``, see
    :func:`carebot.nlu.emotion_head.packaged_head`: ``carebot/nlu/data/emotion_head_use.npz``
    for ``use-multilingual``, else ``emotion_head.npz``, all-MiniLM-L6-v2's); ``target``: the
    head output that is the signal (``"upset"`` for the care heads; ``"negative"`` or
    ``"anger"`` for one trained on GoEmotions); ``dim``: the encoder's embedding dimension,
    checked at once; ``model``: the sentence model, ``[matcher] model``. ``use_head``,
    ``head_weights`` and ``target`` default to ``[emotion] head``, ``head_weights`` and
    ``target``.
    """

    def __init__(
        self,
        settings: EmotionSettings,
        *,
        use_head: bool | None = None,
        head_weights: Path | str | None = None,
        target: str | None = None,
        dim: int | None = None,
        model: str | None = None,
    ) -> None:
        use_head = settings.head if use_head is None else use_head
        target = settings.target if target is None else target
        head_weights = head_weights or settings.head_weights or None
        self._vader = SentimentIntensityAnalyzer()
        self._shouting = settings.shouting
        self._exclamations = settings.exclamations
        self._settings = settings
        self._escalation: dict[str | None, re.Pattern[str] | None] = {}
        self.head = EmotionHead.load(head_weights, dim=dim, model=model) if use_head else None
        if self.head is not None and target not in self.head.targets:
            raise ConfigError(
                f"[emotion] target: unknown target {target!r}; the emotion head "
                f"{self.head.path} has {', '.join(self.head.targets)}"
            )
        self._target = target
        mild = settings.mild_target
        self._mild_target = mild if self.head is not None and mild in self.head.targets else None
        if self.head is not None and self._mild_target is None and settings.mild_threshold > 0:
            log.warning(
                "The emotion head %s has no %r output ([emotion] mild_target): frustrated "
                "customers get plain answers. Outputs: %s.",
                self.head.path,
                mild,
                ", ".join(self.head.targets),
            )

    def score(
        self, text: str, embedding: np.ndarray | None = None, language: str | None = None
    ) -> EmotionSignal:
        """The signal for ``text``; ``embedding``: its L2-normalised sentence embedding, if known;
        ``language``: the customer's (None: English), see :func:`polarity`.

        Raises :class:`carebot.nlu.emotion_head.EmotionHeadError` when the embedding does not have
        the dimension the head was trained for.
        """
        cues: list[str] = []
        scores = polarity(self._vader, text, language)
        compound = scores["compound"]
        if compound < 0:
            cues.append("negative_sentiment")
        bonuses, floor, rule_cues = self.rules(text, language)
        frustration = 0.0
        if embedding is not None and self.head is not None:
            inputs = self._inputs(text, scores)
            probabilities = self.head.probabilities(embedding, inputs, text)
            value = probabilities[self._target]
            if self._mild_target is not None:
                frustration = probabilities[self._mild_target]
            cues += [HEAD_CUES.get(t, f"{t}_tone") for t, p in probabilities.items() if p >= 0.5]
        else:
            value = max(0.0, -compound)
        for bonus in bonuses:
            value += bonus
        value = min(max(value, floor), 1.0)
        return EmotionSignal(
            round(value, 4), tuple(cues + rule_cues), round(max(frustration, value), 4)
        )

    def rules(self, text: str, language: str | None = None) -> tuple[list[float], float, list[str]]:
        """The intensity rules: what they add to the signal, the floor they set, their cues.
        ``language``: the message's, for ``[emotion] escalation_words`` given per language
        (None: any language's words)."""
        bonuses: list[float] = []
        floor, cues = 0.0, []
        if _is_shouting(text):
            bonuses.append(self._shouting)
            cues.append("shouting")
        if _EXCLAMATIONS.search(text):
            bonuses.append(self._exclamations)
            cues.append("exclamations")
        escalation = self._escalation_words(language)
        if escalation and (found := escalation.search(folded(text))):
            floor = ESCALATION_FLOOR
            cues.append(f"escalation_word:{found.group(1)}")
        return bonuses, floor, cues

    def _escalation_words(self, language: str | None) -> re.Pattern[str] | None:
        """The escalation words for ``language`` as one pattern (compiled once per language):
        whole words, in any case, with or without accents."""
        if language not in self._escalation:
            words = {folded(w) for w in self._settings.escalation_words_in(language) if w.strip()}
            pattern = "|".join(re.escape(w) for w in sorted(words))
            self._escalation[language] = re.compile(rf"\b({pattern})\b") if words else None
        return self._escalation[language]

    def _inputs(self, text: str, polarity: dict[str, float]) -> np.ndarray:
        """The head's text features, in its order."""
        assert self.head is not None
        values = text_features(text, self._vader, polarity)
        return np.array([values[name] for name in self.head.features], dtype=np.float32)


NEUTRAL = {"neg": 0.0, "neu": 1.0, "pos": 0.0, "compound": 0.0}  # VADER's scores of "ok"


def polarity(
    vader: SentimentIntensityAnalyzer, text: str, language: str | None = None
) -> dict[str, float]:
    """VADER's scores of ``text``, written in ``language`` (None: English); neutral for any
    other language: VADER's lexicon is English, and reads the German article "die" as the
    English verb (German calm care lines scored lower than upset ones, -0.17 against -0.14)."""
    if language not in (None, "en"):
        return dict(NEUTRAL)
    return dict(vader.polarity_scores(text))


def text_features(
    text: str, vader: SentimentIntensityAnalyzer, polarity: dict[str, float] | None = None
) -> dict[str, float]:
    """The cheap features an emotion head may take beside the embedding (names as in
    :data:`carebot.nlu.emotion_head.FEATURES`): VADER's four scores, and shouting in capitals
    and runs of exclamation marks as 0/1. ``polarity``: VADER's scores, if already computed."""
    scores = vader.polarity_scores(text) if polarity is None else polarity
    values = {f"vader_{key}": float(value) for key, value in scores.items()}
    values["shouting"] = float(_is_shouting(text))
    values["exclamations"] = float(bool(_EXCLAMATIONS.search(text)))
    return values


def _is_shouting(text: str) -> bool:
    """At least two words of three or more letters, and most words, in capitals."""
    words = [w for w in _WORD.findall(text) if len(w) >= 3]
    loud = [w for w in words if w.isupper()]
    return len(loud) >= 2 and len(loud) * 2 >= len(words)
