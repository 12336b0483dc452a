"""Training the emotion head on GoEmotions (``carebot emotion train``).

What it does (the head's format is in :mod:`carebot.nlu.emotion_head`, the dataset is read by
:mod:`carebot.nlu.goemotions`):

1. encodes the three splits with the sentence model once (cached as .npy by
   :class:`carebot.nlu.dataset_embeddings.DatasetEmbeddings`) and computes VADER's
   neg/neu/pos/compound for every text;
2. trains on train only: (a) an MLP over [embedding, standardised VADER] with one hidden ReLU
   layer, multi-task on negative, anger and the 28 GoEmotions labels (torch, fixed seed, one
   thread); (b) per target a logistic regression over TF-IDF words;
3. chooses on dev only the MLP's epoch count and the weight of the MLP against the words (best
   F1 of their summed logits, mean of the two targets);
4. calibrates on dev: a shift of each output logit so that carebot's signal (the head's
   probability plus the intensity rules of :mod:`carebot.nlu.emotion` with default settings)
   reaches 0.5 exactly where F1 on dev is best: ``[emotion] threshold = 0.5`` is that operating
   point;
5. saves the weights (.npz, no pickle) and a provenance note beside them (.md), then reloads the
   file through :class:`carebot.nlu.emotion.EmotionScorer` and reports its F1 at 0.5 on dev and
   on test (test is only reported, never used for a choice); see
   :mod:`carebot.nlu.emotion_head_file`.

With ``compare``, it also reports the dev F1 of the alternatives
(:mod:`carebot.nlu.emotion_alternatives`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from carebot.config import EmotionSettings
from carebot.nlu.dataset_embeddings import DatasetEmbeddings
from carebot.nlu.emotion import EmotionScorer
from carebot.nlu.emotion_alternatives import compare_alternatives
from carebot.nlu.emotion_head_file import (
    Figures,
    TrainedHead,
    save_head,
    verify_head,
    write_note,
)
from carebot.nlu.evaluation import best_f1_threshold, f1_precision_recall
from carebot.nlu.goemotions import SPLITS, TARGETS, EmotionSplit, GoEmotions

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

Say = Callable[[str], None]
# (epoch, the network's weights as numpy, its dev logits of the targets) after each epoch
Snapshot = tuple[int, dict[str, np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False)
class Inputs:
    """What the models learn from, per split: sentence embeddings and VADER's four scores."""

    vectors: dict[str, np.ndarray]
    vader_raw: dict[str, np.ndarray]
    vader: dict[str, np.ndarray]  # standardised with the mean and scale of train
    mean: np.ndarray
    scale: np.ndarray


@dataclass(frozen=True, eq=False)
class Words:
    """The lexical part: TF-IDF, one logistic regression per target, and their dev logits."""

    vectorizer: Any
    models: list[Any]
    dev_logits: np.ndarray  # (dev rows, targets)


@dataclass(frozen=True, eq=False)
class Choice:
    """What dev chose: the epoch and the mix, with that epoch's network and its dev logits."""

    epoch: int
    mix: float
    dev_best: list[float]  # best-threshold F1 of the mixed logits, per target
    mlp: dict[str, np.ndarray]
    mlp_logits: np.ndarray  # (dev rows, targets)

    def logits(self, words: np.ndarray) -> np.ndarray:
        """The head's uncalibrated dev logits: the mix of the network's and the words'."""
        return self.mix * self.mlp_logits + (1 - self.mix) * words


def train_emotion_head(
    data: GoEmotions,
    embeddings: DatasetEmbeddings,
    out: Path,
    *,
    model: str,
    compare: bool = False,
    say: Say = lambda _: None,
) -> Figures:
    """Train the head on ``data`` with ``model``'s embeddings, write it to ``out`` (and its
    note beside it) and return EmotionScorer's F1 / precision / recall at 0.5 on dev and test.

    ``say`` is told each step and its figures, as lines of text."""
    started = time.perf_counter()
    for split, rows in data.splits.items():
        counts = ", ".join(f"{t} {int(rows.targets[t].sum())}" for t in TARGETS)
        say(f"GoEmotions {split}: {len(rows.texts)} texts; {counts}")
    inputs = prepare_inputs(data, embeddings, model, say)
    words = fit_words(data.splits["train"], data.splits["dev"], say)
    choice = choose(data, train_mlp(data, inputs, say), words.dev_logits)
    say(
        f"chosen on dev: epoch {choice.epoch}, logit = {choice.mix} x MLP + "
        f"{1 - choice.mix:.1f} x words; best-threshold F1 negative {choice.dev_best[0]:.3f}, "
        f"anger {choice.dev_best[1]:.3f}"
    )
    if compare:
        alternatives = (inputs.vectors, inputs.vader, words.dev_logits, choice.mlp_logits)
        compare_alternatives(data, *alternatives, say=say)
    shift = calibrate(data.splits["dev"], choice.logits(words.dev_logits))
    shown = [round(float(s), 3) for s in shift]
    say(f"calibration (dev, with the intensity rules): logit shift {shown}")
    trained = _trained(model, inputs, words, choice, shift)
    save_head(trained, out)
    say(f"saved {out} ({out.stat().st_size / 1024:.0f} KiB)")
    expected = choice.logits(words.dev_logits) + shift
    figures = verify_head(out, data, inputs.vectors, inputs.vader_raw["dev"], expected, say)
    note = write_note(out, trained, figures, data)
    say(f"wrote {note}; total {time.perf_counter() - started:.0f} s")
    return figures


def _trained(
    model: str, inputs: Inputs, words: Words, choice: Choice, shift: np.ndarray
) -> TrainedHead:
    return TrainedHead(
        model=model,
        dim=inputs.vectors["train"].shape[1],
        feature_mean=inputs.mean,
        feature_scale=inputs.scale,
        mlp=choice.mlp,
        vectorizer=words.vectorizer,
        word_models=words.models,
        epoch=choice.epoch,
        mix=choice.mix,
        shift=shift,
        dev_best=choice.dev_best,
        seed=SEED,
        hidden=HIDDEN,
        words_c=WORDS_C,
        words_min_df=WORDS_MIN_DF,
    )


def prepare_inputs(data: GoEmotions, embeddings: DatasetEmbeddings, model: str, say: Say) -> Inputs:
    """Every split's sentence embeddings (cached) and VADER's scores, raw and standardised."""
    step = time.perf_counter()
    vectors = {name: embeddings.of(s.name, s.texts)[0] for name, s in data.splits.items()}
    dim = vectors["train"].shape[1]
    say(f"embeddings: {model}, {dim} dimensions ({time.perf_counter() - step:.0f} s)")
    step = time.perf_counter()
    raw = {s: vader_features(data.splits[s].texts) for s in SPLITS}
    mean, scale = raw["train"].mean(0), raw["train"].std(0) + 1e-6
    say(f"VADER features: {time.perf_counter() - step:.0f} s")
    vader = {s: (raw[s] - mean) / scale for s in SPLITS}
    return Inputs(vectors, raw, vader, mean, scale)


def vader_features(texts: list[str]) -> np.ndarray:
    """VADER's neg, neu, pos and compound per text."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    rows = []
    for text in texts:
        p = vader.polarity_scores(text)
        rows.append([p["neg"], p["neu"], p["pos"], p["compound"]])
    return np.asarray(rows, dtype=np.float32)


def fit_words(train: EmotionSplit, dev: EmotionSplit, say: Say) -> Words:
    """TF-IDF (sublinear tf, words seen twice or more) and one logistic regression per target."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    step = time.perf_counter()
    vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=WORDS_MIN_DF)
    features = vectorizer.fit_transform(train.texts)
    models = [
        LogisticRegression(C=WORDS_C, max_iter=3000).fit(features, train.targets[t])
        for t in TARGETS
    ]
    dev_features = vectorizer.transform(dev.texts)
    logits = np.stack([m.decision_function(dev_features) for m in models], 1)
    say(
        f"words: TF-IDF over {len(vectorizer.vocabulary_)} words (min_df {WORDS_MIN_DF}), "
        f"logistic regression C={WORDS_C} per target ({time.perf_counter() - step:.0f} s)"
    )
    return Words(vectorizer, models, logits)


def train_mlp(data: GoEmotions, inputs: Inputs, say: Say) -> list[Snapshot]:
    """The MLP over [embedding, VADER] on train, multi-task on the targets and every label."""
    step = time.perf_counter()
    both = {
        s: np.hstack([inputs.vectors[s], inputs.vader[s]]).astype(np.float32)
        for s in ("train", "dev")
    }
    train = data.splits["train"]
    outputs = np.hstack([np.stack([train.targets[t] for t in TARGETS], 1), train.labels])
    snapshots = mlp_snapshots(both["train"], outputs, both["dev"])
    say(
        f"MLP: {both['train'].shape[1]} -> {HIDDEN} ReLU (dropout {DROPOUT}) -> "
        f"{outputs.shape[1]} outputs (negative, anger, {len(data.names)} labels); AdamW lr "
        f"{LEARNING_RATE} weight decay {WEIGHT_DECAY}, batch {BATCH}, {EPOCHS} epochs, seed "
        f"{SEED} ({time.perf_counter() - step:.0f} s)"
    )
    return snapshots


def mlp_snapshots(inputs: np.ndarray, outputs: np.ndarray, dev: np.ndarray) -> list[Snapshot]:
    """The MLP after each epoch: [(epoch, weights as numpy, dev logits of the targets)].

    Runs on one torch thread (the process's setting is restored after), for the same result
    on every run."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _epochs(inputs, outputs, dev)
    finally:
        torch.set_num_threads(threads)


def _epochs(inputs: np.ndarray, outputs: np.ndarray, dev: np.ndarray) -> list[Snapshot]:
    import torch

    torch.manual_seed(SEED)
    x, y = torch.tensor(inputs), torch.tensor(outputs, dtype=torch.float32)
    dev_x = torch.tensor(dev)
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
            logits = net(dev_x)[:, : len(TARGETS)].numpy().copy()
        state = {k: v.detach().numpy().copy() for k, v in copy.deepcopy(net.state_dict()).items()}
        snapshots.append((epoch, state, logits))
    return snapshots


def choose(data: GoEmotions, snapshots: list[Snapshot], words: np.ndarray) -> Choice:
    """The epoch and mix with the best mean dev F1 (best threshold); ties: earlier epoch, then
    the larger share of the MLP."""
    truth = data.splits["dev"].targets
    choices = []
    for epoch, state, logits in snapshots:
        for mix in MIX:
            mixed = mix * logits + (1 - mix) * words
            f1 = [best_f1_threshold(mixed[:, k], truth[t])[1] for k, t in enumerate(TARGETS)]
            choices.append((float(np.mean(f1)), epoch, mix, f1, state, logits))
    _, epoch, mix, f1, state, logits = max(choices, key=lambda c: (c[0], -c[1], c[2]))
    return Choice(epoch, mix, f1, state, logits)


def calibrate(dev: EmotionSplit, logits: np.ndarray) -> np.ndarray:
    """Per target the logit shift that makes carebot's signal (the head's probability plus the
    intensity rules, default settings) cross 0.5 at its best-F1 cut on dev."""
    rules = EmotionScorer(EmotionSettings(), use_head=False)
    bonus, floor = [], []
    for text in dev.texts:
        bonuses, level, _ = rules.rules(text)
        bonus.append(sum(bonuses))
        floor.append(level)
    shifts = [
        best_shift(logits[:, k], np.array(bonus), np.array(floor), dev.targets[t])
        for k, t in enumerate(TARGETS)
    ]
    return np.array(shifts, dtype=np.float32)


def best_shift(
    logits: np.ndarray, bonus: np.ndarray, floor: np.ndarray, truth: np.ndarray
) -> float:
    """The logit shift (-6 to 6 by 0.005) that makes ``signal >= 0.5`` the best-F1 cut."""
    best_shift, best_f1 = 0.0, -1.0
    for shift in np.round(np.arange(-6.0, 6.0 + 1e-9, 0.005), 3):
        value = np.maximum(np.minimum(1 / (1 + np.exp(-(logits + shift))) + bonus, 1.0), floor)
        f1 = f1_precision_recall(value >= 0.5, truth)[0]
        if f1 > best_f1 + 1e-12:
            best_shift, best_f1 = float(shift), f1
    return best_shift
