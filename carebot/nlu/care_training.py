"""Training the care emotion head (``carebot emotion train-care``): what ships as the signal.

The head (format in :mod:`carebot.nlu.emotion_head`) has two outputs, read from the care upset
set's labels (:mod:`carebot.nlu.care_set`): ``upset`` (a person should take over) and
``frustrated`` (mild or upset: a kind word helps). What it does:

1. takes the care set's ``train`` split, plus calm customer questions: :data:`CALM_ROWS`
   drawn from each of BANKING77 train and CLINC150 train (a care team's questions are mostly
   calm, and these teach the head that a plain question is not upset), and holds out another
   :data:`HELD_OUT` of each to measure how many calm questions a choice would flag; and all of
   CLINC150's small talk (:data:`SOCIAL`: a greeting, a thanks or a goodbye is not upset);
   with ``languages`` (``--languages de,fr,es``), also the care set's translation into each
   (``data/care/<code>/train.jsonl``, line for line: same ids and labels) and, as calm
   questions, the ``train`` split of ``data/languages/intent_examples.<code>.jsonl``, of which
   the questions of one English source in :data:`LANGUAGE_HELD_OUT` (the same in every
   language) are held out to measure the calm questions flagged in that language (the
   examples of :data:`NOT_CALM_INTENTS` are left out: a complaint is not a calm question);
2. per output, for every setting in :data:`GRID`: 5-fold cross-validation over the care rows,
   stratified by label and grouped by id (a line and its translations fall in the same fold;
   the calm questions always train, at a lower weight), of a logistic regression over
   [sentence embedding, standardised VADER scores and the capitals / "!!" cues] and one over
   TF-IDF words, their logits mixed; with languages, every setting also without VADER's scores
   (:data:`CUES` only: VADER's lexicon is English);
3. chooses per output the setting and the threshold on the cross-validated logits: for
   ``upset``, the best F1 among thresholds that keep recall at :data:`UPSET_RECALL` or more
   (missing an angry customer costs more than an extra handoff) and flag at most
   :data:`MAX_CALM_FLAGGED` of the held-out calm questions (all of them together, as without
   languages; each language's share is reported beside it, not capped: on the shipped data
   every setting flagged 3 to 12 of a language's 106 held-out questions at that recall, so a
   cap per language would leave no choice); for ``frustrated``, the best F1;
4. fits the chosen settings on all rows and shifts each output's logit so that 0.5 is the
   chosen threshold: ``[emotion] threshold = 0.5`` and ``mild_threshold = 0.5`` are those points;
5. saves the weights (.npz, no pickle) and a provenance note (.md) beside them, reloads the file
   through :class:`carebot.nlu.emotion.EmotionScorer` and checks it gives training's logits.

The care set's ``test`` splits (and those of the languages' questions) are never read here:
``bench/upset.py`` reports on the care set's.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import itertools
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from carebot.config import EmotionSettings
from carebot.nlu.care_set import CareSetError, CareSplit, json_lines, load_split
from carebot.nlu.dataset_embeddings import DatasetEmbeddings
from carebot.nlu.emotion import EmotionScorer, polarity, text_features
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
ENGLISH = "en"  # the care folder itself, and BANKING77's and CLINC150's questions
# The text features that read any language; with languages, every setting is also tried with
# these alone (VADER's lexicon is English: it reads most other text as neutral, and some as the
# English word spelt the same: the German article "die" is negative to it).
CUES = ("shouting", "exclamations")
# A language's calm questions: in the languages folder beside the care set's folder.
LANGUAGE_QUESTIONS = "intent_examples.{code}.jsonl"
NOT_CALM_INTENTS = ("complaint", "talk_to_human")  # their examples are not calm questions
# A calm question in another language than English weighs as a care row: there are some 180
# of them per language against 12,000 English ones, which alone taught the head what calm is.
LANGUAGE_CALM_WEIGHT = 1.0
LANGUAGE_HELD_OUT = 3  # one English source in this many: its questions are held out, every language
# Where the note says the head is measured on the test splits (never used for a choice).
REPORTED = (
    "`bench/upset.py DATA_DIR` reports it on the care test split, BANKING77, CLINC150 and the "
    "shipped examples, beside the GoEmotions head it replaced and VADER alone."
)
REPORTED_IN_LANGUAGES = (
    'The README ("Training the emotion head") reports it on the care test split and its '
    "translations, and on the intents' test examples in each language, beside the head trained "
    "on English alone."
)

Say = Callable[[str], None]


@dataclass(frozen=True, eq=False)
class Rows:
    """Texts with their embeddings and standardised text features."""

    texts: list[str]
    vectors: np.ndarray
    features: np.ndarray  # raw, in FEATURES order
    social: np.ndarray | None = None  # (rows,) bool: small talk, weighed as a care row
    language: np.ndarray | None = None  # (rows,) str: the calm questions' language


@dataclass(frozen=True)
class Chosen:
    """One output's setting and threshold, with its cross-validated figures."""

    output: str
    c: float
    calm_weight: float
    words: float
    features: tuple[str, ...] = FEATURES  # the text features beside the embedding
    threshold: float = 0.0  # on the mixed logit
    f1: float = 0.0
    precision: float = 0.0
    recall: float = 0.0
    calm_flagged: float = 0.0  # share of the held-out calm questions at or above the threshold
    flagged_by: tuple[tuple[str, float], ...] = ()  # (language, that share) for each language


@dataclass(frozen=True)
class CalmCounts:
    """How many calm questions training learnt from and held out, for the note."""

    learnt: int  # BANKING77's and CLINC150's
    held: int
    social: int  # CLINC150's small talk, all learnt
    language_learnt: int = 0  # the languages' (``languages`` of train_care_head)
    language_held: int = 0


@dataclass(frozen=True)
class LanguageQuestions:
    """A language's calm customer questions (the train split), each with its English source."""

    code: str
    texts: list[str]
    sources: list[str]  # the English example it translates (the text itself if none)


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


def language_questions(folder: Path, code: str) -> LanguageQuestions:
    """The calm questions in language ``code``: the ``train`` rows of
    ``folder/intent_examples.<code>.jsonl`` (``data/languages/README.md``) but those of
    :data:`NOT_CALM_INTENTS`; its test rows are not read. Errors name the file and the line."""
    path = folder / LANGUAGE_QUESTIONS.format(code=code)
    if not path.is_file():
        raise CareSetError(
            f"The calm questions in {code!r}, {path}, are missing: --languages {code} needs "
            f"them beside the care set (the repository's data/languages)."
        )
    texts: list[str] = []
    sources: list[str] = []
    for number, row in json_lines(path):
        if row.get("split") != "train" or row.get("intent") in NOT_CALM_INTENTS:
            continue
        text, source = row.get("text"), row.get("source")
        if not isinstance(text, str) or not text.strip():
            raise CareSetError(f"{path}, line {number}: no text value")
        texts.append(text)
        sources.append(source if isinstance(source, str) else text)
    if not texts:
        raise CareSetError(f"{path} has no questions in its train split")
    return LanguageQuestions(code, texts, sources)


def care_train(care_dir: Path, languages: Sequence[str] = ()) -> list[CareSplit]:
    """The care set's train split (``care_dir/train.jsonl``, English) and its translation into
    each of ``languages`` (``care_dir/<code>/train.jsonl``, named ``care/<code>/train``). A
    translated line keeps its line's label: a translation that gives an id another label than
    the English file is a :class:`CareSetError`."""
    english = load_split(care_dir, "train")
    labels = dict(zip(english.ids, english.labels, strict=True))
    splits = [english]
    for code in languages:
        split = load_split(care_dir / code, "train")
        for id_, label in zip(split.ids, split.labels, strict=True):
            if labels.get(id_, label) != label:
                raise CareSetError(
                    f"{care_dir / code / 'train.jsonl'}: id {id_!r} is labelled {label}, but "
                    f"{labels[id_]} in {care_dir / 'train.jsonl'}; a translation keeps the label "
                    "of the line it translates"
                )
        splits.append(dataclasses.replace(split, name=f"care/{code}/train"))
    return splits


def train_care_head(
    care_dir: Path,
    data_dir: Path,
    embeddings: DatasetEmbeddings,
    out: Path,
    *,
    model: str,
    languages: Sequence[str] = (),
    say: Say = lambda _: None,
) -> list[Chosen]:
    """Train on the care set's train split and the calm questions, write the head to ``out``
    (and its note), and return what cross-validation chose per output. ``languages``: codes of
    the care set's translations to learn from too (``care_dir/<code>``), each with its calm
    questions from ``care_dir/../languages`` (:func:`language_questions`)."""
    splits = care_train(care_dir, languages)
    care = _joined(splits)
    per_language = f" ({len(splits[0].texts)} English)" if languages else ""
    say(f"care train: {len(care.texts)} messages{per_language}; {care.counts()}")
    folder = care_dir.parent / "languages"
    questions = [language_questions(folder, code) for code in languages]
    calm_train, calm_held = _calm_rows(calm_questions(data_dir), embeddings, questions)
    say(f"calm questions: {len(calm_train.texts)} to learn from, {len(calm_held.texts)} held out")
    vader = SentimentIntensityAnalyzer()
    vectors = np.vstack([embeddings.of(split.name, split.texts)[0] for split in splits])
    written_in = [
        code for code, split in zip((ENGLISH, *languages), splits, strict=True) for _ in split.texts
    ]
    features = np.array(
        [_features(t, vader, code) for t, code in zip(care.texts, written_in, strict=True)]
    )
    care_rows = Rows(care.texts, vectors, features.astype(np.float32))
    mean = care_rows.features.mean(0)
    scale = care_rows.features.std(0) + 1e-6
    grid = _grid(languages)
    chosen = [
        _choose(output, care, care_rows, calm_train, calm_held, (mean, scale), grid, say)
        for output in OUTPUTS
    ]
    fitted = [_fit(c, care.target(c.output), care_rows, calm_train, (mean, scale)) for c in chosen]
    arrays = _arrays(model, fitted, chosen, mean, scale)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    say(f"saved {out} ({out.stat().st_size / 1024:.0f} KiB)")
    _verify(out, care, care_rows, fitted, chosen, (mean, scale), say)
    write_note(out, model, splits[0], chosen, _calm_counts(calm_train, calm_held), languages)
    return chosen


def _joined(splits: list[CareSplit]) -> CareSplit:
    if len(splits) == 1:
        return splits[0]
    return CareSplit(
        "+".join(split.name for split in splits),
        [id_ for split in splits for id_ in split.ids],
        [text for split in splits for text in split.texts],
        [label for split in splits for label in split.labels],
    )


def _grid(languages: Sequence[str]) -> list[tuple[tuple[str, ...], float, float, float]]:
    """(features, C, calm weight, words) to try: :data:`GRID`, and with languages every setting
    again with :data:`CUES` alone."""
    feature_sets = (FEATURES, CUES) if languages else (FEATURES,)
    return [(features, *setting) for features in feature_sets for setting in GRID]


def _calm_rows(
    corpora: dict[str, list[str]],
    embeddings: DatasetEmbeddings,
    languages: Sequence[LanguageQuestions] = (),
) -> tuple[Rows, Rows]:
    rng = np.random.default_rng(SEED)
    train: list[tuple[list[str], np.ndarray]] = []
    held: list[tuple[list[str], np.ndarray]] = []
    social: list[bool] = []
    train_language: list[str] = []
    held_language: list[str] = []

    def take(
        part: list[tuple[list[str], np.ndarray]],
        texts: list[str],
        vectors: np.ndarray,
        picked: np.ndarray,
    ) -> int:
        part.append(([texts[i] for i in picked], vectors[picked]))
        return len(picked)

    for name, texts in corpora.items():
        order = rng.permutation(len(texts))
        vectors = embeddings.of(name, texts)[0]
        if name == SOCIAL:  # all of it learns; too short a list to hold any out
            learnt = take(train, texts, vectors, np.arange(len(texts)))
            social += [True] * learnt
            train_language += [ENGLISH] * learnt
            continue
        learnt = take(train, texts, vectors, order[:CALM_ROWS])
        social += [False] * learnt
        train_language += [ENGLISH] * learnt
        held_language += [ENGLISH] * take(held, texts, vectors, order[-HELD_OUT:])
    for questions in languages:
        vectors = embeddings.of(f"languages/{questions.code}/train", questions.texts)[0]
        out = np.array([_held_out(source) for source in questions.sources], dtype=bool)
        learnt = take(train, questions.texts, vectors, np.flatnonzero(~out))
        social += [False] * learnt
        train_language += [questions.code] * learnt
        held_language += [questions.code] * take(
            held, questions.texts, vectors, np.flatnonzero(out)
        )
    vader = SentimentIntensityAnalyzer()

    def join(
        parts: list[tuple[list[str], np.ndarray]], language: list[str], mask: list[bool] | None
    ) -> Rows:
        texts = [t for chosen, _ in parts for t in chosen]
        features = np.array(
            [_features(t, vader, code) for t, code in zip(texts, language, strict=True)]
        )
        vectors = np.vstack([v for _, v in parts])
        flags = None if mask is None else np.array(mask, dtype=bool)
        return Rows(texts, vectors, features.astype(np.float32), flags, np.array(language))

    return join(train, train_language, social), join(held, held_language, None)


def _held_out(source: str) -> bool:
    """Whether a language's calm question is held out: by a digest of its English source, so
    that its translations are held out in every language."""
    return hashlib.sha256(source.encode()).digest()[0] % LANGUAGE_HELD_OUT == 0


def _calm_counts(train: Rows, held: Rows) -> CalmCounts:
    assert train.social is not None and train.language is not None and held.language is not None
    english = train.language == ENGLISH
    held_english = int((held.language == ENGLISH).sum())
    return CalmCounts(
        learnt=int((english & ~train.social).sum()),
        held=held_english,
        social=int(train.social.sum()),
        language_learnt=int((~english).sum()),
        language_held=len(held.texts) - held_english,
    )


def _folds(ids: list[str], labels: list[str]) -> list[np.ndarray]:
    """Folds of the care rows, grouped by id (a line and its translations, which share its id
    and label, always fall in the same fold) and stratified by label over the ids; fixed by
    :data:`SEED`. With one row per id, the stratified folds of single rows."""
    groups: dict[str, list[int]] = {}
    for i, id_ in enumerate(ids):
        groups.setdefault(id_, []).append(i)
    rng = np.random.default_rng(SEED)
    folds: list[list[int]] = [[] for _ in range(FOLDS)]
    for label in sorted(set(labels)):
        members = [rows for rows in groups.values() if labels[rows[0]] == label]
        for k, g in enumerate(rng.permutation(len(members))):
            folds[k % FOLDS] += members[g]
    return [np.array(sorted(f)) for f in folds]


def _choose(
    output: str,
    care: CareSplit,
    care_rows: Rows,
    calm: Rows,
    held: Rows,
    scaling: tuple[np.ndarray, np.ndarray],
    grid: Sequence[tuple[tuple[str, ...], float, float, float]],
    say: Say,
) -> Chosen:
    truth = care.target(output)
    folds = _folds(care.ids, care.labels)
    assert held.language is not None
    best: Chosen | None = None
    for features, c, calm_weight, words in grid:
        setting = Chosen(output, c, calm_weight, words, features)
        logits = np.zeros(len(care.texts))
        held_logits = np.zeros(len(held.texts))
        for fold in folds:
            train = np.setdiff1d(np.arange(len(care.texts)), fold)
            fitted = _fit(setting, truth, care_rows, calm, scaling, rows=train)
            logits[fold] = fitted.logits(_subset(care_rows, fold), scaling)
            held_logits += fitted.logits(held, scaling) / FOLDS
        candidate = _threshold(setting, logits, truth, held_logits, held.language)
        if candidate is not None and (best is None or candidate.f1 > best.f1):
            best = candidate
    if best is None:
        raise EmotionHeadError(
            f"No setting reaches recall {UPSET_RECALL} on {output} while flagging at most "
            f"{MAX_CALM_FLAGGED:.0%} of the held-out calm questions"
        )
    say(
        f"{output}: {_setting(best, len(grid) > len(GRID))}; "
        f"cross-validated F1 {best.f1:.3f} (P {best.precision:.3f}, R {best.recall:.3f}); "
        f"held-out calm questions flagged {_flagged(best)}"
    )
    return best


def _setting(chosen: Chosen, features: bool) -> str:
    """The setting in words; ``features``: say which text features (when that was a choice)."""
    text = f"C={chosen.c}, calm weight {chosen.calm_weight}, words {chosen.words}"
    if features:
        text += ", with VADER" if chosen.features == FEATURES else ", without VADER"
    return text


def _flagged(chosen: Chosen) -> str:
    """The share of held-out calm questions flagged: of all of them, then of each language's."""
    if len(chosen.flagged_by) <= 1:
        return f"{chosen.calm_flagged:.2%}"
    each = ", ".join(f"{code} {share:.2%}" for code, share in chosen.flagged_by)
    return f"{chosen.calm_flagged:.2%} ({each})"


def _threshold(
    setting: Chosen,
    logits: np.ndarray,
    truth: np.ndarray,
    held: np.ndarray,
    held_language: np.ndarray,
) -> Chosen | None:
    languages = [(code, held[held_language == code]) for code in dict.fromkeys(held_language)]
    best: Chosen | None = None
    for t in np.unique(logits):
        f1, p, r = f1_precision_recall(logits >= t, truth)
        flagged = float((held >= t).mean())
        by = tuple((str(code), float((part >= t).mean())) for code, part in languages)
        if setting.output == "upset" and (r < UPSET_RECALL or flagged > MAX_CALM_FLAGGED):
            continue
        if best is None or f1 > best.f1:
            best = dataclasses.replace(
                setting,
                threshold=float(t),
                f1=f1,
                precision=p,
                recall=r,
                calm_flagged=flagged,
                flagged_by=by,
            )
    return best


@dataclass(frozen=True, eq=False)
class Fitted:
    """One output's two fitted models and their mix."""

    vectors: Any  # LogisticRegression over [embedding, standardised features]
    vectorizer: Any  # TfidfVectorizer
    lexical: Any  # LogisticRegression over TF-IDF words
    words: float
    features: tuple[str, ...]  # the text features after the embedding

    def logits(self, rows: Rows, scaling: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        dense = self.vectors.decision_function(_inputs(rows, scaling, self.features))
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
    translated = calm.language != ENGLISH if calm.language is not None else np.zeros_like(social)
    calm_weight = np.where(
        social, SOCIAL_WEIGHT, np.where(translated, LANGUAGE_CALM_WEIGHT, setting.calm_weight)
    )
    weight = np.concatenate([np.ones(len(picked)), calm_weight])
    features = setting.features
    inputs = np.vstack([_inputs(care, scaling, features), _inputs(calm, scaling, features)])
    dense = LogisticRegression(C=setting.c, max_iter=5000).fit(inputs, target, weight)
    vectorizer = TfidfVectorizer(sublinear_tf=True).fit(texts)
    lexical = LogisticRegression(C=WORDS_C, max_iter=5000)
    lexical.fit(vectorizer.transform(texts), target, weight)
    return Fitted(dense, vectorizer, lexical, setting.words, features)


def _features(text: str, vader: SentimentIntensityAnalyzer, language: str) -> list[float]:
    """The text features of a row written in ``language`` (VADER's neutral in another than
    English, as :meth:`EmotionScorer.score` gives them)."""
    values = text_features(text, vader, polarity(vader, text, language))
    return [values[name] for name in FEATURES]


def _inputs(
    rows: Rows, scaling: tuple[np.ndarray, np.ndarray], features: tuple[str, ...]
) -> np.ndarray:
    columns = [FEATURES.index(name) for name in features]
    mean, scale = scaling
    return np.hstack([rows.vectors, (rows.features[:, columns] - mean[columns]) / scale[columns]])


def _subset(rows: Rows, picked: np.ndarray) -> Rows:
    return Rows([rows.texts[i] for i in picked], rows.vectors[picked], rows.features[picked])


def _arrays(
    model: str, fitted: list[Fitted], chosen: list[Chosen], mean: np.ndarray, scale: np.ndarray
) -> dict[str, Any]:
    """The weights file's arrays: one linear layer and one lexicon, each output's mix folded in,
    over the union of the outputs' vocabularies and of their text features (a feature that one
    output does without weighs 0 in it)."""
    vocabulary = sorted({w for f in fitted for w in f.vectorizer.vocabulary_})
    row = {w: i for i, w in enumerate(vocabulary)}
    idf = np.zeros(len(vocabulary), dtype=np.float32)
    lexical = np.zeros((len(vocabulary), len(fitted)), dtype=np.float32)
    for k, f in enumerate(fitted):
        rows = [row[w] for w in f.vectorizer.get_feature_names_out()]
        idf[rows] = f.vectorizer.idf_  # the same texts, so the same idf for a shared word
        lexical[rows, k] = f.words * f.lexical.coef_[0]
    features = [name for name in FEATURES if any(name in f.features for f in fitted)]
    dim = fitted[0].vectors.coef_.shape[1] - len(fitted[0].features)
    w0 = np.zeros((dim + len(features), len(fitted)))
    for k, f in enumerate(fitted):
        coef = (1 - f.words) * f.vectors.coef_[0]
        w0[:dim, k] = coef[:dim]
        for j, name in enumerate(f.features):
            w0[dim + features.index(name), k] = coef[dim + j]
    b0 = np.array([(1 - f.words) * f.vectors.intercept_[0] for f in fitted])
    columns = [FEATURES.index(name) for name in features]
    return {
        "format": np.array(FORMAT),
        "encoder": np.array(model),
        "targets": np.array(OUTPUTS),
        "features": np.array(features),
        "feature_mean": mean[columns].astype(np.float32),
        "feature_scale": scale[columns].astype(np.float32),
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
    features = care_rows.features[:, [FEATURES.index(name) for name in head.features]]
    rows = list(zip(care.texts, care_rows.vectors, features, strict=True))
    for k, (f, c) in enumerate(zip(fitted, chosen, strict=True)):
        expected = f.logits(care_rows, scaling) - c.threshold
        got = np.array([head.logits(v, x, t)[k] for t, v, x in rows])
        gap = float(np.abs(got - expected).max())
        say(f"  reloaded head == training logits ({c.output}, care train): max |diff| {gap:.2e}")
        if not gap <= TOLERANCE:
            raise EmotionHeadError(
                f"The emotion head written to {out} does not reproduce training's {c.output} "
                f"logits (largest difference {gap:.2e}, tolerance {TOLERANCE})"
            )


def write_note(
    out: Path,
    model: str,
    care: CareSplit,
    chosen: list[Chosen],
    calm: CalmCounts,
    languages: Sequence[str] = (),
) -> Path:
    """The provenance note beside the weights; returns its path. ``care``: the English train
    split; ``calm``: how many calm questions it learnt from and held out; ``languages``: the
    translations it learnt from too."""
    size, digest = out.stat().st_size, hashlib.sha256(out.read_bytes()).hexdigest()
    rows = "\n".join(
        f"| {c.output} | {_setting(c, bool(languages))} | {c.f1:.3f} | "
        f"{c.precision:.3f} | {c.recall:.3f} | {_flagged(c)} |"
        for c in chosen
    )
    counts = ", ".join(f"{n} {label}" for label, n in care.counts().items())
    codes = ", ".join(languages)
    option = f" --languages {','.join(languages)}" if languages else ""
    translated, language_calm, folds, features, each = "", "", "", "", ""
    if languages:
        translated = (
            f", and the same lines translated into {codes} (`data/care/<code>/train.jsonl`, "
            "the same ids and labels)"
        )
        language_calm = (
            f"; {calm.language_learnt} calm customer questions in {codes} (the train split of "
            "`data/languages/intent_examples.<code>.jsonl` but the intents "
            f"{' and '.join(NOT_CALM_INTENTS)}; {calm.language_held} more held out: the "
            f"questions of one English source in {LANGUAGE_HELD_OUT}, in every language)"
        )
        folds = ", grouped by id: a line and its translations fall in the same fold"
        features = (
            " (each setting tried with and without VADER's scores, whose lexicon is English; "
            "the head takes the features of either output, and a feature that one output does "
            "without weighs 0 in it)"
        )
        each = " (all languages together; each language's share in brackets)"
    head = (
        f"`{out.name}` is the emotion head that `carebot.nlu.emotion.EmotionScorer` uses when it "
        f"gets a message's sentence embedding: format {FORMAT}, read by "
        f"`carebot/nlu/emotion_head.py` with numpy (no pickle); {size / 1024:.0f} KiB, sha256 "
        f"`{digest}`."
    )
    facts = [
        f"**Trained by:** `carebot emotion train-care DATA_DIR --model {model}{option}` on "
        f"{datetime.date.today().isoformat()} (`carebot/nlu/care_training.py`); deterministic "
        f"(seed {SEED}).",
        "**Data:** the care upset set's train split (`data/care/train.jsonl`, written for "
        f"carebot: {counts}){translated}, {calm.learnt} calm customer questions drawn from "
        f"BANKING77 train and CLINC150 train (at most {CALM_ROWS} of each; {calm.held} more held "
        f"out to measure how many calm questions are flagged){language_calm}, and all "
        f"{calm.social} of CLINC150's small-talk training lines (greetings, thanks, goodbyes; "
        f"weight {SOCIAL_WEIGHT} against a care row's 1). No test split is ever read by training.",
        "**Outputs:** `upset` (label upset) and `frustrated` (label mild or upset).",
        "**Design per output:** logit = (1 - words) x logistic regression over [embedding, "
        "standardised VADER neg/neu/pos/compound (of English text; neutral for the other "
        f'languages), capitals, "!!"]{features} + words x logistic '
        f"regression over TF-IDF words (C={WORDS_C}) + a shift that puts the chosen threshold at "
        "0.5.",
        f"**Choices** ({FOLDS}-fold cross-validation over the care rows, stratified by "
        f"label{folds}; `upset`: best F1 with recall >= {UPSET_RECALL} and at most "
        f"{MAX_CALM_FLAGGED:.0%} of the held-out calm questions flagged{each}; `frustrated`: best "
        "F1):",
    ]
    shipped = [
        "**What ships:** learned weights and the TF-IDF vocabulary of the training texts. No "
        "texts.",
        f"**Encoder:** `{model}`; retrain the head for any other model.",
    ]
    text = "\n\n".join(
        [
            "# Emotion head weights: provenance",
            _wrap(head),
            "\n".join(_wrap(fact, "- ") for fact in facts),
            "| output | setting | F1 | precision | recall | held-out calm flagged |\n"
            f"|---|---|---|---|---|---|\n{rows}",
            "\n".join(_wrap(fact, "- ") for fact in shipped),
            _wrap(REPORTED_IN_LANGUAGES if languages else REPORTED),
        ]
    )
    note = out.with_suffix(".md")
    note.write_text(text + "\n", encoding="utf-8")
    return note


def _wrap(paragraph: str, bullet: str = "") -> str:
    """A paragraph of the note in lines of at most 96 characters (a bullet's indented)."""
    indent = " " * len(bullet)
    return textwrap.fill(
        paragraph,
        96,
        initial_indent=bullet,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
