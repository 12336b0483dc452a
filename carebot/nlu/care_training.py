"""Training the care emotion head (``carebot emotion train-care``): what ships as the signal.

The head (format in :mod:`carebot.nlu.emotion_head`) has two outputs, read from the care upset
set's labels (:mod:`carebot.nlu.care_set`): ``upset`` (a person should take over) and
``frustrated`` (mild or upset: a kind word helps). What it does:

1. takes the care set's ``train`` split, plus calm customer questions: :data:`CALM_ROWS`
   drawn from each of BANKING77 train and CLINC150 train (a care team's questions are mostly
   calm, and these teach the head that a plain question is not upset), and holds out another
   :data:`HELD_OUT` of each to measure how many calm questions a choice would flag; and all of
   CLINC150's small talk (:data:`SOCIAL`: a greeting, a thanks or a goodbye is not upset);
2. per output, for every setting in :data:`GRID`: 5-fold cross-validation over the care rows
   (the calm questions always train, at a lower weight) of a logistic regression over
   [sentence embedding, standardised VADER scores and the capitals / "!!" cues] and one over
   TF-IDF words, their logits mixed;
3. chooses per output the setting and the threshold on the cross-validated logits: for
   ``upset``, the best F1 among thresholds that keep recall at :data:`UPSET_RECALL` or more
   (missing an angry customer costs more than an extra handoff) and flag at most
   :data:`MAX_CALM_FLAGGED` of the held-out calm questions; for ``frustrated``, the best F1;
4. fits the chosen settings on all rows and shifts each output's logit so that 0.5 is the
   chosen threshold: ``[emotion] threshold = 0.5`` and ``mild_threshold = 0.5`` are those points;
5. saves the weights (.npz, no pickle) and a provenance note (.md) beside them, reloads the file
   through :class:`carebot.nlu.emotion.EmotionScorer` and checks it gives training's logits.

The care set's ``test`` split is never read here: ``bench/upset.py`` reports on it.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from carebot.config import EmotionSettings
from carebot.nlu.care_set import CareSplit, load_split
from carebot.nlu.dataset_embeddings import DatasetEmbeddings
from carebot.nlu.emotion import EmotionScorer, text_features
from carebot.nlu.emotion_head import FEATURES, FORMAT, EmotionHeadError
from carebot.nlu.evaluation import f1_precision_recall
from carebot.nlu.question_sets import banking77, clinc150, clinc150_domain

SEED = 0
FOLDS = 5
CALM_ROWS = 6000  # calm questions drawn from each corpus for training
HELD_OUT = 2000  # and held out from each, to measure how many calm questions a choice flags
# CLINC150's small talk (greetings, thanks, goodbyes, "are you a bot?"): all of it learns, at
# SOCIAL_WEIGHT (a care row weighs 1), so that "thanks, bye" is as calm as it reads (the care set
# has few such lines, and its upset ones often end in "bye")
SOCIAL = "clinc150/small_talk"
SOCIAL_WEIGHT = 0.5
# (C of the embedding model, weight of a calm question against a care row, share of the words)
GRID = tuple(itertools.product((3.0, 10.0), (0.1, 0.3), (0.5, 0.7)))
WORDS_C = 10.0
UPSET_RECALL = 0.88
MAX_CALM_FLAGGED = 0.01
OUTPUTS = ("upset", "frustrated")
TOLERANCE = 1e-3  # largest |logit difference| between the reloaded file and training

Say = Callable[[str], None]


@dataclass(frozen=True, eq=False)
class Rows:
    """Texts with their embeddings and standardised text features."""

    texts: list[str]
    vectors: np.ndarray
    features: np.ndarray  # raw, in FEATURES order
    social: np.ndarray | None = None  # (rows,) bool: small talk, weighed as a care row


@dataclass(frozen=True)
class Chosen:
    """One output's setting and threshold, with its cross-validated figures."""

    output: str
    c: float
    calm_weight: float
    words: float
    threshold: float  # on the mixed logit
    f1: float
    precision: float
    recall: float
    calm_flagged: float  # share of the held-out calm questions at or above the threshold


def calm_questions(data_dir: Path) -> dict[str, list[str]]:
    """The training questions of BANKING77 (``banking77/train.csv``) and CLINC150
    (``clinc150/data_full.json``, in-scope ``train``) under ``data_dir``; CLINC150's small talk
    (the ``small_talk`` intents of ``clinc150/domains.json``: greetings, thanks, goodbyes...)
    apart, as :data:`SOCIAL`."""
    clinc_rows = clinc150(data_dir, "train")
    social = clinc150_domain(data_dir, "small_talk")
    return {
        "banking77/train": banking77(data_dir, "train"),
        "clinc150/train": [text for text, intent in clinc_rows if intent not in social],
        SOCIAL: [text for text, intent in clinc_rows if intent in social],
    }


def train_care_head(
    care_dir: Path,
    data_dir: Path,
    embeddings: DatasetEmbeddings,
    out: Path,
    *,
    model: str,
    say: Say = lambda _: None,
) -> list[Chosen]:
    """Train on the care set's train split and the calm questions, write the head to ``out``
    (and its note), and return what cross-validation chose per output."""
    care = load_split(care_dir, "train")
    say(f"care train: {len(care.texts)} messages; {care.counts()}")
    vader = SentimentIntensityAnalyzer()

    def rows(name: str, texts: list[str]) -> Rows:
        vectors = embeddings.of(name, texts)[0]
        features = np.array([_features(text, vader) for text in texts])
        return Rows(texts, vectors, features.astype(np.float32))

    calm_train, calm_held = _calm_rows(calm_questions(data_dir), embeddings, rows)
    say(f"calm questions: {len(calm_train.texts)} to learn from, {len(calm_held.texts)} held out")
    care_rows = rows(care.name, care.texts)
    mean = care_rows.features.mean(0)
    scale = care_rows.features.std(0) + 1e-6
    chosen = [
        _choose(output, care, care_rows, calm_train, calm_held, (mean, scale), say)
        for output in OUTPUTS
    ]
    fitted = [_fit(c, care.target(c.output), care_rows, calm_train, (mean, scale)) for c in chosen]
    arrays = _arrays(model, fitted, chosen, mean, scale)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    say(f"saved {out} ({out.stat().st_size / 1024:.0f} KiB)")
    _verify(out, care, care_rows, fitted, chosen, (mean, scale), say)
    social = int(calm_train.social.sum()) if calm_train.social is not None else 0
    counts = (len(calm_train.texts) - social, len(calm_held.texts), social)
    write_note(out, model, care, chosen, counts)
    return chosen


def _calm_rows(
    corpora: dict[str, list[str]], embeddings: DatasetEmbeddings, rows: Callable[..., Rows]
) -> tuple[Rows, Rows]:
    rng = np.random.default_rng(SEED)
    train: list[tuple[list[str], np.ndarray]] = []
    held: list[tuple[list[str], np.ndarray]] = []
    social: list[bool] = []
    for name, texts in corpora.items():
        order = rng.permutation(len(texts))
        vectors = embeddings.of(name, texts)[0]
        if name == SOCIAL:  # all of it learns; too short a list to hold any out
            train.append((list(texts), vectors))
            social += [True] * len(texts)
            continue
        for part, picked in ((train, order[:CALM_ROWS]), (held, order[-HELD_OUT:])):
            chosen = [texts[i] for i in picked]
            part.append((chosen, vectors[picked]))
        social += [False] * len(order[:CALM_ROWS])
    vader = SentimentIntensityAnalyzer()

    def join(parts: list[tuple[list[str], np.ndarray]], mask: list[bool] | None) -> Rows:
        texts = [t for chosen, _ in parts for t in chosen]
        features = np.array([_features(t, vader) for t in texts])
        vectors = np.vstack([v for _, v in parts])
        flags = None if mask is None else np.array(mask, dtype=bool)
        return Rows(texts, vectors, features.astype(np.float32), flags)

    return join(train, social), join(held, None)


def _folds(labels: list[str]) -> list[np.ndarray]:
    """Stratified folds of the care rows (by label), fixed by :data:`SEED`."""
    rng = np.random.default_rng(SEED)
    folds: list[list[int]] = [[] for _ in range(FOLDS)]
    for label in sorted(set(labels)):
        rows = rng.permutation([i for i, x in enumerate(labels) if x == label])
        for k, i in enumerate(rows):
            folds[k % FOLDS].append(int(i))
    return [np.array(sorted(f)) for f in folds]


def _choose(
    output: str,
    care: CareSplit,
    care_rows: Rows,
    calm: Rows,
    held: Rows,
    scaling: tuple[np.ndarray, np.ndarray],
    say: Say,
) -> Chosen:
    truth = care.target(output)
    folds = _folds(care.labels)
    best: Chosen | None = None
    for c, calm_weight, words in GRID:
        logits = np.zeros(len(care.texts))
        held_logits = np.zeros(len(held.texts))
        for fold in folds:
            train = np.setdiff1d(np.arange(len(care.texts)), fold)
            setting = Chosen(output, c, calm_weight, words, 0.0, 0.0, 0.0, 0.0, 0.0)
            fitted = _fit(setting, truth, care_rows, calm, scaling, rows=train)
            logits[fold] = fitted.logits(_subset(care_rows, fold), scaling)
            held_logits += fitted.logits(held, scaling) / FOLDS
        candidate = _threshold(output, c, calm_weight, words, logits, truth, held_logits)
        if candidate is not None and (best is None or candidate.f1 > best.f1):
            best = candidate
    if best is None:
        raise EmotionHeadError(
            f"No setting reaches recall {UPSET_RECALL} on {output} while flagging at most "
            f"{MAX_CALM_FLAGGED:.0%} of the held-out calm questions"
        )
    say(
        f"{output}: C={best.c}, calm weight {best.calm_weight}, words {best.words}; "
        f"cross-validated F1 {best.f1:.3f} (P {best.precision:.3f}, R {best.recall:.3f}); "
        f"held-out calm questions flagged {best.calm_flagged:.2%}"
    )
    return best


def _threshold(
    output: str,
    c: float,
    calm_weight: float,
    words: float,
    logits: np.ndarray,
    truth: np.ndarray,
    held: np.ndarray,
) -> Chosen | None:
    best: Chosen | None = None
    for t in np.unique(logits):
        f1, p, r = f1_precision_recall(logits >= t, truth)
        flagged = float((held >= t).mean())
        if output == "upset" and (r < UPSET_RECALL or flagged > MAX_CALM_FLAGGED):
            continue
        if best is None or f1 > best.f1:
            best = Chosen(output, c, calm_weight, words, float(t), f1, p, r, flagged)
    return best


@dataclass(frozen=True, eq=False)
class Fitted:
    """One output's two fitted models and their mix."""

    vectors: Any  # LogisticRegression over [embedding, standardised features]
    vectorizer: Any  # TfidfVectorizer
    lexical: Any  # LogisticRegression over TF-IDF words
    words: float

    def logits(self, rows: Rows, scaling: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        dense = self.vectors.decision_function(_inputs(rows, scaling))
        lexical = self.lexical.decision_function(self.vectorizer.transform(rows.texts))
        return np.asarray((1 - self.words) * dense + self.words * lexical)


def _fit(
    setting: Chosen,
    truth: np.ndarray,
    care_rows: Rows,
    calm: Rows,
    scaling: tuple[np.ndarray, np.ndarray],
    rows: np.ndarray | None = None,
) -> Fitted:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    picked = np.arange(len(care_rows.texts)) if rows is None else rows
    care = _subset(care_rows, picked)
    texts = care.texts + calm.texts
    target = np.concatenate([truth[picked], np.zeros(len(calm.texts), dtype=bool)])
    social = calm.social if calm.social is not None else np.zeros(len(calm.texts), dtype=bool)
    calm_weight = np.where(social, SOCIAL_WEIGHT, setting.calm_weight)
    weight = np.concatenate([np.ones(len(picked)), calm_weight])
    inputs = np.vstack([_inputs(care, scaling), _inputs(calm, scaling)])
    dense = LogisticRegression(C=setting.c, max_iter=5000).fit(inputs, target, weight)
    vectorizer = TfidfVectorizer(sublinear_tf=True).fit(texts)
    lexical = LogisticRegression(C=WORDS_C, max_iter=5000)
    lexical.fit(vectorizer.transform(texts), target, weight)
    return Fitted(dense, vectorizer, lexical, setting.words)


def _features(text: str, vader: SentimentIntensityAnalyzer) -> list[float]:
    values = text_features(text, vader)
    return [values[name] for name in FEATURES]


def _inputs(rows: Rows, scaling: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    mean, scale = scaling
    return np.hstack([rows.vectors, (rows.features - mean) / scale])


def _subset(rows: Rows, picked: np.ndarray) -> Rows:
    return Rows([rows.texts[i] for i in picked], rows.vectors[picked], rows.features[picked])


def _arrays(
    model: str, fitted: list[Fitted], chosen: list[Chosen], mean: np.ndarray, scale: np.ndarray
) -> dict[str, Any]:
    """The weights file's arrays: one linear layer and one lexicon, each output's mix folded in,
    over the union of the outputs' vocabularies."""
    vocabulary = sorted({w for f in fitted for w in f.vectorizer.vocabulary_})
    row = {w: i for i, w in enumerate(vocabulary)}
    idf = np.zeros(len(vocabulary), dtype=np.float32)
    lexical = np.zeros((len(vocabulary), len(fitted)), dtype=np.float32)
    for k, f in enumerate(fitted):
        rows = [row[w] for w in f.vectorizer.get_feature_names_out()]
        idf[rows] = f.vectorizer.idf_  # the same texts, so the same idf for a shared word
        lexical[rows, k] = f.words * f.lexical.coef_[0]
    w0 = np.stack([(1 - f.words) * f.vectors.coef_[0] for f in fitted], 1)
    b0 = np.array([(1 - f.words) * f.vectors.intercept_[0] for f in fitted])
    return {
        "format": np.array(FORMAT),
        "encoder": np.array(model),
        "targets": np.array(OUTPUTS),
        "features": np.array(FEATURES),
        "feature_mean": mean.astype(np.float32),
        "feature_scale": scale.astype(np.float32),
        "w0": w0.astype(np.float32),
        "b0": b0.astype(np.float32),
        "vocabulary": np.array("\n".join(vocabulary)),
        "idf": idf,
        "lexical": lexical,
        "lexical_bias": np.array([f.words * f.lexical.intercept_[0] for f in fitted], np.float32),
        "shift": np.array([-c.threshold for c in chosen], dtype=np.float32),
    }


def _verify(
    out: Path,
    care: CareSplit,
    care_rows: Rows,
    fitted: list[Fitted],
    chosen: list[Chosen],
    scaling: tuple[np.ndarray, np.ndarray],
    say: Say,
) -> None:
    """Reload the file through EmotionScorer: the same logits as training (within
    :data:`TOLERANCE`), else :class:`EmotionHeadError`."""
    scorer = EmotionScorer(EmotionSettings(), head_weights=out)
    head = scorer.head
    assert head is not None
    vader = SentimentIntensityAnalyzer()
    for k, (f, c) in enumerate(zip(fitted, chosen, strict=True)):
        expected = f.logits(care_rows, scaling) - c.threshold
        got = np.array(
            [
                head.logits(v, np.array(_features(t, vader)), t)[k]
                for t, v in zip(care.texts, care_rows.vectors, strict=True)
            ]
        )
        gap = float(np.abs(got - expected).max())
        say(f"  reloaded head == training logits ({c.output}, care train): max |diff| {gap:.2e}")
        if not gap <= TOLERANCE:
            raise EmotionHeadError(
                f"The emotion head written to {out} does not reproduce training's {c.output} "
                f"logits (largest difference {gap:.2e}, tolerance {TOLERANCE})"
            )


def write_note(
    out: Path, model: str, care: CareSplit, chosen: list[Chosen], calm: tuple[int, int, int]
) -> Path:
    """The provenance note beside the weights; returns its path. ``calm``: how many calm
    questions it learnt from, how many were held out, and how many small-talk lines."""
    size, digest = out.stat().st_size, hashlib.sha256(out.read_bytes()).hexdigest()
    rows = "\n".join(
        f"| {c.output} | C={c.c}, calm weight {c.calm_weight}, words {c.words} | {c.f1:.3f} | "
        f"{c.precision:.3f} | {c.recall:.3f} | {c.calm_flagged:.2%} |"
        for c in chosen
    )
    counts = ", ".join(f"{n} {label}" for label, n in care.counts().items())
    text = f"""# Emotion head weights: provenance

`{out.name}` is the emotion head that `carebot.nlu.emotion.EmotionScorer` uses when it gets a
message's sentence embedding: format {FORMAT}, read by `carebot/nlu/emotion_head.py` with numpy
(no pickle); {size / 1024:.0f} KiB, sha256 `{digest}`.

- **Trained by:** `carebot emotion train-care DATA_DIR --model {model}` on
  {datetime.date.today().isoformat()} (`carebot/nlu/care_training.py`); deterministic (seed {SEED}).
- **Data:** the care upset set's train split (`data/care/train.jsonl`, written for carebot:
  {counts}), {calm[0]} calm customer questions drawn from BANKING77 train and CLINC150 train
  (at most {CALM_ROWS} of each; {calm[1]} more held out to measure how many calm questions are
  flagged), and all {calm[2]} of CLINC150's small-talk training lines (greetings,
  thanks, goodbyes; weight {SOCIAL_WEIGHT} against a care row's 1). The care set's test split is
  never read by training.
- **Outputs:** `upset` (label upset) and `frustrated` (label mild or upset).
- **Design per output:** logit = (1 - words) x logistic regression over [embedding, standardised
  VADER neg/neu/pos/compound, capitals, "!!"] + words x logistic regression over TF-IDF words
  (C={WORDS_C}) + a shift that puts the chosen threshold at 0.5.
- **Choices** (5-fold cross-validation over the care rows; `upset`: best F1 with recall >=
  {UPSET_RECALL} and at most {MAX_CALM_FLAGGED:.0%} of the held-out calm questions flagged;
  `frustrated`: best F1):

| output | setting | F1 | precision | recall | held-out calm flagged |
|---|---|---|---|---|---|
{rows}

- **What ships:** learned weights and the TF-IDF vocabulary of the training texts. No texts.
- **Encoder:** `{model}`; retrain the head for any other model.

`bench/upset.py DATA_DIR` reports it on the care test split, BANKING77, CLINC150 and the
shipped examples, beside the GoEmotions head it replaced and VADER alone.
"""
    note = out.with_suffix(".md")
    note.write_text(text, encoding="utf-8")
    return note
