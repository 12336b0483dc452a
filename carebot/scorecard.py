"""``carebot eval``: how well an intents folder does on labelled test messages, through the real
triage, with the metrics of DESIGN.md section 7 (defined in :mod:`carebot.nlu.evaluation`).

Every test row goes through ``Triage.decide`` one message at a time, as in production; each call
is timed (the latency). A row is auto-answered when the decision is ANSWER. Accuracy and
coverage@P come from the matcher's best intent and score; precision, coverage and out-of-scope
recall at the configured operating point from the triage decisions themselves.

* Intents without an answer get a stand-in ``(answer of <id>)`` for the evaluation only, so
  triage can decide ANSWER for them as it will once they have one.
* A test row whose intent is not in the intent set counts as in scope with an answer the bot
  does not know: it can only be wrong. Their number is reported (``unknown_intent_rows``).
* Suggested thresholds (``--target-precision``) come from a validation split of the intent
  examples, never from the test rows: see :func:`suggest`. With ``[languages] detect``, also
  per language, from each language's examples (``[languages.thresholds.<code>]``).
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from carebot.clock import utcnow
from carebot.config import Settings
from carebot.exceptions import DataError
from carebot.models import DecisionKind
from carebot.nlu import evaluation as ev
from carebot.nlu.embedding_cache import EmbeddingCache
from carebot.nlu.encoder import Encoder
from carebot.nlu.intent_import import TEST_KEYS, LabelledRow, read_labelled
from carebot.nlu.intents import Intent, IntentSet, load_intents
from carebot.nlu.language import LanguageDetector
from carebot.nlu.matcher import Matcher
from carebot.runtime import embedding_cache, emotion_scorer
from carebot.triage import Triage, TriageContext

PRECISIONS = (0.95, 0.97, 0.99)
CHUNK = 256  # texts per encoder call while building the example embeddings (progress steps)
HOLD_OUT = 0.2  # share of each intent's examples held out for validation
SEED = 20260
DRAFT_PRECISION = 0.8  # above the draft threshold the best intent is right 4 times in 5
OOS_SHARE = 0.2  # out-of-scope texts weigh as this share of the traffic (about 1 message in 5)


@dataclass(frozen=True, slots=True)
class RowResult:
    truth: str | None
    predicted: str
    score: float
    kind: DecisionKind
    ms: float


class ProgressEncoder:
    """An encoder that encodes in chunks with a progress bar (stderr) for large batches."""

    def __init__(self, encoder: Encoder, *, show: bool | None, label: str) -> None:
        self._encoder, self._show, self._label = encoder, show, label

    @property
    def model_id(self) -> str:
        return self._encoder.model_id

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) <= CHUNK:
            return self._encoder.encode(texts)
        chunks = range(0, len(texts), CHUNK)
        with tqdm(
            total=len(texts), desc=self._label, unit="text", disable=not_shown(self._show)
        ) as bar:
            parts = []
            for start in chunks:
                parts.append(self._encoder.encode(texts[start : start + CHUNK]))
                bar.update(len(parts[-1]))
        return np.concatenate(parts)


def not_shown(show: bool | None) -> bool | None:
    """tqdm's ``disable``: None hides the bar when stderr is not a terminal."""
    return None if show is None else not show


def with_stand_in_answers(intents: IntentSet) -> IntentSet:
    """The intents, each answerless one given ``(answer of <id>)`` (evaluation only)."""
    filled = tuple(
        i if i.answer else replace(i, answer=f"(answer of {i.id})") for i in intents.intents
    )
    return IntentSet(filled, intents.out_of_scope, intents.served)


@dataclass
class Evaluation:
    """Everything ``carebot eval`` reports."""

    settings: Settings
    intents: IntentSet
    results: list[RowResult]
    timings: dict[str, float]
    answerless: int = 0
    suggestion: Suggestion | None = None
    # per other language served ([languages] detect), from that language's examples
    language_suggestions: dict[str, Suggestion] | None = None


def evaluate(
    settings: Settings,
    *,
    intents_dir: Path,
    test_file: Path,
    encoder: Encoder,
    target_precision: float | None = None,
    oos_share: float = OOS_SHARE,
    progress: bool | None = None,
) -> Evaluation:
    """Run every test row through the real triage; optionally suggest thresholds."""
    started = time.perf_counter()
    rows = read_labelled(test_file, TEST_KEYS).rows
    if not rows:
        raise DataError(f"{test_file}: no test rows")
    loaded = load_intents(
        intents_dir,
        settings.placeholders,
        language=settings.languages.default,
        served=settings.languages.detect,
    )
    intents = with_stand_in_answers(loaded)
    cache = embedding_cache(settings, encoder)
    texts, _ = intents.examples()
    cache.encode(texts, ProgressEncoder(encoder, show=progress, label="encoding examples"))
    timings = {"load_and_encode_examples_s": time.perf_counter() - started}
    started = time.perf_counter()
    matcher = Matcher.configured(settings.matcher, encoder=encoder, intents=intents, cache=cache)
    timings["build_matcher_s"] = time.perf_counter() - started
    triage = Triage(matcher=matcher, emotion=emotion_scorer(settings, encoder), settings=settings)
    started = time.perf_counter()
    languages = LanguageDetector(settings.languages)
    placed = languages if languages.active else None
    results = run_rows(triage, rows, now=utcnow(), progress=progress, languages=placed)
    timings["rows_s"] = time.perf_counter() - started
    suggestion, per_language = None, None
    if target_precision is not None:
        started = time.perf_counter()
        suggested = suggest(
            intents,
            settings,
            encoder=encoder,
            cache=cache,
            precision=target_precision,
            oos_share=oos_share,
        )
        suggestion = suggested.pop(settings.languages.default)
        per_language = suggested
        timings["suggest_s"] = time.perf_counter() - started
    answerless = sum(not i.answer for i in loaded.intents)
    return Evaluation(settings, intents, results, timings, answerless, suggestion, per_language)


def run_rows(
    triage: Triage,
    rows: Sequence[LabelledRow],
    *,
    now: datetime,
    progress: bool | None,
    languages: LanguageDetector | None = None,
) -> list[RowResult]:
    """Decide each row on its own (a fresh conversation each time), timing every call; with
    ``languages``, each in the language detected in it, as the service places a message (its
    thresholds and answer)."""
    results = []
    for row in tqdm(rows, desc="test rows", unit="row", disable=not_shown(progress)):
        language = languages.detect(row.text) if languages is not None else None
        context = TriageContext(now=now, language=language)
        start = time.perf_counter()
        decision = triage.decide(row.text, context)
        ms = (time.perf_counter() - start) * 1000
        results.append(
            RowResult(row.intent, decision.intent or "", decision.score, decision.kind, ms)
        )
    return results


def report(evaluation: Evaluation) -> dict[str, Any]:
    """The scorecard as plain data (NaN becomes None, so it is valid JSON)."""
    matcher = evaluation.settings.matcher
    card: dict[str, Any] = {
        **metrics(evaluation.results),
        "thresholds": {"answer": matcher.answer_threshold, "draft": matcher.draft_threshold},
        **counts(evaluation),
        "timings_s": {k: round(v, 2) for k, v in evaluation.timings.items()},
    }
    if evaluation.suggestion is not None:
        card["suggested"] = evaluation.suggestion.as_dict()
    if evaluation.language_suggestions:
        card["suggested_by_language"] = {
            code: s.as_dict() for code, s in evaluation.language_suggestions.items()
        }
    return clean(card)


def metrics(results: Sequence[RowResult]) -> dict[str, Any]:
    """DESIGN.md section 7 on the rows: from the scores, and from the triage decisions."""
    scores = ev.Predictions(
        truth=[r.truth for r in results],
        predicted=[r.predicted for r in results],
        confidence=[r.score for r in results],
    )
    sent = ev.Predictions(  # the triage decisions as confidences: 1 = auto-answered
        truth=scores.truth,
        predicted=scores.predicted,
        confidence=[float(r.kind is DecisionKind.ANSWER) for r in results],
    )
    latency = [r.ms for r in results] or [math.nan]
    return {
        "accuracy": ev.accuracy(scores),
        "auto_precision": ev.auto_precision(sent, 1.0),
        "coverage": ev.coverage(sent, 1.0),
        "coverage_at": {f"{p:.2f}": ev.coverage_at(scores, p) for p in PRECISIONS},
        "oos_recall": ev.oos_recall(sent, 1.0),
        "confused_pairs": [
            {"true": t, "predicted": p, "count": n} for t, p, n in ev.confused_pairs(scores)
        ],
        "latency_ms": {
            "p50": float(np.percentile(latency, 50)),
            "p99": float(np.percentile(latency, 99)),
        },
        "decisions": dict(Counter(r.kind.value for r in results)),
    }


def counts(evaluation: Evaluation) -> dict[str, int]:
    results, intents = evaluation.results, evaluation.intents
    in_scope = [r for r in results if r.truth is not None]
    return {
        "rows": len(results),
        "in_scope": len(in_scope),
        "out_of_scope": len(results) - len(in_scope),
        "unknown_intent_rows": sum(r.truth not in intents for r in in_scope),
        "intents": len(intents),
        "examples": len(intents.examples()[0]),  # those matched, in every language served
        "answerless_intents": evaluation.answerless,
    }


def clean(value: Any) -> Any:
    """NaN and infinity -> None, recursively, so ``json.dumps`` writes valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Suggestion:
    """Thresholds that reach ``precision`` on the validation split (None: none reaches it)."""

    precision: float
    answer_threshold: float | None
    draft_threshold: float | None
    validation_rows: int
    validation_out_of_scope: int
    validation_precision: float
    validation_coverage: float

    def as_dict(self) -> dict[str, Any]:
        rows = self.validation_rows
        return {
            "target_precision": self.precision,
            "answer_threshold": self.answer_threshold,
            "draft_threshold": self.draft_threshold,
            "validation_rows": rows,
            "validation_out_of_scope": self.validation_out_of_scope,
            "out_of_scope_share": self.validation_out_of_scope / rows if rows else math.nan,
            "validation_precision": self.validation_precision,
            "validation_coverage": self.validation_coverage,
            "warning": None
            if self.validation_out_of_scope
            else "no out_of_scope texts in the intents: the threshold ignores out-of-scope "
            "messages, so real precision will be lower",
        }


def validation_split(intents: IntentSet) -> tuple[IntentSet, list[str], list[str], list[str]]:
    """Hold out ``HOLD_OUT`` of each intent's examples (fixed seed; fewer than 2: kept whole),
    in the default language and in each one served (``intents.served``) apart.

    Returns the intents with the rest of their examples, and the held-out texts, their ids and
    their languages ("": the default's).
    """
    rng = random.Random(SEED)
    kept: list[Intent] = []
    texts: list[str] = []
    labels: list[str] = []
    languages: list[str] = []

    def hold_out(examples: tuple[str, ...], intent_id: str, code: str) -> tuple[str, ...]:
        n = len(examples)
        held = set(rng.sample(range(n), max(1, round(n * HOLD_OUT)))) if n >= 2 else set()
        texts.extend(examples[i] for i in sorted(held))
        labels.extend(intent_id for _ in held)
        languages.extend(code for _ in held)
        return tuple(e for i, e in enumerate(examples) if i not in held)

    for intent in intents.intents:
        rest = hold_out(intent.examples, intent.id, "")
        others = tuple(
            (code, hold_out(examples, intent.id, code) if code in intents.served else examples)
            for code, examples in intent.other_examples
        )
        kept.append(
            replace(
                intent,
                examples=rest,
                example_lines=(),
                other_examples=others,
                other_example_lines=(),
            )
        )
    split = IntentSet(tuple(kept), intents.out_of_scope, intents.served)
    return split, texts, labels, languages


def suggest(
    intents: IntentSet,
    settings: Settings,
    *,
    encoder: Encoder,
    cache: EmbeddingCache,
    precision: float,
    oos_share: float = OOS_SHARE,
) -> dict[str, Suggestion]:
    """Thresholds for ``precision`` from held-out examples and the ``out_of_scope`` texts, for
    the default language (``[languages] default``: ``[matcher]``'s) and for each other one
    served (``[languages.thresholds.<code>]``), each from its own language's examples.

    The matcher is built as configured (same method) on the examples that were not held out.
    The out-of-scope texts are repeated until they are ``oos_share`` of a language's validation
    rows: a few hundred of them against thousands of held-out examples would otherwise let the
    threshold ignore them (CLINC150: 3% out of scope in validation, 18% in its test set).
    """
    rest, texts, labels, languages = validation_split(intents)
    matcher = Matcher.configured(settings.matcher, encoder=encoder, intents=rest, cache=cache)
    found = {}
    for code in ("", *intents.served):
        mine = [i for i, language in enumerate(languages) if language == code]
        if code and not mine:
            continue  # no examples in that language: nothing to measure it on
        found[code or settings.languages.default] = _suggestion(
            matcher,
            [texts[i] for i in mine],
            [labels[i] for i in mine],
            list(intents.out_of_scope),
            encoder=encoder,
            cache=cache,
            precision=precision,
            oos_share=oos_share,
        )
    return found


def _suggestion(
    matcher: Matcher,
    texts: list[str],
    labels: list[str],
    oos: list[str],
    *,
    encoder: Encoder,
    cache: EmbeddingCache,
    precision: float,
    oos_share: float,
) -> Suggestion:
    """The thresholds for ``precision`` on held-out ``texts`` and the ``oos`` texts."""
    if oos and 0 < oos_share < 1:
        oos *= max(1, round(oos_share / (1 - oos_share) * len(texts) / len(oos)))
    matches = matcher.match_vectors(cache.encode(texts + oos, encoder)) if texts + oos else []
    p = ev.Predictions(
        truth=[*labels, *[None] * len(oos)],
        predicted=[m.best.intent if m.best else "" for m in matches],
        confidence=[m.score for m in matches],
    )
    answer = _rounded(ev.threshold_for(p, precision), p.scores)
    draft = _rounded(ev.threshold_for(p, min(precision, DRAFT_PRECISION)), p.scores)
    if answer is not None and draft is not None:
        draft = min(draft, answer)
    at = answer if answer is not None else math.inf
    return Suggestion(
        precision=precision,
        answer_threshold=answer,
        draft_threshold=draft,
        validation_rows=len(p),
        validation_out_of_scope=len(oos),
        validation_precision=ev.auto_precision(p, at),
        validation_coverage=ev.coverage(p, at),
    )


def _rounded(threshold: float, scores: np.ndarray) -> float | None:
    """The shortest decimal that sends exactly the rows ``threshold`` sends (None: none)."""
    if not math.isfinite(threshold):
        return None
    below = scores[scores < threshold]
    lower = float(below.max()) if below.size else -math.inf
    for digits in range(2, 7):
        candidate = math.floor(threshold * 10**digits) / 10**digits
        if candidate > lower:
            return min(1.0, max(0.0, candidate))
    return min(1.0, max(0.0, threshold))


def render(card: dict[str, Any]) -> str:
    """The scorecard as a table for people."""

    def num(value: float | None, digits: int = 3) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    at = card["thresholds"]
    lines = [
        f"{card['rows']} test rows: {card['in_scope']} in scope, {card['out_of_scope']} out of "
        f"scope, {card['unknown_intent_rows']} with an intent not in the intent set",
        f"{card['intents']} intents ({card['answerless_intents']} without an answer, given a "
        f"stand-in), {card['examples']} examples",
        f"operating point: answer_threshold {at['answer']}, draft_threshold {at['draft']}",
        "",
        f"  {'accuracy (top-1, in scope)':<40}{num(card['accuracy'])}",
        f"  {'auto-answer precision':<40}{num(card['auto_precision'])}",
        f"  {'coverage (auto-answered / all rows)':<40}{num(card['coverage'])}",
        f"  {'out-of-scope recall (not auto-answered)':<40}{num(card['oos_recall'])}",
        *(f"  {'coverage@' + p:<40}{num(v)}" for p, v in card["coverage_at"].items()),
        f"  {'latency p50 / p99 (ms, one message)':<40}"
        f"{num(card['latency_ms']['p50'], 1)} / {num(card['latency_ms']['p99'], 1)}",
        "  decisions: " + ", ".join(f"{k} {v}" for k, v in sorted(card["decisions"].items())),
    ]
    if card["confused_pairs"]:
        lines += ["", "most confused (true -> predicted: rows):"]
        lines += [
            f"  {c['true']} -> {c['predicted']}: {c['count']}" for c in card["confused_pairs"]
        ]
    if "suggested" in card:
        lines += ["", *render_suggestion(card["suggested"])]
    for code, suggested in card.get("suggested_by_language", {}).items():
        table = f"[languages.thresholds.{code}]"
        lines += ["", *render_suggestion(suggested, table=table, whose=f"the {code} examples")]
        lines.append(
            f"  note: {code} examples that translate the default language's make this "
            "optimistic (a held-out translation's source still trains); its real messages "
            "in a test file tell more"
        )
    return "\n".join(lines)


def render_suggestion(
    s: dict[str, Any], *, table: str = "[matcher]", whose: str = "the intent examples"
) -> list[str]:
    share = s["out_of_scope_share"]
    lines = [
        f"Suggested thresholds for auto-answer precision {s['target_precision']}, found on a "
        f"validation split of {whose} ({s['validation_rows']} rows, "
        f"{s['validation_out_of_scope']} out of scope = {0 if share is None else share:.1%}), "
        "not on the test rows:",
    ]
    if s["answer_threshold"] is None:
        lines.append(
            "  no threshold reaches it: keep every answer a draft (answer_threshold = 1.0)"
        )
    else:
        lines += [
            f"  {table}",
            f"  answer_threshold = {s['answer_threshold']}",
            f"  draft_threshold = {s['draft_threshold']}",
            f"  (validation precision {s['validation_precision']:.3f}, "
            f"coverage {s['validation_coverage']:.3f})",
        ]
    if not s["validation_out_of_scope"]:
        lines.append(
            "  warning: the intents have no out_of_scope texts, so this threshold ignores "
            "out-of-scope messages; real precision will be lower. Add an 'out_of_scope:' list."
        )
    return lines
