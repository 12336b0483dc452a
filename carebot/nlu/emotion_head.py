"""The emotion head: how likely a message is negative / angry, from its sentence embedding.

Two parts whose logits add up, one output per target (``negative``, ``anger``):

* a small network (one hidden ReLU layer) over the L2-normalised sentence embedding that the
  matcher computes anyway, concatenated with VADER's four scores (standardised);
* a lexical part: a linear model over the message's TF-IDF word vector (lower-cased words of
  two or more word characters, sublinear term frequency, L2-normalised), the same analysis as
  scikit-learn's ``TfidfVectorizer(sublinear_tf=True)``.

Trained on GoEmotions by ``carebot emotion train`` (:mod:`carebot.nlu.emotion_training`), or on
the care set by ``carebot emotion train-care`` (:mod:`carebot.nlu.care_training`: what ships).
Two heads ship, one per packaged encoder (:func:`packaged_head` picks the one for ``[matcher]
model``): ``carebot/nlu/data/emotion_head.npz`` for all-MiniLM-L6-v2 and ``emotion_head_use.npz``
for the multilingual encoder; plain numpy arrays, loaded without pickle, each with its
provenance in the ``.md`` beside it. The output biases are calibrated so that 0.5 is the
operating point chosen when the head was trained (see :mod:`carebot.nlu.emotion`).
"""

from __future__ import annotations

import math
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from carebot.exceptions import ModelError
from carebot.nlu.use_encoder import is_distilled, is_use

FORMAT = 1
PACKAGED_HEAD = Path(__file__).resolve().parent / "data" / "emotion_head.npz"  # all-MiniLM-L6-v2
PACKAGED_USE_HEAD = PACKAGED_HEAD.with_name("emotion_head_use.npz")  # use-multilingual
# use-multilingual-distilled
PACKAGED_DISTILLED_HEAD = PACKAGED_HEAD.with_name("emotion_head_use_distilled.npz")
# The cheap text features the head may take after the embedding, by name.
FEATURES = ("vader_neg", "vader_neu", "vader_pos", "vader_compound", "shouting", "exclamations")
TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token_pattern
RETRAIN = (
    "Train one with 'carebot emotion train DATA_DIR --out PATH' (DATA_DIR holds GoEmotions), "
    "or reinstall carebot to get the packaged weights"
)


class EmotionHeadError(ModelError):
    """The emotion head's weights are missing, unreadable, or do not fit the encoder."""


def packaged_head(model: str | None = None) -> Path:
    """The packaged head for the sentence model ``model`` (``[matcher] model``): the
    multilingual encoder's (:data:`PACKAGED_USE_HEAD`) for ``use-multilingual`` and its other
    names, the distilled one's (:data:`PACKAGED_DISTILLED_HEAD`) for
    ``use-multilingual-distilled``, else all-MiniLM-L6-v2's (:data:`PACKAGED_HEAD`, also without
    a model). Any other model needs a head of its own; :meth:`EmotionHead.check_dim` says so
    when it does not fit."""
    if model is not None and is_distilled(model):
        return PACKAGED_DISTILLED_HEAD
    return PACKAGED_USE_HEAD if model is not None and is_use(model) else PACKAGED_HEAD


@dataclass(frozen=True, slots=True, eq=False)
class Lexicon:
    """The lexical part: TF-IDF over a vocabulary and one linear output per target."""

    index: dict[str, int]  # word -> row of idf and weights
    idf: np.ndarray  # (words,)
    weights: np.ndarray  # (words, targets)
    bias: np.ndarray  # (targets,)

    def logits(self, text: str) -> np.ndarray:
        counts: dict[int, int] = {}
        for word in TOKEN.findall(text.lower()):
            if (row := self.index.get(word)) is not None:
                counts[row] = counts.get(row, 0) + 1
        if not counts:
            return self.bias
        rows = list(counts)
        tf = [1.0 + math.log(c) if c > 1 else 1.0 for c in counts.values()]
        values = np.array(tf, dtype=np.float32) * self.idf[rows]
        return np.asarray(values @ self.weights[rows] / np.sqrt(values @ values) + self.bias)


@dataclass(frozen=True, slots=True, eq=False)
class EmotionHead:
    """Weights of the head; :meth:`probabilities` scores one message. Immutable, thread-safe."""

    path: Path
    encoder: str  # the sentence model whose embeddings it was trained on
    targets: tuple[str, ...]  # e.g. ("negative", "anger"), one output each
    features: tuple[str, ...]  # the extra inputs after the embedding, names from FEATURES
    feature_mean: np.ndarray  # (features,) standardisation of the extra inputs
    feature_scale: np.ndarray
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]  # (weights (in, out), bias (out,)) each
    lexicon: Lexicon | None
    shift: np.ndarray  # (targets,) added to the output logits: the dev calibration

    @property
    def dim(self) -> int:
        """The embedding dimension the head expects."""
        return int(self.layers[0][0].shape[0]) - len(self.features)

    @classmethod
    def load(
        cls, path: Path | str | None = None, *, dim: int | None = None, model: str | None = None
    ) -> EmotionHead:
        """The head saved at ``path``; without one, the packaged head for ``model`` (the
        sentence model, ``[matcher] model``; see :func:`packaged_head`).

        With ``dim``, check at once that the head takes embeddings of that dimension.
        """
        path = Path(path) if path is not None else packaged_head(model)
        if not path.is_file():
            remedy = RETRAIN
            if path == PACKAGED_USE_HEAD:
                remedy = (
                    f"It is the packaged head for [matcher] model = {model!r}: reinstall "
                    "carebot, or train it with 'carebot emotion train-care DATA_DIR --model "
                    "use-multilingual --languages de,fr,es', or set [emotion] head = false"
                )
            raise EmotionHeadError(f"The emotion head weights {path} are missing. {remedy}.")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise EmotionHeadError(
                f"Cannot read the emotion head weights {path}: {exc}. {RETRAIN}."
            ) from exc
        head = cls.from_arrays(path, arrays)
        if dim is not None:
            head.check_dim(dim)
        return head

    @classmethod
    def from_arrays(cls, path: Path, arrays: Mapping[str, np.ndarray]) -> EmotionHead:
        """Build and check a head from the arrays of its file (``path`` names it in errors)."""

        def unusable(what: str) -> EmotionHeadError:
            return EmotionHeadError(
                f"The emotion head weights {path} are not usable: {what}. {RETRAIN}."
            )

        required = ("format", "encoder", "targets", "features", "feature_mean", "feature_scale")
        missing = [name for name in (*required, "w0", "b0") if name not in arrays]
        if missing:
            raise unusable(f"no {', '.join(missing)}")
        if int(arrays["format"]) != FORMAT:
            raise unusable(f"format {int(arrays['format'])}, this carebot reads format {FORMAT}")
        targets = tuple(str(t) for t in np.atleast_1d(arrays["targets"]))
        features = tuple(str(f) for f in np.atleast_1d(arrays["features"]))
        unknown = sorted(set(features) - set(FEATURES))
        if unknown:
            raise unusable(f"unknown feature(s) {', '.join(unknown)}")
        layers: list[tuple[np.ndarray, np.ndarray]] = []
        while f"w{len(layers)}" in arrays:
            n = len(layers)
            w = np.ascontiguousarray(arrays[f"w{n}"], dtype=np.float32)
            b = np.ascontiguousarray(arrays.get(f"b{n}", np.zeros(0)), dtype=np.float32)
            fan_in = layers[-1][0].shape[1] if layers else w.shape[0]
            if w.ndim != 2 or w.shape[0] != fan_in or b.shape != (w.shape[1],):
                raise unusable(f"layer {n} has shapes {w.shape} and {b.shape}")
            layers.append((w, b))
        if layers[-1][0].shape[1] != len(targets):
            raise unusable(f"{layers[-1][0].shape[1]} outputs for the targets {targets}")
        if layers[0][0].shape[0] <= len(features):
            raise unusable(f"layer 0 takes {layers[0][0].shape[0]} inputs")
        shift = np.asarray(arrays.get("shift", np.zeros(len(targets))), dtype=np.float32)
        mean = np.asarray(arrays["feature_mean"], dtype=np.float32)
        scale = np.asarray(arrays["feature_scale"], dtype=np.float32)
        if shift.shape != (len(targets),) or not mean.shape == scale.shape == (len(features),):
            raise unusable("calibration or feature scaling of the wrong length")
        return cls(
            path=path,
            encoder=str(arrays["encoder"]),
            targets=targets,
            features=features,
            feature_mean=mean,
            feature_scale=scale,
            layers=tuple(layers),
            lexicon=_lexicon(arrays, len(targets), unusable),
            shift=shift,
        )

    def check_dim(self, dim: int) -> None:
        """Raise :class:`EmotionHeadError` unless the head takes ``dim``-dimensional embeddings."""
        if dim != self.dim:
            raise EmotionHeadError(
                f"The emotion head weights {self.path} take {self.dim}-dimensional embeddings of "
                f"{self.encoder}, but the encoder in use gives {dim} dimensions. Use "
                f"{self.encoder} as [matcher] model, or train a head for your model with "
                "'carebot emotion train-care DATA_DIR --model NAME --out PATH' and point "
                "[emotion] head_weights at it, or set [emotion] head = false."
            )

    def logits(self, embedding: np.ndarray, features: np.ndarray, text: str) -> np.ndarray:
        """Calibrated output logits, one per target, for one message.

        ``embedding``: its sentence embedding, shape ``(dim,)``; ``features``: the values of
        :attr:`features` for it, in that order; ``text``: the message, for the lexical part.
        """
        if embedding.shape != (self.dim,):
            self.check_dim(int(embedding.shape[-1]) if embedding.ndim else 0)
            raise EmotionHeadError(
                f"The emotion head {self.path} takes one embedding of shape ({self.dim},), got "
                f"{embedding.shape}"
            )
        extra = (np.asarray(features, dtype=np.float32) - self.feature_mean) / self.feature_scale
        dim = self.dim
        (w0, b0), *rest = self.layers
        x = embedding @ w0[:dim] + extra @ w0[dim:] + b0
        for w, b in rest:
            x = np.maximum(x, 0.0) @ w + b
        z = x + self.shift
        if self.lexicon is not None:
            z = z + self.lexicon.logits(text)
        return np.asarray(z)

    def probabilities(
        self, embedding: np.ndarray, features: np.ndarray, text: str
    ) -> dict[str, float]:
        """``{target: calibrated probability}`` for one message (arguments as :meth:`logits`)."""
        z = self.logits(embedding, features, text)
        p = np.exp(-np.logaddexp(0.0, -z))  # 1 / (1 + e^-z), without overflow for a large -z
        return {t: float(value) for t, value in zip(self.targets, p, strict=True)}


def _lexicon(
    arrays: Mapping[str, np.ndarray], targets: int, unusable: Callable[[str], EmotionHeadError]
) -> Lexicon | None:
    if "vocabulary" not in arrays:
        return None
    words = str(arrays["vocabulary"]).split("\n")
    idf = np.asarray(arrays.get("idf", np.zeros(0)), dtype=np.float32)
    weights = np.ascontiguousarray(arrays.get("lexical", np.zeros((0, 0))), dtype=np.float32)
    bias = np.asarray(arrays.get("lexical_bias", np.zeros(targets)), dtype=np.float32)
    if idf.shape != (len(words),) or weights.shape != (len(words), targets):
        raise unusable(
            f"a vocabulary of {len(words)} words with idf {idf.shape} and weights {weights.shape}"
        )
    if bias.shape != (targets,):
        raise unusable(f"lexical bias of shape {bias.shape}")
    return Lexicon({w: i for i, w in enumerate(words)}, idf, weights, bias)
