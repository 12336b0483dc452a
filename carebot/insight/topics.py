"""Unanswered messages grouped into topics: what customers ask that no intent answers.

Pure: messages, their embeddings and their scores for the live intents in; :class:`Topic` s out.
How (every number is a :class:`TopicSettings` field; bench/unanswered.py measured them):

1. **Clusters.** Up to ``max_agglomerative`` messages (5,000): agglomerative clustering with
   average linkage on cosine distance, cut at ``distance`` (0.65). More: the embeddings are
   reduced to ``reduced_dims`` dimensions (PCA), clustered by HDBSCAN, and each message HDBSCAN
   calls noise joins the nearest cluster whose centroid is within ``attach_distance`` (0.5).
   The number of topics is never given.
2. **Verdict.** Each message's best intent is the one the matcher scores highest. A cluster of
   at least ``min_messages`` (2) is *near intent X* when X is the most common best intent of
   its messages (ties: the higher median score) and the median of its messages' scores for X is
   at least ``near_cutoff`` (0.15 on the matcher's 0..1 scale, where drafts start at 0.25 by
   default; ``[matcher] method = "nearest"`` scores cosine similarities, for which it needs
   choosing again); otherwise it is a **new topic**. Inside a near cluster, a message whose own
   best intent Y is another one, scored at least ``near_cutoff``, goes to Y instead. A message
   in no cluster (alone, or in a cluster smaller than ``min_messages``) goes to its best intent
   when it scores at least ``near_cutoff`` for it; otherwise it is in no topic (counted in
   :attr:`Grouping.loose`, not shown).
3. **Topics.** One topic per intent that messages are near ("add these as examples of X"), and
   one per new cluster ("no intent covers this"). Each has its c-TF-IDF keywords (each word's
   share of the topic's messages times ``log(1 + A / its count over all topics)``, A the average
   number of words per topic; English stop words left out, but for words a customer asks about
   such as "bill"), the three distinct messages closest to its centroid, its customers and when
   it was last asked.
4. **Ranking.** By size and recency: each message weighs ``0.5 ** (age / half_life)`` (a week),
   heaviest topic first; ties by more messages, then the latest.

The same input gives the same topics: messages are taken in message-id order and every tie is
broken by a stated rule.
"""

from __future__ import annotations

import itertools
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

import numpy as np

from carebot.insight.report import Topic


@dataclass(frozen=True, slots=True)
class TopicSettings:
    """How unanswered messages are grouped (module docstring; bench/unanswered.py --tune)."""

    distance: float = 0.65  # cosine distance at which agglomerative clusters stop merging
    near_cutoff: float = 0.15  # median matcher score for X at which a cluster is near X
    min_messages: int = 2  # the smallest new topic
    max_agglomerative: int = 5000  # above: PCA + HDBSCAN
    reduced_dims: int = 16
    hdbscan_min_cluster: int = 10
    hdbscan_min_samples: int = 5
    attach_distance: float = 0.5  # HDBSCAN noise joins a cluster whose centroid is this close
    keywords: int = 5
    examples: int = 3
    half_life: timedelta = timedelta(days=7)


DEFAULTS = TopicSettings()


@cache
def stop_words() -> frozenset[str]:
    """scikit-learn's English stop words, but for the words that say what a customer asks about.
    (scikit-learn is imported when topics are first grouped, not with this module: a worker
    starting, or restarting after a crash, spares the second it takes.)"""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(
        ENGLISH_STOP_WORDS
        - {"amount", "back", "bill", "bottom", "call", "detail", "due", "empty", "fill", "fire"}
        - {"found", "front", "full", "interest", "move", "name", "part", "serious", "side"}
        - {"system", "thick", "thin", "top"}
    )


@dataclass(frozen=True, slots=True)
class Asked:
    """A customer message the bot did not answer."""

    message_id: int
    conversation_id: int
    customer_id: int
    text: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Grouping:
    """The topics, ranked, and where each message went: ``topic_of[i]`` is the index in
    ``topics`` of message ``i`` (as given), None when it is in no topic."""

    topics: tuple[Topic, ...]
    topic_of: tuple[int | None, ...]

    @property
    def loose(self) -> int:
        """Messages in no topic: alone, and near no intent."""
        return sum(1 for t in self.topic_of if t is None)


def group(
    asked: Sequence[Asked],
    vectors: np.ndarray,
    scores: np.ndarray,
    intent_ids: Sequence[str],
    *,
    now: datetime,
    settings: TopicSettings = DEFAULTS,
) -> Grouping:
    """Group ``asked`` (row i of ``vectors``: its unit-length embedding; of ``scores``: the
    matcher's score of every intent of ``intent_ids``, in that order) into ranked topics."""
    if len(asked) != len(vectors) or len(asked) != len(scores):
        raise ValueError("asked, vectors and scores must have one row per message")
    if scores.ndim != 2 or scores.shape[1] != len(intent_ids):
        raise ValueError(f"scores need one column per intent ({len(intent_ids)})")
    order = sorted(range(len(asked)), key=lambda i: asked[i].message_id)
    vectors = np.asarray(vectors, dtype=np.float32)[order]
    scores = np.asarray(scores, dtype=np.float32)[order]
    messages = [asked[i] for i in order]
    keys = assign(cluster(vectors, settings), scores, settings)
    members: dict[tuple[str, int], list[int]] = {}
    for row, key in enumerate(keys):
        if key is not None:
            members.setdefault(key, []).append(row)
    groups = sorted(members.items(), key=lambda item: (item[0][0], item[0][1]))
    words = keywords([[messages[r].text for r in rows] for _, rows in groups], settings.keywords)
    built = [
        _topic(rows, key, terms, messages, vectors, scores, intent_ids, settings)
        for (key, rows), terms in zip(groups, words, strict=True)
    ]
    ranked = sorted(
        range(len(built)), key=lambda g: _rank(built[g], groups[g][1], messages, now, settings)
    )
    position = {g: p for p, g in enumerate(ranked)}
    by_row: dict[int, int] = {r: position[g] for g, (_, rows) in enumerate(groups) for r in rows}
    topic_of: list[int | None] = [None] * len(asked)
    for row, original in enumerate(order):
        topic_of[original] = by_row.get(row)
    return Grouping(tuple(built[g] for g in ranked), tuple(topic_of))


def cluster(vectors: np.ndarray, settings: TopicSettings = DEFAULTS) -> np.ndarray:
    """A cluster number for each row of ``vectors`` (unit length); a message alone has a
    number of its own."""
    n = len(vectors)
    empty = ~np.any(vectors, axis=1)  # the encoder found nothing in the text: no direction
    if empty.any():  # each is a topic of its own (the cosine distance has no value for it)
        labels = np.zeros(n, dtype=np.intp)
        found = cluster(vectors[~empty], settings)
        labels[~empty] = found
        start = int(found.max()) + 1 if len(found) else 0
        labels[empty] = np.arange(start, start + int(empty.sum()))
        return labels
    if n < 2:
        return np.zeros(n, dtype=np.intp)
    if n <= settings.max_agglomerative:
        from sklearn.cluster import AgglomerativeClustering

        return np.asarray(
            AgglomerativeClustering(
                n_clusters=None,
                distance_threshold=settings.distance,
                metric="cosine",
                linkage="average",
            ).fit_predict(vectors),
            dtype=np.intp,
        )
    return _cluster_many(vectors, settings)


def _cluster_many(vectors: np.ndarray, settings: TopicSettings) -> np.ndarray:
    from sklearn.cluster import HDBSCAN
    from sklearn.decomposition import PCA

    dims = min(settings.reduced_dims, vectors.shape[1], len(vectors))
    reduced = PCA(dims, svd_solver="randomized", random_state=0).fit_transform(vectors)
    reduced /= np.maximum(np.linalg.norm(reduced, axis=1, keepdims=True), 1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        labels = HDBSCAN(
            min_cluster_size=settings.hdbscan_min_cluster,
            min_samples=settings.hdbscan_min_samples,
            cluster_selection_method="leaf",
            copy=True,
        ).fit_predict(reduced)
    labels = np.asarray(labels, dtype=np.intp)
    noise = np.flatnonzero(labels < 0)
    found = np.unique(labels[labels >= 0])
    if len(found) and len(noise):
        centroids = np.stack([vectors[labels == k].mean(axis=0) for k in found])
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
        similarity = vectors[noise] @ centroids.T
        nearest = similarity.argmax(axis=1)
        close = similarity[np.arange(len(noise)), nearest] >= 1 - settings.attach_distance
        labels[noise[close]] = found[nearest[close]]
        noise = noise[~close]
    start = int(labels.max()) + 1 if len(found) else 0
    labels[noise] = start + np.arange(len(noise))
    return labels


def assign(
    clusters: np.ndarray, scores: np.ndarray, settings: TopicSettings = DEFAULTS
) -> list[tuple[str, int] | None]:
    """Each message's place: ``("near", intent column)``, ``("new", cluster)`` or None (in no
    topic), by the rules of step 2 of the module docstring."""
    n = len(clusters)
    if scores.shape[1] == 0:
        best = np.zeros(n, dtype=np.intp)
        best_score = np.full(n, -np.inf)
    else:
        best = scores.argmax(axis=1)
        best_score = scores[np.arange(n), best]
    cutoff = settings.near_cutoff
    keys: list[tuple[str, int] | None] = [None] * n
    for label in np.unique(clusters):
        rows = np.flatnonzero(clusters == label)
        if len(rows) < settings.min_messages:
            for row in rows:
                keys[row] = ("near", int(best[row])) if best_score[row] >= cutoff else None
            continue
        near = _near_intent(rows, best, scores, cutoff)
        for row in rows:
            if near is None:
                keys[row] = ("new", int(label))
            elif best[row] != near and best_score[row] >= cutoff:
                keys[row] = ("near", int(best[row]))
            else:
                keys[row] = ("near", near)
    return keys


def _near_intent(
    rows: np.ndarray, best: np.ndarray, scores: np.ndarray, cutoff: float
) -> int | None:
    """The intent a cluster is near: its messages' most common best intent, if their median
    score for it reaches ``cutoff``."""
    if scores.shape[1] == 0:
        return None
    counts = Counter(best[rows].tolist())
    top = max(counts.values())
    tied = [x for x, c in counts.items() if c == top]
    chosen = max(sorted(tied), key=lambda x: float(np.median(scores[rows, x])))
    return int(chosen) if float(np.median(scores[rows, chosen])) >= cutoff else None


def keywords(topics: Sequence[Sequence[str]], count: int = 5) -> list[tuple[str, ...]]:
    """The ``count`` most telling words of each topic (a list of its messages' texts), by
    c-TF-IDF: a word's share of the topic's messages that hold it, times
    ``log(1 + A / f)``, with f its messages over all topics and A the average number of words
    per topic. Stop words (:func:`stop_words`) are left out; ties go alphabetically."""
    if not topics:
        return []
    from sklearn.feature_extraction.text import CountVectorizer

    texts = [text for messages in topics for text in messages]
    vectorizer = CountVectorizer(
        stop_words=sorted(stop_words()), binary=True, token_pattern=r"(?u)\b[^\W\d_][^\W_]+\b"
    )
    try:
        counts = vectorizer.fit_transform(texts)
    except ValueError:  # only stop words, digits or one-letter words
        return [() for _ in topics]
    vocabulary = vectorizer.get_feature_names_out()
    bounds = np.cumsum([0, *(len(messages) for messages in topics)])
    per_topic = np.vstack(
        [np.asarray(counts[a:b].sum(axis=0)).ravel() for a, b in itertools.pairwise(bounds)]
    ).astype(np.float64)
    frequency = per_topic.sum(axis=0)
    average = per_topic.sum() / len(topics)
    weight = (per_topic / np.maximum(bounds[1:] - bounds[:-1], 1)[:, None]) * np.log1p(
        average / np.maximum(frequency, 1)
    )
    found = []
    for row, present in zip(weight, per_topic, strict=True):
        ranked = sorted(np.flatnonzero(present), key=lambda w: (-row[w], vocabulary[w]))
        found.append(tuple(str(vocabulary[w]) for w in ranked[:count]))
    return found


def _topic(
    rows: list[int],
    key: tuple[str, int],
    terms: tuple[str, ...],
    messages: Sequence[Asked],
    vectors: np.ndarray,
    scores: np.ndarray,
    intent_ids: Sequence[str],
    settings: TopicSettings,
) -> Topic:
    kind, index = key
    near = kind == "near"
    return Topic(
        keywords=terms,
        examples=_examples(rows, messages, vectors, settings.examples),
        messages=len(rows),
        customers=len({messages[r].customer_id for r in rows}),
        last_seen=max(messages[r].at for r in rows),
        near_intent=intent_ids[index] if near else None,
        near_score=float(np.median(scores[rows, index])) if near else None,
        message_ids=tuple(messages[r].message_id for r in rows),
        conversation_ids=tuple(sorted({messages[r].conversation_id for r in rows})),
    )


def _examples(
    rows: list[int], messages: Sequence[Asked], vectors: np.ndarray, count: int
) -> tuple[str, ...]:
    """Up to ``count`` different texts, those closest to the topic's centroid first."""
    centroid = vectors[rows].mean(axis=0)
    closeness = vectors[rows] @ centroid
    chosen: list[str] = []
    seen: set[str] = set()
    for position in sorted(range(len(rows)), key=lambda p: (-closeness[p], rows[p])):
        text = messages[rows[position]].text
        if text.strip().casefold() not in seen:
            seen.add(text.strip().casefold())
            chosen.append(text)
        if len(chosen) == count:
            break
    return tuple(chosen)


def _rank(
    topic: Topic, rows: list[int], messages: Sequence[Asked], now: datetime, s: TopicSettings
) -> tuple[float, int, float, int]:
    half_life = s.half_life.total_seconds()
    ages = [max((now - messages[r].at).total_seconds(), 0.0) for r in rows]
    weight = sum(0.5 ** (age / half_life) for age in ages)
    return (-round(weight, 9), -topic.messages, -topic.last_seen.timestamp(), rows[0])
