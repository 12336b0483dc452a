"""The semantic FAQ matcher: which intents is a message closest to, and how sure it is.

Two methods (``[matcher] method``):

* ``classifier`` (default): a logistic-regression head over the embeddings (carebot/nlu/head.py),
  trained from the examples when intents load, gives each intent a probability; it is
  multiplied by similarity evidence, a logistic of the message's cosine similarity to the
  intent's closest example, halved at ``min_similarity``. A message unlike every example of an
  intent (out of scope) gets a low score even when the classifier has to pick something.
* ``nearest``: the cosine similarity to the intent's closest example.

Either way an intent's score is in [0, 1], higher is surer, and triage compares it with the
thresholds; the margin is the gap between the two best intents. The matcher knows nothing of
storage, channels or thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from carebot.config import MatcherSettings
from carebot.models import IntentScore
from carebot.nlu.embedding_cache import EmbeddingCache
from carebot.nlu.encoder import Encoder
from carebot.nlu.head import Head, cached_head, train_head
from carebot.nlu.intents import IntentSet

METHODS = ("classifier", "nearest")
EVIDENCE_WIDTH = 0.05  # similarity units over which the evidence goes from 27% to 73%


@dataclass(frozen=True, slots=True)
class Match:
    """The best intents for one message, best first."""

    top: tuple[IntentScore, ...]
    intents: IntentSet = field(default=IntentSet(()), compare=False)  # the set matched against
    vector: np.ndarray | None = field(default=None, compare=False, repr=False)  # the embedding

    @property
    def best(self) -> IntentScore | None:
        return self.top[0] if self.top else None

    @property
    def score(self) -> float:
        return self.top[0].score if self.top else 0.0

    @property
    def margin(self) -> float:
        if len(self.top) < 2:
            return self.score
        return self.top[0].score - self.top[1].score


class Matcher:
    """Holds the example embeddings (and head) of one intent set and scores messages."""

    def __init__(
        self,
        *,
        encoder: Encoder,
        intents: IntentSet,
        cache: EmbeddingCache | None = None,
        top_k: int = 3,
        method: str = "classifier",
        min_similarity: float = 0.5,
        previous: Matcher | None = None,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown matcher method {method!r}; use one of {METHODS}")
        self._encoder = encoder
        self._top_k = top_k
        self._min_similarity = min_similarity
        self.intents = intents
        self.method = method
        texts, labels = intents.examples()
        vectors = cache.encode(texts, encoder) if cache is not None else encoder.encode(texts)
        self._examples = np.ascontiguousarray(vectors, dtype=np.float32)
        # Examples come grouped by intent, in order, so a segment max gives each intent's score.
        self._ids = [intent.id for intent in intents.intents]
        sizes = intents.example_counts()
        self._starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        self.head: Head | None = None
        if method == "classifier" and len(self._ids) > 1:
            if previous is not None and previous.head is not None:
                self.head = train_head(self._examples, labels, self._ids, previous=previous.head)
            elif cache is not None:
                self.head = cached_head(cache.folder / "heads", self._examples, labels, self._ids)
            else:
                self.head = train_head(self._examples, labels, self._ids)

    @classmethod
    def configured(
        cls,
        settings: MatcherSettings,
        *,
        encoder: Encoder,
        intents: IntentSet,
        cache: EmbeddingCache | None = None,
        previous: Matcher | None = None,
    ) -> Matcher:
        """A matcher as ``[matcher]`` in config.toml describes it."""
        return cls(
            encoder=encoder,
            intents=intents,
            cache=cache,
            top_k=settings.top_k,
            method=settings.method,
            min_similarity=settings.min_similarity,
            previous=previous,
        )

    @property
    def encoder(self) -> Encoder:
        return self._encoder

    def match(self, text: str) -> Match:
        return self.match_vectors(self._encoder.encode([text]))[0]

    def match_many(self, texts: Sequence[str]) -> list[Match]:
        """Match several messages with one encoder call (much faster than one by one)."""
        return self.match_vectors(self._encoder.encode(list(texts))) if texts else []

    def match_vectors(self, vectors: np.ndarray) -> list[Match]:
        vectors = np.asarray(vectors, dtype=np.float32)
        if not self._ids:
            return [Match((), self.intents, v) for v in vectors]
        scores = self.scores(vectors)
        k = min(self._top_k, scores.shape[1])
        matches = []
        for row, vector in zip(scores, vectors, strict=True):
            best = np.argsort(-row, kind="stable")[:k]
            top = tuple(IntentScore(self._ids[i], float(row[i])) for i in best)
            matches.append(Match(top, self.intents, vector))
        return matches

    @property
    def intent_ids(self) -> list[str]:
        """The intents' ids in column order (of :meth:`scores` and :meth:`similarities`)."""
        return list(self._ids)

    def similarities(self, vectors: np.ndarray) -> np.ndarray:
        """Every intent's cosine similarity to its closest example, for every vector."""
        vectors = np.asarray(vectors, dtype=np.float32)
        return np.maximum.reduceat(vectors @ self._examples.T, self._starts, axis=1)

    @property
    def min_similarity(self) -> float:
        """The similarity at which an intent's evidence is halved: from there on a message
        looks like that intent's examples."""
        return self._min_similarity

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """Every intent's score for every vector, columns in intent order."""
        similarity = self.similarities(vectors)
        if self.method == "nearest":
            return similarity
        evidence = 1.0 / (1.0 + np.exp(-(similarity - self._min_similarity) / EVIDENCE_WIDTH))
        if self.head is None:  # a single intent: the classifier has nothing to tell apart
            return evidence
        return self.head.probabilities(vectors) * evidence
