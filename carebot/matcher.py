"""The semantic FAQ matcher: which intents is a message closest to, and by how much.

An intent's score is the cosine similarity between the message and the closest of its examples
(nearest neighbour over example embeddings). The margin is the gap between the two best intents;
triage reads both. The matcher knows nothing of storage, channels or thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from carebot.embedding_cache import EmbeddingCache
from carebot.encoder import Encoder
from carebot.intents import IntentSet
from carebot.models import IntentScore


@dataclass(frozen=True, slots=True)
class Match:
    """The best intents for one message, best first."""

    top: tuple[IntentScore, ...]

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
    """Holds the example embeddings of one intent set and scores messages against them."""

    def __init__(
        self,
        *,
        encoder: Encoder,
        intents: IntentSet,
        cache: EmbeddingCache | None = None,
        top_k: int = 3,
    ) -> None:
        self._encoder = encoder
        self._top_k = top_k
        self.intents = intents
        texts, _ = intents.examples()
        vectors = cache.encode(texts, encoder) if cache is not None else encoder.encode(texts)
        self._examples = np.ascontiguousarray(vectors, dtype=np.float32)
        # Examples come grouped by intent, in order, so a segment max gives each intent's score.
        self._ids = [intent.id for intent in intents.intents]
        sizes = [len(intent.examples) for intent in intents.intents]
        self._starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)

    @property
    def encoder(self) -> Encoder:
        return self._encoder

    def match(self, text: str) -> Match:
        return self.match_vectors(self._encoder.encode([text]))[0]

    def match_many(self, texts: Sequence[str]) -> list[Match]:
        """Match several messages with one encoder call (much faster than one by one)."""
        return self.match_vectors(self._encoder.encode(list(texts))) if texts else []

    def match_vectors(self, vectors: np.ndarray) -> list[Match]:
        if not self._ids:
            return [Match(()) for _ in range(len(vectors))]
        sims = np.asarray(vectors, dtype=np.float32) @ self._examples.T
        per_intent = np.maximum.reduceat(sims, self._starts, axis=1)
        k = min(self._top_k, per_intent.shape[1])
        matches = []
        for row in per_intent:
            best = np.argsort(-row, kind="stable")[:k]
            matches.append(Match(tuple(IntentScore(self._ids[i], float(row[i])) for i in best)))
        return matches
