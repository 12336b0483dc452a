"""How good a matcher's decisions are on labelled rows: the metrics of DESIGN.md section 7.

Each row has a true intent (``None`` or ``"oos"`` when it is out of scope), the matcher's top-1
intent and a confidence. A row is *auto-sent* at a threshold when its confidence is at or above
the threshold; everything else goes to a person. Rows with equal confidence are always on the
same side of a threshold, so the operating points below only ever cut between distinct
confidences.

A ratio whose denominator is empty (no in-scope rows, nothing auto-sent, no out-of-scope rows)
is ``nan``: undefined, not zero.

For a yes/no signal (the emotion signal's "should escalate"), :func:`f1_precision_recall` and
:func:`best_f1_threshold`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

OUT_OF_SCOPE = "oos"


@dataclass(frozen=True, eq=False)
class Predictions:
    """A matcher's top-1 decision on labelled rows, index for index.

    ``truth`` is the true intent of each row, ``None`` or ``"oos"`` for an out-of-scope row;
    ``predicted`` the top-1 intent; ``confidence`` the score that is compared to thresholds.
    Derived: ``scores`` (the confidences as float64), ``in_scope`` and ``correct`` (an in-scope
    row whose top-1 is its true intent), boolean masks.
    """

    truth: Sequence[str | None]
    predicted: Sequence[str]
    confidence: Sequence[float] | np.ndarray
    in_scope: np.ndarray = field(init=False, repr=False)
    correct: np.ndarray = field(init=False, repr=False)
    scores: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        scores = np.asarray(self.confidence, dtype=np.float64).reshape(-1)
        if not len(self.truth) == len(self.predicted) == len(scores):
            raise ValueError(
                f"truth, predicted and confidence differ in length "
                f"({len(self.truth)}, {len(self.predicted)}, {len(scores)})"
            )
        if np.isnan(scores).any():
            raise ValueError("confidence contains NaN")
        in_scope = np.array([t is not None and t != OUT_OF_SCOPE for t in self.truth], dtype=bool)
        hits = [t == p for t, p in zip(self.truth, self.predicted, strict=True)]
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "in_scope", in_scope)
        object.__setattr__(self, "correct", in_scope & np.array(hits, dtype=bool))

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """A threshold and what it gives: auto-sent rows / all rows, and their precision."""

    threshold: float
    coverage: float
    precision: float


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else math.nan


def accuracy(p: Predictions) -> float:
    """Top-1 intent on in-scope rows: correct top-1 / in-scope rows (thresholds play no part)."""
    return _ratio(int(p.correct.sum()), int(p.in_scope.sum()))


def auto_precision(p: Predictions, threshold: float) -> float:
    """Correct auto-sent answers / all auto-sent answers (confidence >= threshold).

    An auto-sent answer to an out-of-scope row is wrong.
    """
    sent = p.scores >= threshold
    return _ratio(int((sent & p.correct).sum()), int(sent.sum()))


def coverage(p: Predictions, threshold: float) -> float:
    """Auto-sent answers / all rows (in-scope and out-of-scope)."""
    return _ratio(int((p.scores >= threshold).sum()), len(p))


def oos_recall(p: Predictions, threshold: float) -> float:
    """Out-of-scope rows NOT auto-sent (confidence < threshold) / all out-of-scope rows."""
    oos = ~p.in_scope
    return _ratio(int((oos & (p.scores < threshold)).sum()), int(oos.sum()))


def operating_points(p: Predictions) -> list[OperatingPoint]:
    """Every distinct way to auto-send, from the highest threshold to the lowest.

    One point per distinct confidence ``c`` (threshold ``c``: the rows at ``c`` and above are
    sent), so tied rows are never split. Computed exactly by sorting, not on a grid.
    """
    if not len(p):
        return []
    order = np.argsort(-p.scores, kind="stable")
    scores = p.scores[order]
    right = np.cumsum(p.correct[order])
    # The last row of each run of equal confidences closes a point: rows 0..i are sent.
    last = np.flatnonzero(np.append(scores[1:] != scores[:-1], True))
    return [
        OperatingPoint(float(scores[i]), (i + 1) / len(p), int(right[i]) / (i + 1))
        for i in last.tolist()
    ]


def operating_point(p: Predictions, precision: float) -> OperatingPoint:
    """The point with the largest coverage whose auto-answer precision is >= ``precision``.

    When no threshold reaches the precision, nothing is auto-sent: threshold ``inf``, coverage
    0, precision ``nan``.
    """
    best = OperatingPoint(math.inf, 0.0, math.nan)
    for point in operating_points(p):
        if point.precision >= precision:
            best = point  # points come in increasing coverage
    return best


def coverage_at(p: Predictions, precision: float) -> float:
    """Coverage@P: the largest coverage reachable at auto-answer precision >= P (0 if none)."""
    return operating_point(p, precision).coverage


def threshold_for(p: Predictions, precision: float) -> float:
    """The threshold that reaches :func:`coverage_at` (``inf``: auto-send nothing)."""
    return operating_point(p, precision).threshold


def confused_pairs(p: Predictions, top: int = 10) -> list[tuple[str, str, int]]:
    """The most frequent (true, predicted, count) mistakes on in-scope rows, most first.

    Out-of-scope rows are left out: they have no true intent to confuse. Equal counts are ordered
    by the pair's names, so the listing is stable.
    """
    wrong = np.flatnonzero(p.in_scope & ~p.correct).tolist()
    counts = Counter((str(p.truth[i]), p.predicted[i]) for i in wrong)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [(true, predicted, n) for (true, predicted), n in ranked[:top]]


def f1_precision_recall(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """F1, precision and recall of boolean predictions against boolean truth (0 when empty)."""
    hits = float(np.sum(predicted & truth))
    precision = hits / max(int(predicted.sum()), 1)
    recall = hits / max(int(truth.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return f1, precision, recall


def best_f1_threshold(scores: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """The threshold (predict ``scores >= t``) with the best F1, and that F1.

    Computed exactly by sorting; tied scores are never split.
    """
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], truth[order].astype(np.float64)
    f1 = 2 * np.cumsum(hits) / (np.arange(1, len(ranked) + 1) + hits.sum())
    f1[:-1][ranked[1:] == ranked[:-1]] = -1  # cut only between different scores
    best = int(np.argmax(f1))
    return float(ranked[best]), float(f1[best])
