"""Matching quality: carebot's matcher against the usual baselines, on public intent datasets.

    python bench/quality.py DATA_DIR [--datasets clinc150,banking77,banking77-10shot]
                            [--cache DIR] [--model NAME] [--repeats N]

DATA_DIR holds ``clinc150/data_full.json`` and ``banking77/{train,test}.csv`` (see their
READMEs). Per dataset one table compares, with the same sentence model:

* carebot (classifier + similarity, the default) and carebot (nearest neighbour):
  ``carebot.nlu.matcher.Matcher`` as it is with each ``method``, built from the training examples
  as in-memory intents; confidence = the best intent's score;
* TF-IDF + logistic regression; confidence = the highest class probability;
* embeddings + logistic regression; confidence = the highest class probability.

Columns: accuracy, coverage@P (P = 0.95, 0.97, 0.99), and for CLINC150 the out-of-scope recall
and the auto-answer precision on test at the 0.97 operating point, whose threshold is chosen on
val + oos_val (never on test). Metrics are those of ``carebot.nlu.evaluation`` (DESIGN.md
section 7).
With ``--tune``, ``carebot intents tune`` also fine-tunes the model on each training set
(cached under ``--cache``) and the default matcher runs on the tuned embeddings.
"fit s" is learning from the features (median of ``--repeats`` fits); "encode s" is turning all
texts (training examples and evaluated rows) into features. Sentence embeddings are cached as
.npy per split and model under ``--cache`` with the time they took to encode
(``carebot.nlu.dataset_embeddings``), so a rerun skips the model and reports the recorded time.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from carebot.nlu.dataset_embeddings import DatasetEmbeddings, progress_bars  # noqa: E402
from carebot.nlu.evaluation import (  # noqa: E402
    Predictions,
    accuracy,
    auto_precision,
    coverage_at,
    oos_recall,
    threshold_for,
)
from carebot.nlu.intents import Intent, IntentSet  # noqa: E402
from carebot.nlu.matcher import Matcher  # noqa: E402

TARGETS = (0.95, 0.97, 0.99)
OPERATING_PRECISION = 0.97
SEED = 42
LR_C = 10.0  # inverse regularisation of both logistic regressions
CHUNK = 512  # texts per matcher call
WIDTH = 52  # of the method column

# Figures measured or published elsewhere (DESIGN.md section 7, issue 5): (method, accuracy,
# coverage@0.97), printed under each table so one run shows ours and the baselines side by side.
REFERENCES: dict[str, list[tuple[str, float, float | None]]] = {
    "clinc150": [
        ("DESIGN §7: nearest neighbour", 0.880, 0.42),
        ("DESIGN §7: TF-IDF + logistic regression", 0.912, 0.58),
        ("DESIGN §7: embeddings + logistic regression", 0.955, 0.74),
        ("Larson et al. 2019: BERT fine-tuned", 0.969, None),
        ("issue 5 goal", 0.965, 0.77),
    ],
    "banking77": [
        ("DESIGN §7: nearest neighbour", 0.921, 0.41),
        ("DESIGN §7: embeddings + logistic regression", 0.932, 0.89),
        ("Casanueva et al. 2020: BERT-large", 0.937, None),
        ("Casanueva et al. 2020: USE+ConveRT", 0.934, None),
        ("issue 5 goal", 0.94, None),
    ],
    "banking77-10shot": [
        ("Casanueva et al. 2020: USE+ConveRT 10-shot", 0.852, None),
        ("issue 5 goal", 0.86, None),
    ],
}

T = TypeVar("T")


@dataclass(frozen=True)
class Split:
    name: str  # e.g. "clinc150/test"; names the cached embeddings
    texts: list[str]
    labels: list[str | None]  # None: out of scope


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    test: Split
    val: Split | None = None  # where the operating point for out-of-scope recall is chosen

    @property
    def splits(self) -> list[Split]:
        return [self.train, self.test] + ([self.val] if self.val else [])


@dataclass(frozen=True)
class Embedded:
    """The sentence embeddings of a dataset's splits and the seconds each took to encode."""

    vectors: dict[str, np.ndarray]  # split name -> one row per text
    seconds: dict[str, float]

    def encode_s(self, data: Dataset) -> float:
        return sum(self.seconds[split.name] for split in data.splits)


@dataclass(frozen=True)
class Outcome:
    """One method on one dataset: its predictions and what it cost."""

    method: str
    test: Predictions
    val: Predictions | None
    fit_s: float
    encode_s: float


def _split(name: str, pairs: Sequence[Sequence[str]]) -> Split:
    labels = [None if label in ("oos", "") else label for _, label in pairs]
    return Split(name, [text for text, _ in pairs], labels)


def load_clinc150(data_dir: Path) -> Dataset:
    """Train on ``train`` (in-scope only); evaluate on test + oos_test; choose on val + oos_val."""
    data = json.loads((data_dir / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    return Dataset(
        "clinc150",
        train=_split("clinc150/train", data["train"]),
        test=_split("clinc150/test", data["test"] + data["oos_test"]),
        val=_split("clinc150/val", data["val"] + data["oos_val"]),
    )


def _read_csv(path: Path, name: str) -> Split:
    with path.open(encoding="utf-8", newline="") as handle:
        return _split(name, [(row["text"], row["category"]) for row in csv.DictReader(handle)])


def load_banking77(data_dir: Path, shots: int | None = None) -> Dataset:
    """Train -> test; with ``shots``, that many training examples per intent (seed 42)."""
    train = _read_csv(data_dir / "banking77" / "train.csv", "banking77/train")
    test = _read_csv(data_dir / "banking77" / "test.csv", "banking77/test")
    if shots is None:
        return Dataset("banking77", train, test)
    return Dataset(f"banking77-{shots}shot", few_shot(train, shots, SEED), test)


def few_shot(split: Split, shots: int, seed: int) -> Split:
    """``shots`` examples of each intent, drawn without replacement, intents in name order."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(split.labels):
        rows[str(label)].append(i)
    chosen = sorted(
        i for label in sorted(rows) for i in rng.choice(rows[label], shots, replace=False).tolist()
    )
    name = f"{split.name}-{shots}shot-seed{seed}"
    return Split(name, [split.texts[i] for i in chosen], [split.labels[i] for i in chosen])


DATASETS: dict[str, Callable[[Path], Dataset]] = {
    "clinc150": load_clinc150,
    "banking77": load_banking77,
    "banking77-10shot": lambda data_dir: load_banking77(data_dir, shots=10),
}


class Precomputed:
    """An :class:`carebot.nlu.encoder.Encoder` that returns embeddings computed beforehand."""

    model_id = "precomputed"

    def __init__(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        self._rows = dict(zip(texts, vectors, strict=True))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._rows[text] for text in texts])


def timed_median(build: Callable[[], T], repeats: int) -> tuple[T, float]:
    """The last result of ``build`` and the median of its wall times over ``repeats`` runs."""
    times, result = [], None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = build()
        times.append(time.perf_counter() - start)
    assert result is not None
    return result, statistics.median(times)


def _intents(train: Split) -> IntentSet:
    examples: dict[str, list[str]] = defaultdict(list)
    for text, label in zip(train.texts, train.labels, strict=True):
        examples[str(label)].append(text)
    return IntentSet(
        tuple(Intent(label, tuple(texts), answer="") for label, texts in examples.items())
    )


def carebot_matcher(method: str) -> Callable[[Dataset, Embedded, int], Outcome]:
    """carebot's Matcher with ``method`` on the training examples; confidence = the best
    intent's score."""

    def run(data: Dataset, embedded: Embedded, repeats: int) -> Outcome:
        vectors = embedded.vectors
        encoder = Precomputed(data.train.texts, vectors[data.train.name])
        intents = _intents(data.train)
        matcher, fit_s = timed_median(
            lambda: Matcher(encoder=encoder, intents=intents, method=method), repeats
        )
        return _matcher_outcome(f"carebot ({LABELS[method]})", matcher, data, embedded, fit_s)

    return run


LABELS = {"classifier": "classifier + similarity, default", "nearest": "nearest neighbour"}


def _matcher_outcome(
    method: str, matcher: Matcher, data: Dataset, embedded: Embedded, fit_s: float
) -> Outcome:
    vectors = embedded.vectors

    def predict(split: Split) -> Predictions:
        matches = []
        for offset in range(0, len(split.texts), CHUNK):
            matches += matcher.match_vectors(vectors[split.name][offset : offset + CHUNK])
        return Predictions(
            split.labels,
            [m.best.intent if m.best else "" for m in matches],
            [m.score for m in matches],
        )

    val = predict(data.val) if data.val else None
    test = predict(data.test)
    return Outcome(method, test, val, fit_s, embedded.encode_s(data))


def _logistic_regression() -> LogisticRegression:
    return LogisticRegression(C=LR_C, max_iter=2000)


def _predict(model: LogisticRegression, features: Any, split: Split) -> Predictions:
    proba = model.predict_proba(features)
    return Predictions(split.labels, model.classes_[proba.argmax(axis=1)].tolist(), proba.max(1))


def tfidf_lr(data: Dataset, embedded: Embedded, repeats: int) -> Outcome:
    """Word 1-2 gram TF-IDF (sublinear tf) and a logistic regression over the intents."""
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    start = time.perf_counter()
    vectorizer.fit(data.train.texts)
    features = {s.name: vectorizer.transform(s.texts) for s in data.splits}
    encode_s = time.perf_counter() - start
    labels = data.train.labels
    model, fit_s = timed_median(
        lambda: _logistic_regression().fit(features[data.train.name], labels), repeats
    )
    val = _predict(model, features[data.val.name], data.val) if data.val else None
    test = _predict(model, features[data.test.name], data.test)
    return Outcome("TF-IDF + logistic regression", test, val, fit_s, encode_s)


def embeddings_lr(data: Dataset, embedded: Embedded, repeats: int) -> Outcome:
    """A logistic regression over the intents on the sentence embeddings."""
    vectors, labels = embedded.vectors, data.train.labels
    model, fit_s = timed_median(
        lambda: _logistic_regression().fit(vectors[data.train.name], labels), repeats
    )
    val = _predict(model, vectors[data.val.name], data.val) if data.val else None
    test = _predict(model, vectors[data.test.name], data.test)
    return Outcome("embeddings + logistic regression", test, val, fit_s, embedded.encode_s(data))


METHODS = (carebot_matcher("classifier"), carebot_matcher("nearest"), tfidf_lr, embeddings_lr)


def describe(data: Dataset) -> str:
    def rows(split: Split) -> str:
        oos = sum(label is None for label in split.labels)
        return f"{len(split.texts) - oos} in-scope" + (f" + {oos} out-of-scope" if oos else "")

    intents = len(set(data.train.labels))
    text = f"{data.name}: {len(data.train.texts)} training examples, {intents} intents; "
    text += f"test {rows(data.test)}"
    return text + (f"; operating point chosen on val {rows(data.val)}" if data.val else "")


def table(data: Dataset, outcomes: list[Outcome]) -> list[str]:
    head = f"{'method':<{WIDTH}}{'accuracy':>9}" + "".join(f"{f'cov@{p}':>10}" for p in TARGETS)
    if data.val:
        head += f"{'oos rec@op':>11}{'prec@op':>9}"
    lines = [head + f"{'fit s':>8}{'encode s':>10}", "-" * len(head + " " * 18)]
    for o in outcomes:
        line = f"{o.method:<{WIDTH}}{accuracy(o.test):>9.3f}"
        line += "".join(f"{coverage_at(o.test, p):>10.3f}" for p in TARGETS)
        if o.val:
            threshold = threshold_for(o.val, OPERATING_PRECISION)
            line += f"{oos_recall(o.test, threshold):>11.3f}"
            line += f"{auto_precision(o.test, threshold):>9.3f}"
        lines.append(line + f"{o.fit_s:>8.2f}{o.encode_s:>10.1f}")
    if data.val:
        thresholds = ", ".join(
            f"{o.method} {threshold_for(o.val, OPERATING_PRECISION):.3f}" for o in outcomes if o.val
        )
        lines.append(f"op = threshold at precision {OPERATING_PRECISION} on val: {thresholds}")
    for method, acc, cov in REFERENCES.get(data.name, []):
        cov_text = f"{cov:.2f}" if cov is not None else "-"
        lines.append(f"{'  (ref) ' + method:<{WIDTH}}{acc:>9.3f}{'-':>10}{cov_text:>10}{'-':>10}")
    return lines


def tuned_outcome(data: Dataset, embeddings_cache: Path, model: str, repeats: int) -> Outcome:
    """``carebot intents tune`` on the training examples (the tuned model is cached), then the
    default matcher on the tuned model's embeddings. "fit s" adds the tuning time."""
    from carebot.nlu.tuning import shown_on, tune

    digest = hashlib.sha256("\n".join([model, *data.train.texts]).encode()).hexdigest()[:12]
    folder = embeddings_cache / f"tuned-{data.name}-{digest}"
    record = folder / "carebot-tune.json"
    if not record.exists():
        with tqdm(desc=f"tuning on {data.train.name}", unit="step") as bar:
            tuned = tune(_intents(data.train), model, folder, progress=shown_on(bar))
        record.write_text(json.dumps({"seconds": tuned.seconds, "steps": tuned.steps}))
    tune_s = json.loads(record.read_text())["seconds"]
    tuned_embeddings = DatasetEmbeddings.of_model(embeddings_cache, str(folder), progress_bars())
    embedded = embed(tuned_embeddings, data)
    outcome = carebot_matcher("classifier")(data, embedded, repeats)
    return Outcome(
        "carebot (classifier, tuned model)",
        outcome.test,
        outcome.val,
        outcome.fit_s + tune_s,
        outcome.encode_s,
    )


def embed(embeddings: DatasetEmbeddings, data: Dataset) -> Embedded:
    embedded = Embedded({}, {})
    for split in data.splits:
        vectors, seconds = embeddings.of(split.name, split.texts)
        embedded.vectors[split.name], embedded.seconds[split.name] = vectors, seconds
    return embedded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="folder with clinc150/ and banking77/")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated")
    parser.add_argument("--cache", type=Path, default=ROOT / ".carebot" / "bench-cache")
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--repeats", type=int, default=3, help="fits per method (median shown)")
    parser.add_argument(
        "--tune", action="store_true", help="also fine-tune the model per dataset (minutes)"
    )
    args = parser.parse_args()
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        parser.error(f"unknown dataset(s) {', '.join(unknown)}; known: {', '.join(DATASETS)}")
    started = time.perf_counter()
    embeddings = DatasetEmbeddings.of_model(args.cache, args.model, progress_bars())
    for name in names:
        data = DATASETS[name](args.data_dir)
        embedded = embed(embeddings, data)
        outcomes = [method(data, embedded, args.repeats) for method in METHODS]
        if args.tune:
            outcomes.insert(1, tuned_outcome(data, args.cache, args.model, args.repeats))
        print(f"\n{describe(data)}; model {args.model}")
        print("\n".join(table(data, outcomes)))
    print(
        f"\nencode s for the embedding methods is the sentence model's time when the split was "
        f"first encoded (cached in {args.cache}). Total run {time.perf_counter() - started:.0f} s."
    )


if __name__ == "__main__":
    main()
