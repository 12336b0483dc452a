"""Emotion quality: carebot's "should escalate" signal against VADER alone, on GoEmotions test.

    HF_HUB_OFFLINE=1 python bench/emotion.py DATA_DIR [--cache DIR] [--model NAME]

DATA_DIR holds ``goemotions/`` (see its README). Two targets (DESIGN.md section 7): ``negative``
(sentiment group) and ``anger`` (Ekman: anger, annoyance, disapproval), built from the
dataset's own mapping files. Methods, each with its threshold chosen on dev (never on test):

* VADER alone: the score is -compound;
* carebot today: ``EmotionScorer.score(text)`` without an embedding (VADER + intensity rules);
* embeddings + logistic regression: one per target on the train embeddings (C=1);
* the GoEmotions head: the real ``EmotionScorer.score(text, embedding)`` with the head trained
  on GoEmotions (``carebot emotion train``; shipped until issue 13, kept as
  ``bench/baselines/emotion_head_goemotions.npz``), its settings of then (shouting 0.5,
  exclamations 0.2), ``target`` = the column's target; also at the threshold 0.5 it was
  calibrated to on dev, and with the shouting and exclamation weights set to 0;
* the care head (what ships: ``carebot emotion train-care``, trained on customer-care messages,
  default settings): its ``upset`` output against both columns. GoEmotions is a secondary
  benchmark for it (Reddit comments, where a problem report is "negative"); its target is the
  care set (``bench/upset.py``).

"µs/msg" is the median time to score one message, the sentence embedding given (it is computed
for matching anyway); embeddings are cached under ``--cache`` like bench/quality.py's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from carebot.config import EmotionSettings  # noqa: E402
from carebot.nlu.dataset_embeddings import DatasetEmbeddings, progress_bars  # noqa: E402
from carebot.nlu.emotion import EmotionScorer  # noqa: E402
from carebot.nlu.evaluation import best_f1_threshold, f1_precision_recall  # noqa: E402
from carebot.nlu.goemotions import TARGETS, EmotionSplit, load_goemotions  # noqa: E402

WIDTH = 50  # of the method column
GOEMOTIONS_HEAD = ROOT / "bench" / "baselines" / "emotion_head_goemotions.npz"
GOALS = {"negative": 0.65, "anger": 0.50}
# Measured elsewhere (the issue), printed under the table for orientation: (method, F1 per target).
REFERENCES = (
    ("issue: VADER alone", {"negative": 0.57, "anger": 0.39}),
    ("issue: embeddings + logistic regression", {"negative": 0.59, "anger": 0.46}),
)


@dataclass
class Row:
    """One method: per target its dev-chosen threshold and the test predictions' F1, P, R."""

    method: str
    thresholds: dict[str, float]
    figures: dict[str, tuple[float, float, float]]
    micros: float | None  # median µs per message


Scores = Callable[[str, str], np.ndarray]  # (split, target) -> one score per text


def evaluate(
    method: str,
    scores: Scores,
    data: dict[str, EmotionSplit],
    micros: float | None,
    fixed: float | None = None,
) -> Row:
    """Thresholds on dev (or ``fixed``), F1 / precision / recall on test."""
    thresholds, figures = {}, {}
    for target in TARGETS:
        threshold = (
            fixed
            if fixed is not None
            else best_f1_threshold(scores("dev", target), data["dev"].targets[target])[0]
        )
        thresholds[target] = threshold
        predicted = scores("test", target) >= threshold
        figures[target] = f1_precision_recall(predicted, data["test"].targets[target])
    return Row(method, thresholds, figures, micros)


def timed(score: Callable[[int], float], rows: int) -> tuple[np.ndarray, float]:
    """Scores of rows 0..rows-1 and the median µs one call took."""
    values, times = np.empty(rows), []
    for i in range(rows):
        start = time.perf_counter_ns()
        values[i] = score(i)
        times.append(time.perf_counter_ns() - start)
    return values, statistics.median(times) / 1000


def scorer_scores(
    make: Callable[[str], EmotionScorer],
    data: dict[str, EmotionSplit],
    vectors: dict[str, np.ndarray] | None,
) -> tuple[Scores, float]:
    """Every split's signal from the real EmotionScorer, per target; median µs on test."""
    table: dict[tuple[str, str], np.ndarray] = {}
    micros = []
    for target in TARGETS:
        scorer = make(target)
        for split in ("dev", "test"):
            texts = data[split].texts
            rows = vectors[split] if vectors is not None else [None] * len(texts)
            table[split, target], us = timed(
                lambda i, t=texts, r=rows, sc=scorer: sc.score(t[i], r[i]).value, len(texts)
            )
            if split == "test":
                micros.append(us)
    return (lambda split, target: table[split, target]), statistics.median(micros)


def vader_alone(data: dict[str, EmotionSplit]) -> Row:
    """VADER's -compound, the same score for both targets."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    scores: dict[str, np.ndarray] = {}
    micros = 0.0
    for split in ("dev", "test"):
        texts = data[split].texts
        scores[split], micros = timed(
            lambda i, t=texts: -vader.polarity_scores(t[i])["compound"], len(texts)
        )
    return evaluate("VADER alone (-compound)", lambda split, _: scores[split], data, micros)


def embeddings_lr(data: dict[str, EmotionSplit], vectors: dict[str, np.ndarray]) -> Row:
    """One logistic regression per target on the train embeddings; score = its logit."""
    scores: dict[tuple[str, str], np.ndarray] = {}
    micros = 0.0
    for target in TARGETS:
        model = LogisticRegression(C=1.0, max_iter=3000)
        model.fit(vectors["train"], data["train"].targets[target])
        weights, bias = model.coef_[0].astype(np.float32), float(model.intercept_[0])
        for split in ("dev", "test"):
            rows = vectors[split]
            scores[split, target], micros = timed(
                lambda i, r=rows, w=weights, b=bias: float(r[i] @ w) + b, len(rows)
            )
    method = "embeddings + logistic regression (C=1)"
    return evaluate(method, lambda split, target: scores[split, target], data, micros)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="folder with goemotions/ (or that folder)")
    parser.add_argument("--cache", type=Path, default=ROOT / ".carebot" / "bench-cache")
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    args = parser.parse_args()
    started = time.perf_counter()
    data = load_goemotions(args.data_dir).splits
    embeddings = DatasetEmbeddings.of_model(args.cache, args.model, progress_bars())
    vectors = {name: embeddings.of(split.name, split.texts)[0] for name, split in data.items()}

    def scorer(settings: EmotionSettings, **options: bool) -> Callable[[str], EmotionScorer]:
        return lambda target: EmotionScorer(settings, target=target, **options)

    rows = [vader_alone(data)]
    today, micros = scorer_scores(scorer(EmotionSettings(), use_head=False), data, None)
    rows.append(evaluate("carebot today: VADER + rules, no embedding", today, data, micros))
    rows.append(embeddings_lr(data, vectors))
    then = EmotionSettings(
        head_weights=str(GOEMOTIONS_HEAD), mild_threshold=0.0, shouting=0.5, exclamations=0.2
    )
    ours, micros = scorer_scores(scorer(then), data, vectors)
    rows.append(evaluate("GoEmotions head + rules (embedding)", ours, data, micros))
    rows.append(evaluate("GoEmotions head at its threshold 0.5", ours, data, micros, 0.5))
    quiet = then.model_copy(update={"shouting": 0.0, "exclamations": 0.0})
    ours_quiet, micros = scorer_scores(scorer(quiet), data, vectors)
    rows.append(evaluate("GoEmotions head, shouting = exclamations = 0", ours_quiet, data, micros))
    care = lambda _target: EmotionScorer(EmotionSettings())  # noqa: E731 - upset for both
    cared, micros = scorer_scores(care, data, vectors)
    rows.append(evaluate("care head (shipped), upset output", cared, data, micros))
    rows.append(evaluate("care head at its threshold 0.5", cared, data, micros, 0.5))

    test, dev = data["test"], data["dev"]
    counts = ", ".join(f"{t} {int(test.targets[t].sum())}" for t in TARGETS)
    print(
        f"\nGoEmotions test: {len(test.texts)} texts ({counts}); thresholds chosen on dev "
        f"({len(dev.texts)} texts); model {args.model}"
    )
    print("\n".join(table(rows)))
    print(f"\nTotal run {time.perf_counter() - started:.0f} s (embeddings cached in {args.cache}).")


def table(rows: list[Row]) -> list[str]:
    """Side by side: per target threshold, F1, precision, recall; then µs per message."""
    head = f"{'method':<{WIDTH}}"
    for target in TARGETS:
        head += f" | {target + ': thr':>13}{'F1':>7}{'P':>7}{'R':>7}"
    head += f" | {'µs/msg':>6}"
    lines = [head, "-" * len(head)]
    for row in rows:
        line = f"{row.method:<{WIDTH}}"
        for target in TARGETS:
            f1, p, r = row.figures[target]
            line += f" | {row.thresholds[target]:>13.3f}{f1:>7.3f}{p:>7.3f}{r:>7.3f}"
        lines.append(line + (f" | {row.micros:>6.0f}" if row.micros is not None else " |"))
    for method, f1s in (*REFERENCES, ("issue goal", GOALS)):
        line = f"{'(ref) ' + method:<{WIDTH}}"
        for target in TARGETS:
            line += f" | {'-':>13}{f1s[target]:>7.2f}{'-':>7}{'-':>7}"
        lines.append(line + " |")
    return lines


if __name__ == "__main__":
    main()
