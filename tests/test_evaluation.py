"""The metric definitions of DESIGN.md section 7, pinned on small hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from carebot.nlu.evaluation import (
    Predictions,
    accuracy,
    auto_precision,
    best_f1_threshold,
    confused_pairs,
    coverage,
    coverage_at,
    f1_precision_recall,
    oos_recall,
    operating_point,
    operating_points,
    threshold_for,
)


def rows(*triples: tuple[str | None, str, float]) -> Predictions:
    return Predictions(
        truth=[t for t, _, _ in triples],
        predicted=[p for _, p, _ in triples],
        confidence=[c for _, _, c in triples],
    )


# Two out-of-scope rows (one written None, one "oos"); in-scope rows 0, 2 and 5 are right.
MIXED = rows(
    ("a", "a", 0.9),
    ("a", "b", 0.8),
    ("b", "b", 0.7),
    (None, "a", 0.6),
    ("oos", "b", 0.95),
    ("b", "b", 0.5),
)


def test_accuracy_is_top1_on_in_scope_rows_only() -> None:
    assert accuracy(MIXED) == 3 / 4


@pytest.mark.parametrize(
    ("threshold", "precision", "cover", "recall"),
    [
        (1.0, math.nan, 0 / 6, 2 / 2),  # nothing sent
        (0.95, 0 / 1, 1 / 6, 1 / 2),  # only the out-of-scope row: a wrong answer
        (0.9, 1 / 2, 2 / 6, 1 / 2),
        (0.7, 2 / 4, 4 / 6, 1 / 2),  # ">=": the row at exactly 0.7 is sent
        (0.5, 3 / 6, 6 / 6, 0 / 2),
    ],
)
def test_precision_coverage_and_oos_recall_at_a_threshold(
    threshold: float, precision: float, cover: float, recall: float
) -> None:
    assert auto_precision(MIXED, threshold) == pytest.approx(precision, nan_ok=True)
    assert coverage(MIXED, threshold) == pytest.approx(cover)
    assert oos_recall(MIXED, threshold) == pytest.approx(recall)


# Sorted by confidence the decisions are right, right, right, wrong, right, right, wrong, wrong:
# precision 1, 1, 1, 3/4, 4/5, 5/6, 5/7, 5/8. Given shuffled, to prove the sort.
RANKED = rows(
    ("x", "x", 0.55),
    ("x", "y", 0.65),
    ("x", "x", 0.99),
    ("x", "y", 0.2),
    ("x", "x", 0.6),
    ("x", "x", 0.8),
    ("x", "x", 0.9),
    ("x", "y", 0.1),
)


@pytest.mark.parametrize(
    ("target", "cover", "threshold"),
    [
        (1.0, 3 / 8, 0.8),
        (0.97, 3 / 8, 0.8),
        (0.8, 6 / 8, 0.55),  # reached again after dipping to 3/4 at 0.65; 4/5 counts (>=)
        (0.7, 7 / 8, 0.2),
        (0.5, 8 / 8, 0.1),
        (0.0, 8 / 8, 0.1),
    ],
)
def test_coverage_at_is_the_largest_coverage_at_the_precision(
    target: float, cover: float, threshold: float
) -> None:
    assert coverage_at(RANKED, target) == pytest.approx(cover)
    assert threshold_for(RANKED, target) == threshold
    assert auto_precision(RANKED, threshold) >= target
    assert coverage(RANKED, threshold) == pytest.approx(cover)


def test_an_unreachable_precision_sends_nothing() -> None:
    first_is_wrong = rows(("x", "y", 0.9), ("x", "x", 0.8), ("x", "x", 0.7))
    assert math.isnan(operating_point(first_is_wrong, 0.97).precision)
    assert coverage_at(first_is_wrong, 0.97) == 0.0
    assert math.isinf(threshold_for(first_is_wrong, 0.97))
    assert coverage(first_is_wrong, threshold_for(first_is_wrong, 0.97)) == 0.0
    assert coverage_at(first_is_wrong, 2 / 3) == 1.0


@pytest.mark.parametrize("right_first", [True, False])
def test_tied_confidences_are_never_split(right_first: bool) -> None:
    tied = [("x", "x", 0.8), ("x", "y", 0.8)]
    if not right_first:
        tied.reverse()
    p = rows(("x", "x", 0.9), *tied, ("x", "x", 0.7))
    # Sending one of the two rows at 0.8 would give coverage 2/4 at precision 1: not possible.
    assert coverage_at(p, 1.0) == 1 / 4 and threshold_for(p, 1.0) == 0.9
    assert coverage_at(p, 2 / 3) == 1.0  # at 0.7 the precision is 3/4
    assert [(o.threshold, o.coverage, o.precision) for o in operating_points(p)] == [
        (0.9, 1 / 4, 1.0),
        (0.8, 3 / 4, 2 / 3),
        (0.7, 4 / 4, 3 / 4),
    ]


def test_coverage_at_agrees_with_trying_every_threshold() -> None:
    rng = np.random.default_rng(7)
    truth = rng.choice(["a", "b", "c", "oos"], size=60).tolist()
    predicted = rng.choice(["a", "b", "c"], size=60).tolist()
    confidence = rng.integers(0, 12, size=60) / 12  # few distinct values: many ties
    p = Predictions(truth, predicted, confidence)
    candidates = [*np.unique(confidence).tolist(), math.inf]
    for target in (0.3, 0.4, 0.5, 0.6, 0.8, 1.0):
        reachable = [t for t in candidates if auto_precision(p, t) >= target]
        best = max((coverage(p, t) for t in reachable), default=0.0)
        assert coverage_at(p, target) == best
        assert coverage(p, threshold_for(p, target)) == best


def test_an_all_out_of_scope_set() -> None:
    p = rows((None, "a", 0.9), ("oos", "b", 0.5), (None, "c", 0.1))
    assert math.isnan(accuracy(p))
    assert auto_precision(p, 0.5) == 0.0
    assert coverage(p, 0.5) == 2 / 3
    assert oos_recall(p, 0.5) == 1 / 3
    assert coverage_at(p, 0.01) == 0.0
    assert coverage_at(p, 0.0) == 1.0
    assert confused_pairs(p) == []


def test_no_rows_at_all() -> None:
    p = rows()
    assert math.isnan(accuracy(p)) and math.isnan(coverage(p, 0.5))
    assert math.isnan(auto_precision(p, 0.5)) and math.isnan(oos_recall(p, 0.5))
    assert operating_points(p) == []
    assert coverage_at(p, 0.95) == 0.0 and math.isinf(threshold_for(p, 0.95))


def test_oos_recall_is_undefined_without_out_of_scope_rows() -> None:
    assert math.isnan(oos_recall(RANKED, 0.5))


def test_confused_pairs_count_in_scope_mistakes_most_first() -> None:
    p = rows(
        ("a", "b", 0.9),
        ("b", "a", 0.9),
        ("a", "c", 0.9),
        ("a", "b", 0.9),
        ("b", "a", 0.9),
        ("c", "c", 0.9),
        (None, "b", 0.9),  # out of scope: not a confusion between intents
    )
    assert confused_pairs(p) == [("a", "b", 2), ("b", "a", 2), ("a", "c", 1)]
    assert confused_pairs(p, top=1) == [("a", "b", 2)]


@pytest.mark.parametrize(
    ("truth", "predicted", "confidence"),
    [(["a"], ["a", "b"], [0.1, 0.2]), (["a"], ["a"], [math.nan])],
)
def test_malformed_predictions_are_refused(
    truth: list[str], predicted: list[str], confidence: list[float]
) -> None:
    with pytest.raises(ValueError):
        Predictions(truth, predicted, confidence)


def test_f1_precision_recall_of_a_yes_no_signal() -> None:
    predicted = np.array([True, True, True, False, False])
    truth = np.array([True, True, False, True, False])
    f1, precision, recall = f1_precision_recall(predicted, truth)
    assert (precision, recall) == pytest.approx((2 / 3, 2 / 3)) and f1 == pytest.approx(2 / 3)
    assert f1_precision_recall(np.zeros(3, bool), np.ones(3, bool)) == (0.0, 0.0, 0.0)


def test_best_f1_threshold_never_splits_ties() -> None:
    scores = np.array([0.9, 0.8, 0.8, 0.1])
    truth = np.array([True, False, True, False])
    # Cuts: >= 0.9 (P 1, R 1/2), >= 0.8 (P 2/3, R 1: F1 0.8), >= 0.1 (P 1/2, R 1).
    assert best_f1_threshold(scores, truth) == pytest.approx((0.8, 0.8))


def test_best_f1_threshold_agrees_with_trying_every_threshold() -> None:
    rng = np.random.default_rng(3)
    scores = np.round(rng.random(200), 2)  # many ties
    truth = rng.random(200) < scores
    threshold, f1 = best_f1_threshold(scores, truth)
    tried = {t: f1_precision_recall(scores >= t, truth)[0] for t in np.unique(scores)}
    assert f1 == pytest.approx(max(tried.values()), abs=1e-12)
    assert tried[threshold] == pytest.approx(f1, abs=1e-12)
