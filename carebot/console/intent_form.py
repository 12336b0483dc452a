"""The console's intent form: the fields an ops person edits, read into an :class:`Intent` with
an error next to each field that cannot be read, and the check's findings placed next to the
field they concern.

Examples are one per line; tags are separated by commas; a threshold is a number from 0 to 1,
or empty for the global one. The title and answer are in the default language (``[languages]
default``); beside them, one field of each per other language (``title_<code>``,
``answer_<code>``, ``examples_<code>``): those of ``[languages] detect`` and any the intent is
written in. An intent with a translation is written with its title, answer or examples per
language; one without, as plain text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from carebot.config import LanguageSettings
from carebot.nlu.intents import Examples, Intent, Problem, Texts

FIELDS = (
    "id",
    "title",
    "file",
    "examples",
    "answer",
    "tags",
    "thresholds",
    "handoff",
    "public",
    "personal_data",
)
FLAG_ON = ("on", "true", "1", "yes")
ID = re.compile(r"^[a-z0-9][a-z0-9_]*$")
# a posted field in another language
TRANSLATED = re.compile(r"^(title|answer|examples)_([a-z]{2})$")


@dataclass
class IntentForm:
    """What the form holds, as typed."""

    id: str = ""
    title: str = ""
    file: str = ""
    examples: str = ""
    answer: str = ""
    tags: str = ""
    answer_threshold: str = ""
    draft_threshold: str = ""
    handoff: bool = False
    public: bool = False  # may be answered under a public comment
    personal_data: bool = False  # needs the customer's details: public questions go private
    # the other languages shown (ISO 639-1), and the title, answer and examples (one per line)
    # typed in each
    languages: tuple[str, ...] = ()
    titles: dict[str, str] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)
    other_examples: dict[str, str] = field(default_factory=dict)
    original_id: str = ""  # the intent as it is in the file (empty: a new intent)
    stamp: str = ""  # the file's version stamp when the form was opened
    proposal: str = ""  # the proposal this edit comes from, if any
    errors: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(
        cls, intent: Intent, *, file: str, stamp: str, languages: LanguageSettings | None = None
    ) -> IntentForm:
        """The form of ``intent`` as its file holds it (a title or answer per language
        included; ``languages``: the default and those told apart, default: English only)."""
        languages = languages or LanguageSettings()
        default = languages.default
        intent = intent.in_default(default)
        titles, answers = dict(intent.titles), dict(intent.answers)
        examples = {code: "\n".join(texts) for code, texts in intent.other_examples}
        return cls(
            id=intent.id,
            title=intent.title,
            file=file,
            examples="\n".join(intent.examples),
            answer=intent.answer,
            languages=shown_languages(languages, {*titles, *answers, *examples}),
            titles=titles,
            answers=answers,
            other_examples=examples,
            tags=", ".join(intent.tags),
            answer_threshold=_number(intent.answer_threshold),
            draft_threshold=_number(intent.draft_threshold),
            handoff=intent.handoff,
            public=intent.public,
            personal_data=intent.personal_data,
            original_id=intent.id,
            stamp=stamp,
        )

    @classmethod
    def posted(cls, data: Mapping[str, str]) -> IntentForm:
        """The form as posted (missing fields empty)."""

        def text(name: str) -> str:
            return str(data.get(name, "")).replace("\r\n", "\n")

        translated: dict[str, dict[str, str]] = {"title": {}, "answer": {}, "examples": {}}
        for name in data:
            found = TRANSLATED.match(str(name))
            if found:
                translated[found[1]][found[2]] = text(str(name)).strip()
        shown = tuple(dict.fromkeys(code for typed in translated.values() for code in typed))
        return cls(
            id=text("id").strip(),
            title=text("title").strip(),
            file=text("file").strip(),
            examples=text("examples"),
            answer=text("answer").strip(),
            tags=text("tags"),
            answer_threshold=text("answer_threshold").strip(),
            draft_threshold=text("draft_threshold").strip(),
            handoff=text("handoff") in FLAG_ON,
            public=text("public") in FLAG_ON,
            personal_data=text("personal_data") in FLAG_ON,
            languages=shown,
            titles=translated["title"],
            answers=translated["answer"],
            other_examples=translated["examples"],
            original_id=text("original_id").strip(),
            stamp=text("stamp").strip(),
            proposal=text("proposal").strip(),
        )

    @property
    def is_new(self) -> bool:
        return not self.original_id

    @property
    def example_list(self) -> list[str]:
        return [line.strip() for line in self.examples.splitlines() if line.strip()]

    def add_examples(
        self, examples: Iterable[str], *, place: Callable[[str], str | None] | None = None
    ) -> None:
        """Add the ``examples`` the form lacks, each to its language's field: one of the other
        languages shown when ``place`` finds it in that language (a German customer's words
        under German), else the default language's."""
        for example in examples:
            code = place(example) if place is not None else None
            if code is None or code not in self.languages:
                self.examples = _with(self.examples, example)
            else:
                self.other_examples[code] = _with(self.other_examples.get(code, ""), example)

    def intent(self, default: str = "en") -> Intent | None:
        """The intent the form describes (its plain title and answer in ``default``), or None
        with :attr:`errors` filled in."""
        self.errors = {}
        if not ID.match(self.id):
            self._error(
                "id", "An id is lower-case letters, digits and _ (e.g. order_status), not empty"
            )
        if not self.file:
            self._error("file", "Name the file the intent goes in (e.g. orders.yaml)")
        examples = self.example_list
        if not examples:
            self._error("examples", "Give at least one example, one per line")
        thresholds = {
            name: self._threshold(name, getattr(self, name))
            for name in ("answer_threshold", "draft_threshold")
        }
        if self.errors:
            return None
        return Intent(
            id=self.id,
            examples=tuple(examples),
            answer=self.answer,
            title=self.title,
            answers=_translations(default, self.answers),
            titles=_translations(default, self.titles),
            other_examples=_examples_in(default, self.other_examples),
            answer_threshold=thresholds["answer_threshold"],
            draft_threshold=thresholds["draft_threshold"],
            handoff=self.handoff,
            tags=tuple(t.strip() for t in self.tags.split(",") if t.strip()),
            public=self.public,
            personal_data=self.personal_data,
        )

    def place(self, problems: Iterable[Problem]) -> list[str]:
        """Put each finding next to the field it concerns; returns those that concern no field
        of this intent (other intents of the folder), as text."""
        elsewhere = []
        for problem in problems:
            name = _field_of(problem.message, self.id)
            text = f"{problem.severity.value}: {problem.message}"
            if name is None:
                where = f"{problem.file.name}:{problem.line}" if problem.line else problem.file.name
                elsewhere.append(f"{where}: {text}")
            else:
                self._error(name, text)
        return elsewhere

    def _threshold(self, name: str, value: str) -> float | None:
        if not value:
            return None
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not 0.0 <= number <= 1.0:
            self._error("thresholds", f"{name} is a number from 0 to 1 (or empty), not {value!r}")
            return None
        return number

    def _error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)


def _field_of(message: str, intent_id: str) -> str | None:
    """The field a check message is about, if it is about this intent."""
    text = message.casefold()
    mine = intent_id and (
        text.startswith(f"{intent_id}:") or f"'{intent_id}'" in text or f" {intent_id} " in text
    )
    if not mine:
        return None
    if "threshold" in text:
        return "thresholds"
    if "example" in text:
        return "examples"
    if "answer" in text or "placeholder" in text:
        return "answer"
    if "tag" in text:
        return "tags"
    for flag in ("personal_data", "public", "handoff"):
        if f"{flag}:" in text or f"{flag} " in text:
            return flag
    if "title" in text:
        return "title"
    return "id"


def shown_languages(languages: LanguageSettings, written: Iterable[str]) -> tuple[str, ...]:
    """The other languages a form shows: those told apart, then any other the intent is
    written in."""
    others = [code for code in languages.detect if code != languages.default]
    return tuple(dict.fromkeys([*others, *sorted(set(written) - {languages.default})]))


def _translations(default: str, typed: Mapping[str, str]) -> Texts:
    """The texts typed in the other languages (an empty field: none in that language)."""
    return tuple((code, text) for code, text in typed.items() if text and code != default)


def _with(lines: str, example: str) -> str:
    """``lines`` (one example each) with ``example`` added, unless it is there already."""
    kept = [line.strip() for line in lines.splitlines() if line.strip()]
    known = {line.casefold() for line in kept}
    return "\n".join(kept if example.casefold() in known else [*kept, example])


def _examples_in(default: str, typed: Mapping[str, str]) -> Examples:
    """The examples typed in the other languages, one per line (an empty field: none)."""
    found = []
    for code, text in typed.items():
        lines = tuple(line.strip() for line in text.splitlines() if line.strip())
        if lines and code != default:
            found.append((code, lines))
    return tuple(found)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
