"""Comparing the decisions of two numerical paths (torch vs ONNX, batched vs single encoding).

Floating-point results differ between paths and between CPUs (instruction sets, thread
counts, BLAS kernels), so scores are compared within a stated tolerance, never rounded and
compared with ``==``. The kind, intent and reasons of a decision must be the same, except for a
message where some value lies within the tolerance of the threshold it is compared with (the
emotion signal, the best score against the answer and draft thresholds, a runner-up against
the clarify margin or its draft threshold, or two leading intents tied): such a message may
legitimately decide differently on another path, and is listed rather than failed.

Each comparison's figures are printed at the end of the test run (see conftest.py), so a
machine-dependent failure can be read from the CI log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from carebot.config import Settings
from carebot.models import Decision
from carebot.triage import Triage

SCORE_TOLERANCE = 1e-3  # absolute, on scores and the emotion signal in [0, 1]
REPORTS: list[str] = []  # one line per comparison, printed in the terminal summary


@dataclass
class Comparison:
    """The outcome of comparing two paths' decisions on the same messages."""

    name: str
    compared: int = 0
    largest_difference: float = 0.0
    borderline: list[str] = field(default_factory=list)  # may differ: listed, not failed
    mismatches: list[str] = field(default_factory=list)  # differ and should not

    def summary(self) -> str:
        return (
            f"{self.name}: {self.compared} messages, largest score difference "
            f"{self.largest_difference:.2e} (tolerance {SCORE_TOLERANCE:g}), "
            f"{len(self.borderline)} decided differently within tolerance of a threshold, "
            f"{len(self.mismatches)} mismatched"
        )


def _near(value: float, threshold: float) -> bool:
    return abs(value - threshold) <= SCORE_TOLERANCE


def near_a_threshold(decision: Decision, triage: Triage, config: Settings) -> bool:
    """True when a value this decision rests on lies within the tolerance of its threshold."""
    intents = triage.matcher.intents
    if _near(decision.emotion, config.emotion.threshold):
        return True
    top = decision.top
    if len(top) >= 2 and _near(top[0].score, top[1].score):
        return True
    for candidate in top:
        answer_t, draft_t = triage.thresholds(intents[candidate.intent])
        runner_up_gap = decision.score - candidate.score
        if _near(candidate.score, draft_t) or _near(runner_up_gap, config.matcher.clarify_margin):
            return True
        if candidate is top[0] and _near(candidate.score, answer_t):
            return True
    return False


def compare_decisions(
    name: str,
    texts: Sequence[str],
    first: Sequence[Decision],
    second: Sequence[Decision],
    triage: Triage,
    config: Settings,
) -> Comparison:
    """Compare two paths' decisions on ``texts``; ``triage`` and ``config`` give the
    thresholds."""
    result = Comparison(name)
    for text, a, b in zip(texts, first, second, strict=True):
        result.compared += 1
        difference = max(abs(a.score - b.score), abs(a.emotion - b.emotion))
        result.largest_difference = max(result.largest_difference, difference)
        same = (a.kind, a.intent, a.reasons) == (b.kind, b.intent, b.reasons)
        line = f"{text!r}: {a.explain()} | {b.explain()} (difference {difference:.2e})"
        if difference > SCORE_TOLERANCE:
            result.mismatches.append(line)
        elif not same:
            near = near_a_threshold(a, triage, config) or near_a_threshold(b, triage, config)
            (result.borderline if near else result.mismatches).append(line)
    return result


def record(result: Comparison) -> None:
    """Print ``result`` in the test run's terminal summary (conftest.py)."""
    REPORTS.append(result.summary())
    REPORTS.extend(f"  decided differently near a threshold: {line}" for line in result.borderline)
