"""The public-message classifier beside two baselines, on the public post set.

    HF_HUB_OFFLINE=1 python bench/public.py [--data data/public] [--config FILE] [--json PATH]

Trained on the packaged train split (``carebot/nlu/data/public_posts_train.jsonl``), measured on
``DATA/test.jsonl`` (frozen: never used for a choice); the rubric is ``data/public/README.md``.
One table from one run, side by side:

* keywords + VADER: the cue lists of :data:`carebot.nlu.public_posts.CUES` (written once from
  the rubric and a read of some train rows, never tuned) and VADER's compound, by hand-written
  rules (:func:`keyword_label`), no training;
* embeddings + LR: scikit-learn's ``LogisticRegression`` with its default settings (only
  ``max_iter`` raised so that it converges) on the sentence embeddings;
* carebot: :class:`carebot.nlu.public_posts.PublicPostClassifier` as it ships.

Columns: macro F1 over the five classes; **worked recall**: the share of test rows labelled
care_request or complaint that are predicted care_request or complaint; F1 per class; the
median time per message to encode it (one text per call, the configured encoder) and to
classify it once encoded. Then precision / recall / F1 per class per row, the 5-fold
cross-validation figures on train (4 repeats) of the two trained rows, the goals, the published
anchors, and the agreement of the blind second labelling of test (``DATA/test_second.jsonl``,
fields ``id`` and ``label``) with the first, when that file is there.

The encoder is the one ``carebot serve`` loads (``[matcher]`` of ``--config``: the ONNX export
when there is a current one, else torch).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import cohen_kappa_score, precision_recall_fscore_support  # noqa: E402
from sklearn.model_selection import RepeatedStratifiedKFold  # noqa: E402
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer  # noqa: E402

from carebot.config import load_settings  # noqa: E402
from carebot.exceptions import CarebotError  # noqa: E402
from carebot.models import PublicCategory  # noqa: E402
from carebot.nlu.public_posts import (  # noqa: E402
    CLASSES,
    PACKAGED_TRAIN,
    PostModel,
    PublicPostClassifier,
    cue_counts,
)

GOAL_MACRO_F1, GOAL_WORKED_RECALL = 0.80, 0.90
GOALS = f"goals (issue 18): macro F1 >= {GOAL_MACRO_F1:.2f}, worked recall >= {GOAL_WORKED_RECALL}"
ANCHORS = (
    "published anchors (other data: tweets): complaint detection up to 79 F1 with distant "
    "supervision (Preotiuc-Pietro et al., ACL 2019); macro F1 up to 87 with transformers "
    "(Jin & Aletras 2020)"
)
NAMES = [label.value for label in CLASSES]
Predict = Callable[[Sequence[str], np.ndarray], list[PublicCategory]]


class BenchError(Exception):
    """Bad input: a file or a row, named with how to fix it."""


def read_rows(path: Path) -> list[dict[str, str]]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise BenchError(f"cannot read {path}: {exc}") from exc


# ---- the three classifiers


def keyword_label(text: str, vader: SentimentIntensityAnalyzer) -> PublicCategory:
    """The keywords + VADER baseline: the rubric's order (spam > complaint > care_request >
    praise > chatter), a class when one of its cues is there; VADER's compound decides
    complaint (<= -0.3) and praise (>= 0.5) without a cue; a question mark is a care request."""
    cues = cue_counts(text)
    compound = vader.polarity_scores(text)["compound"]
    if cues[PublicCategory.SPAM]:
        return PublicCategory.SPAM
    if cues[PublicCategory.COMPLAINT] or compound <= -0.3:
        return PublicCategory.COMPLAINT
    if cues[PublicCategory.CARE_REQUEST] or "?" in text:
        return PublicCategory.CARE_REQUEST
    if cues[PublicCategory.PRAISE] or compound >= 0.5:
        return PublicCategory.PRAISE
    return PublicCategory.CHATTER


def keywords() -> Predict:
    vader = SentimentIntensityAnalyzer()
    return lambda texts, _: [keyword_label(t, vader) for t in texts]


def plain_lr(
    texts: Sequence[str], labels: Sequence[PublicCategory], vectors: np.ndarray
) -> Predict:
    """Logistic regression, default settings, on the embeddings alone."""
    model = LogisticRegression(max_iter=1000).fit(vectors, [CLASSES.index(x) for x in labels])
    return lambda _, v: [CLASSES[i] for i in model.predict(v)]


def shipped(texts: Sequence[str], labels: Sequence[PublicCategory], vectors: np.ndarray) -> Predict:
    return PostModel.fit(texts, labels, vectors).predict


# ---- figures


def worked_recall(truth: Sequence[PublicCategory], predicted: Sequence[PublicCategory]) -> float:
    """Share of rows labelled care_request or complaint predicted care_request or complaint."""
    pairs = [(t, p) for t, p in zip(truth, predicted, strict=True) if t.worked]
    return sum(p.worked for _, p in pairs) / len(pairs) if pairs else 0.0


def figures(truth: Sequence[PublicCategory], predicted: Sequence[PublicCategory]) -> dict:
    p, r, f, _ = precision_recall_fscore_support(
        [x.value for x in truth], [x.value for x in predicted], labels=NAMES, zero_division=0
    )
    return {
        "macro_f1": float(np.mean(f)),
        "worked_recall": worked_recall(truth, predicted),
        "per_class": {
            n: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i])}
            for i, n in enumerate(NAMES)
        },
    }


def cross_validation(
    fit: Callable[..., Predict], texts: list[str], labels: list[PublicCategory], vectors: np.ndarray
) -> dict:
    """Stratified 5-fold, 4 repeats, on train: mean and standard deviation over the folds."""
    macro, worked, per_class = [], [], []
    folds = RepeatedStratifiedKFold(n_splits=5, n_repeats=4, random_state=0)
    for train, held in folds.split(vectors, [x.value for x in labels]):
        predict = fit([texts[i] for i in train], [labels[i] for i in train], vectors[train])
        got = figures([labels[i] for i in held], predict([texts[i] for i in held], vectors[held]))
        macro.append(got["macro_f1"])
        worked.append(got["worked_recall"])
        per_class.append([got["per_class"][n]["f1"] for n in NAMES])
    return {
        "macro_f1": float(np.mean(macro)),
        "macro_f1_std": float(np.std(macro)),
        "worked_recall": float(np.mean(worked)),
        "per_class_f1": dict(zip(NAMES, np.mean(per_class, axis=0).tolist(), strict=True)),
    }


def median_ms(run: Callable[[int], object], count: int) -> float:
    times = []
    for i in range(count):
        started = time.perf_counter()
        run(i)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


# ---- agreement of the second labelling


def agreement(data: Path, test: list[dict[str, str]]) -> dict | None:
    """Raw agreement and Cohen's kappa of ``test_second.jsonl`` with test's labels, overall and
    per label (that label against the rest); None when the file is not there."""
    path = data / "test_second.jsonl"
    if not path.is_file():
        return None
    second = {row["id"]: row["label"] for row in read_rows(path)}
    first = {row["id"]: row["label"] for row in test}
    if set(second) != set(first) or not set(second.values()) <= set(NAMES):
        raise BenchError(f"{path}: needs exactly test's ids, each with a label among {NAMES}")
    ids = sorted(first)
    a, b = [first[i] for i in ids], [second[i] for i in ids]
    out = {"rows": len(ids), "raw": _raw(a, b), "kappa": float(cohen_kappa_score(a, b))}
    for name in NAMES:
        x, y = [v == name for v in a], [v == name for v in b]
        out[name] = {"raw": _raw(x, y), "kappa": float(cohen_kappa_score(x, y))}
    return out


def _raw(a: Sequence[object], b: Sequence[object]) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def agreement_lines(found: dict | None) -> list[str]:
    if found is None:
        return ["agreement (blind second labelling of test, test_second.jsonl): not available"]
    lines = [
        f"agreement (blind second labelling of test, {found['rows']} rows): raw "
        f"{found['raw']:.3f}, Cohen's kappa {found['kappa']:.3f}",
        "| label | raw | kappa |",
        "|---|---|---|",
    ]
    lines += [f"| {n} | {found[n]['raw']:.3f} | {found[n]['kappa']:.3f} |" for n in NAMES]
    return lines


# ---- the run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "public", help="test folder")
    parser.add_argument("--config", type=Path, default=ROOT / "config.toml")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    try:
        run(args)
    except (BenchError, CarebotError) as exc:
        parser.exit(2, f"error: {exc}\n")


def run(args: argparse.Namespace) -> None:
    from carebot.nlu.public_posts import load_rows
    from carebot.runtime import load_encoder

    train = load_rows(PACKAGED_TRAIN)
    test_rows = read_rows(args.data / "test.jsonl")
    test = load_rows(args.data / "test.jsonl")
    settings = load_settings(args.config)
    encoder = load_encoder(settings, say=lambda text: print(text, file=sys.stderr))
    print(f"encoder: {settings.matcher.model} ({type(encoder).__name__})")
    texts, labels = [r.text for r in train], [r.label for r in train]
    train_vectors = encoder.encode(texts)
    test_texts, truth = [r.text for r in test], [r.label for r in test]
    test_vectors = encoder.encode(test_texts)
    encode_ms = median_ms(lambda i: encoder.encode([test_texts[i]]), len(test_texts))
    carebot = PublicPostClassifier.trained(encoder, train)
    rows = {
        "keywords + VADER": (keywords(), None, None),
        "embeddings + LR (defaults)": (plain_lr(texts, labels, train_vectors), plain_lr, encode_ms),
        "carebot (shipped)": (
            lambda t, v: [carebot.classify(x, y) for x, y in zip(t, v, strict=True)],
            shipped,
            encode_ms,
        ),
    }
    results = {}
    for name, (predict, fit, encode) in rows.items():
        one = lambda i, p=predict: p([test_texts[i]], test_vectors[i : i + 1])  # noqa: E731
        results[name] = figures(truth, predict(test_texts, test_vectors)) | {
            "encode_ms": encode,
            "classify_ms": median_ms(one, len(test_texts)),
            "cv": cross_validation(fit, texts, labels, train_vectors) if fit else None,
        }
    found = agreement(args.data, test_rows)
    report(args, len(train), truth, results, found)


def report(
    args: argparse.Namespace,
    train: int,
    truth: list[PublicCategory],
    results: dict[str, dict],
    found: dict | None,
) -> None:
    counts = {n: sum(t.value == n for t in truth) for n in NAMES}
    split = ", ".join(f"{k} {v}" for k, v in counts.items())
    print(f"train: {PACKAGED_TRAIN.relative_to(ROOT)}, {train} rows")
    print(f"test: {args.data / 'test.jsonl'}, {len(truth)} rows ({split})\n")
    print("\n".join(table(results)))
    print(f"\n{GOALS} (met: ✓)\n{ANCHORS}\n")
    print("\n".join(detail(results)) + "\n")
    print("\n".join(cv_lines(results)) + "\n")
    print("\n".join(agreement_lines(found)))
    if args.json:
        data = {"test": str(args.data / "test.jsonl"), "labels": counts, "goals": GOALS}
        data |= {"anchors": ANCHORS, "rows": results, "agreement": found}
        args.json.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def table(results: dict[str, dict]) -> list[str]:
    head = ["macro F1", "worked recall", *(f"F1 {n}" for n in NAMES), "encode ms", "classify ms"]
    lines = ["| test | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for name, r in results.items():
        cells = [
            f"{r['macro_f1']:.3f}" + (" ✓" if r["macro_f1"] >= GOAL_MACRO_F1 else ""),
            f"{r['worked_recall']:.3f}"
            + (" ✓" if r["worked_recall"] >= GOAL_WORKED_RECALL else ""),
            *(f"{r['per_class'][n]['f1']:.3f}" for n in NAMES),
            "-" if r["encode_ms"] is None else f"{r['encode_ms']:.1f}",
            f"{r['classify_ms']:.2f}",
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def detail(results: dict[str, dict]) -> list[str]:
    lines = ["per class on test: precision / recall / F1", "| test | " + " | ".join(NAMES) + " |"]
    lines.append("|---" * (len(NAMES) + 1) + "|")
    for name, r in results.items():
        cells = [
            "{precision:.2f} / {recall:.2f} / {f1:.2f}".format(**r["per_class"][n]) for n in NAMES
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def cv_lines(results: dict[str, dict]) -> list[str]:
    lines = ["cross-validation on train (stratified 5-fold, 4 repeats; mean over the 20 folds)"]
    lines.append("| train CV | macro F1 | worked recall | " + " | ".join(NAMES) + " |")
    lines.append("|---" * (len(NAMES) + 3) + "|")
    for name, r in results.items():
        cv = r["cv"]
        if cv is None:
            continue
        cells = [
            f"{cv['macro_f1']:.3f} ± {cv['macro_f1_std']:.3f}",
            f"{cv['worked_recall']:.3f}",
            *(f"{cv['per_class_f1'][n]:.2f}" for n in NAMES),
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


if __name__ == "__main__":
    main()
