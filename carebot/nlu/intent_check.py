"""``carebot intents check``: everything wrong or weak in an intents folder, with file and line.

Errors (exit 1): YAML syntax, missing or mistyped fields, duplicate ids, one example under two
intents, unknown answer placeholders. Warnings (exit 0): intents with fewer than
``MIN_EXAMPLES`` examples, intents without an answer yet, intents with no answer in a language
of ``[languages] detect``, out-of-scope texts that are also
examples, and examples that the model puts closer to another intent than to
their own (the conflict analysis, which loads the model: it runs once there are no errors).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

import numpy as np

from carebot.config import LanguageSettings, LanguageTables, Settings
from carebot.nlu.encoder import Encoder
from carebot.nlu.intents import IntentSet, Problem, Severity, read_intents
from carebot.nlu.language import language_name

MIN_EXAMPLES = 3


def check_intents(
    directory: Path,
    *,
    placeholders: dict[str, str],
    encoder: Callable[[], Encoder] | None = None,
    only: Collection[str] | None = None,
    public_guard: Callable[[str], str | None] | None = None,
    languages: LanguageSettings | None = None,
) -> list[Problem]:
    """All problems in ``directory``, every file read however broken the others are; with
    ``encoder``, also the conflict analysis, once there are no errors (it loads the model, and
    compares only the intents that could be read). ``only``: the conflict analysis looks only
    at these intents' examples and at the examples they come closer to than their own (an
    edit of one intent: its cost grows with the folder's size, not with its square)."""
    languages = languages or LanguageSettings()
    intents, problems = read_intents(
        directory, placeholders, language=languages.default, served=languages.detect
    )
    problems.extend(_missing_languages(intents, languages, directory))
    for intent in intents.intents:
        if len(intent.examples) < MIN_EXAMPLES:
            problems.append(
                Problem(
                    intent.file or directory,
                    intent.line,
                    f"{intent.id}: only {len(intent.examples)} example(s); give at least "
                    f"{MIN_EXAMPLES} varied phrasings",
                    Severity.WARNING,
                )
            )
        if not intent.answer:
            problems.append(
                Problem(
                    intent.file or directory,
                    intent.line,
                    f"{intent.id}: no answer yet: it can be evaluated but will be handed to a "
                    "person instead of answered",
                    Severity.WARNING,
                )
            )
    if public_guard is not None:
        problems.extend(_public_problems(intents, placeholders, public_guard, directory))
    errors = any(p.severity is Severity.ERROR for p in problems)
    if encoder is not None and len(intents) > 1 and not errors:
        problems.extend(conflicts(intents, encoder(), only=only))
    return problems


def _missing_languages(
    intents: IntentSet, languages: LanguageSettings, directory: Path
) -> list[Problem]:
    """Intents with an answer, but none in a language customers are told apart in."""
    if len(languages.detect) < 2:
        return []
    instead = {
        "default": f"the {language_name(languages.default)} answer, with [messages] "
        "untranslated_answer",
        "handoff": "a person",
    }[languages.missing_answer]
    found = []
    for intent in intents.intents:
        written = set(intent.written_in(languages.default))
        missing = [code for code in languages.detect if code not in written]
        if written and missing:
            names = ", ".join(language_name(code) for code in missing)
            found.append(
                Problem(
                    intent.file or directory,
                    intent.line,
                    f"{intent.id}: no answer in {names}: such customers get {instead} "
                    "([languages] missing_answer)",
                    Severity.WARNING,
                )
            )
    return found


def untranslated_messages(settings: Settings) -> list[Problem]:
    """Warnings for the ``[messages]`` texts (and, with the web chat on, the ``[webchat.texts]``)
    a language customers are told apart in has no ``[<table>.<code>]`` text for (such
    customers get the default language's)."""
    languages = settings.languages
    if len(languages.detect) < 2:
        return []
    where = settings.source or Path("config.toml")
    tables: list[LanguageTables] = [settings.messages]
    if settings.webchat.enabled:
        tables.append(settings.webchat.texts)
    found = []
    for code in languages.detect:
        for table in tables:
            left = table.untranslated(code) if code != languages.default else []
            if left:
                found.append(
                    Problem(
                        where,
                        None,
                        f"[{table.TABLE}.{code}]: {len(left)} text(s) not in "
                        f"{language_name(code)}, said in {language_name(languages.default)}: "
                        f"{', '.join(left)}",
                        Severity.WARNING,
                    )
                )
    return found


def _public_problems(
    intents: IntentSet,
    placeholders: dict[str, str],
    guard: Callable[[str], str | None],
    directory: Path,
) -> list[Problem]:
    """Intents marked ``public: true`` whose answer could never be posted in public: the
    personal-data guard refuses it (``guard``: its reason), or the intent needs the customer's
    details (``personal_data: true`` wins: such questions move to private messages)."""
    found = []
    for intent in intents.intents:
        if not intent.public or not intent.answer:
            continue
        why = None
        if intent.personal_data:
            why = "it is also marked personal_data: true, so public questions move to private"
        else:
            try:
                refused = guard(intent.render_answer(placeholders))
            except (KeyError, ValueError):
                refused = None  # an unknown placeholder is reported on its own
            if refused is not None:
                why = f"the personal-data guard refuses its answer in public ({refused})"
        if why is not None:
            found.append(
                Problem(
                    intent.file or directory,
                    intent.line,
                    f"{intent.id}: marked public: true, but {why}",
                    Severity.WARNING,
                )
            )
    return found


def conflicts(
    intents: IntentSet, encoder: Encoder, *, only: Collection[str] | None = None
) -> list[Problem]:
    """Examples more similar to another intent's example than to any other of their own. With
    ``only``: the examples of those intents (against every example), and the other examples
    whose closest example is one of theirs; memory and time grow with the folder's size times
    the size of those intents, not with the folder's size squared."""
    texts, labels = intents.examples()
    vectors = encoder.encode(texts)
    label_ids = np.array(labels)
    if only is None:
        rows = np.arange(len(texts))
    else:
        mine = np.isin(label_ids, list(only))
        closer = _closer_to(vectors, label_ids, mine)
        rows = np.flatnonzero(mine | closer)
    sims = vectors[rows] @ vectors.T
    sims[np.arange(len(rows)), rows] = -np.inf
    places = intents.example_places()
    found = []
    for row, i in enumerate(rows):
        text, label = texts[i], labels[i]
        own = label_ids == label
        own_best = float(np.max(sims[row][own])) if own.sum() > 1 else float("-inf")
        others = np.where(~own, sims[row], -np.inf)
        j = int(np.argmax(others))
        if sims[row][j] > own_best:
            own_text = f"{own_best:.2f}" if own_best > -1 else "n/a"
            found.append(
                Problem(
                    places[i][0] or Path("?"),
                    places[i][1],
                    f"example {text!r} of {label!r} is closer to {labels[j]!r} "
                    f"({texts[j]!r}: {sims[row][j]:.2f}) than to its own intent ({own_text})",
                    Severity.WARNING,
                )
            )
    return found


def _closer_to(vectors: np.ndarray, labels: np.ndarray, mine: np.ndarray) -> np.ndarray:
    """The other intents' examples that are more similar to one of ``mine`` than to any other
    example of their own intent (computed one intent at a time: no square matrix)."""
    closer = np.zeros(len(labels), dtype=bool)
    if not mine.any():
        return closer
    best_mine = np.max(vectors @ vectors[mine].T, axis=1)
    for label in np.unique(labels[~mine]):
        own = np.flatnonzero(labels == label)
        block = vectors[own] @ vectors[own].T
        np.fill_diagonal(block, -np.inf)
        own_best = block.max(axis=1) if len(own) > 1 else np.full(len(own), -np.inf)
        closer[own] = best_mine[own] > own_best
    return closer
