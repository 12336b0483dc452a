"""What ``/metrics`` counts, as plain totals: counters by label and histograms.

:mod:`carebot.insight.counters` keeps them up to date from the store; the labels are names
and codes (direction, author, channel, kind, reason), never a customer's or a conversation's
id.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

NO_REASON = "none"

# Histogram bucket bounds (Prometheus ``le``, inclusive), each in the histogram's unit.
DECISION_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MATCH_SCORE = tuple(round(0.05 * step, 2) for step in range(1, 21))  # 0.05 .. 1.0
FIRST_RESPONSE_SECONDS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400,
                          172800, 604800)  # fmt: skip


@dataclass
class Histogram:
    """Observations per bucket (not cumulative; the last bucket is +Inf) and their sum."""

    bounds: Sequence[float]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def add(self, bucket: int, count: int, total: float) -> None:
        """Add ``count`` observations of bucket ``bucket`` (an index into ``counts``) counted
        elsewhere, ``total`` their sum."""
        self.counts[bucket] += count
        self.total += total

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, observations <= le)`` pairs, ending with ``+Inf``, as Prometheus shows them."""
        edges = [*(f"{bound:g}" for bound in self.bounds), "+Inf"]
        running, out = 0, []
        for edge, count in zip(edges, self.counts, strict=True):
            running += count
            out.append((edge, running))
        return out

    def plus(self, other: Histogram) -> Histogram:
        counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        return Histogram(self.bounds, counts, self.total + other.total)


@dataclass
class Totals:
    """Everything ``/metrics`` counts."""

    messages: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # dir/author/chan
    decisions: Counter[tuple[str, str]] = field(default_factory=Counter)  # kind, main reason
    handoffs: Counter[str] = field(default_factory=Counter)  # main reason
    confirmed: int = 0  # "did that answer your question?" answered yes
    decision_seconds: Histogram = field(default_factory=lambda: Histogram(DECISION_SECONDS))
    match_score: Histogram = field(default_factory=lambda: Histogram(MATCH_SCORE))
    first_response: Histogram = field(default_factory=lambda: Histogram(FIRST_RESPONSE_SECONDS))

    def plus(self, other: Totals) -> Totals:
        return Totals(
            self.messages + other.messages,
            self.decisions + other.decisions,
            self.handoffs + other.handoffs,
            self.confirmed + other.confirmed,
            self.decision_seconds.plus(other.decision_seconds),
            self.match_score.plus(other.match_score),
            self.first_response.plus(other.first_response),
        )
