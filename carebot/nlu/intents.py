"""FAQ intents: YAML files in ``intents/``, one topic per file, written by ops staff.

A file looks like::

    intents:
      - id: order_status
        title: Order status            # optional; shown in "Did you mean ...?"
        examples:
          - where is my order
          - has my parcel shipped yet
        answer: You can follow your order at {tracking_url}.   # optional, see below
        answer_threshold: 0.8          # optional per-intent overrides
        draft_threshold: 0.6
        handoff: false                 # true: always a human (legal threats, deletion, ...)
        tags: [orders]
        public: true                   # the answer may be posted in public (default false)
        personal_data: false           # answering needs the customer's details: in public,
                                       # the conversation moves to private messages

An ``answer`` (and a ``title``) may be given per language, as a mapping of ISO 639-1 codes to
texts; a plain text is in ``[languages] default``'s language. A customer placed in a language
gets that language's answer (README, "Languages")::

        answer:
          en: You can follow your order at {tracking_url}.
          de: Ihre Bestellung können Sie unter {tracking_url} verfolgen.

``examples`` may be given per language too, as a mapping of ISO 639-1 codes to lists; a plain
list is in the default language's. The default language's examples are always matched; another
language's only when it is one customers are told apart in (``[languages] detect``), so a
brand serving English alone is not matched against German sentences::

        examples:
          en: [where is my order, has my parcel shipped yet]
          de: [wo ist meine Bestellung, ist mein Paket schon unterwegs]

An intent without an ``answer`` is valid (imported data often
has none yet): it can be evaluated, and ``carebot intents check`` warns about it. Any file may
also hold a top-level ``out_of_scope:`` list of messages that no intent should answer (e.g. from
an import); they are not intents and not matcher examples, only evaluation material (see
``carebot eval``)::

    out_of_scope:
      - what is the meaning of life
      - book me a flight to Rome

Reading collects every problem with its file and line instead of stopping at the first, so
``carebot intents check`` can list them all; :func:`load_intents` raises when any is an error.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import string
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from carebot.config import language_codes
from carebot.exceptions import IntentError
from carebot.nlu.yaml_syntax import explain

log = logging.getLogger(__name__)
PARSED_FORMAT = 5  # bump when what ParsedFiles keeps on disk changes (shape or problems found)

REQUIRED = ("id", "examples")
OPTIONAL = (
    "answer",
    "title",
    "answer_threshold",
    "draft_threshold",
    "handoff",
    "tags",
    "public",
    "personal_data",
)
FLAGS = ("handoff", "public", "personal_data")  # true or false


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Problem:
    file: Path
    line: int | None
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {self.severity.value}: {self.message}"


Texts = tuple[tuple[str, str], ...]  # (language code, text), in the file's order
Examples = tuple[tuple[str, tuple[str, ...]], ...]  # (language code, examples), file's order


@dataclass(frozen=True, slots=True)
class Intent:
    id: str
    examples: tuple[str, ...]
    answer: str = ""  # in the default language; empty: none yet (evaluated, but never sent)
    title: str = ""
    answer_threshold: float | None = None
    draft_threshold: float | None = None
    handoff: bool = False
    tags: tuple[str, ...] = ()
    public: bool = False  # its answer may be posted under a public comment
    personal_data: bool = False  # answering needs the customer's details (private only)
    file: Path | None = None
    line: int | None = None
    example_lines: tuple[int, ...] = field(default=(), compare=False)
    # the answer and title in the other languages written (read_intents leaves the default's
    # in `answer` and `title` alone); empty: none
    answers: Texts = ()
    titles: Texts = ()
    # that of `answer` and `title` (the default's, once read_intents set it)
    language: str = field(default="", compare=False)
    # the examples in the other languages written (`examples` holds the default's)
    other_examples: Examples = ()
    other_example_lines: tuple[tuple[int, ...], ...] = field(default=(), compare=False)

    @property
    def label(self) -> str:
        return self.title or self.id.replace("_", " ").capitalize()

    def label_in(self, language: str | None) -> str:
        """The title in ``language`` when written, else :attr:`label`."""
        return dict(self.titles).get(language or "", "") or self.label

    def answer_in(self, language: str | None) -> str:
        """The answer in ``language``; empty when none is written in it. None: the default's
        (:attr:`answer`)."""
        if language is None or language == self.language:
            return self.answer
        return dict(self.answers).get(language, "")

    def written_in(self, default: str) -> dict[str, str]:
        """The answer by language, the default's (``default``) first; those written only."""
        texts = {default: self.answer, **dict(self.answers)}
        return {code: text for code, text in texts.items() if text}

    def render_answer(self, placeholders: Mapping[str, str], language: str | None = None) -> str:
        """The answer in ``language`` (None: the default's) with the placeholders filled in."""
        return self.answer_in(language).format_map(dict(placeholders))

    def in_default(self, language: str) -> Intent:
        """This intent read with ``language`` as the default: a plain answer or title is in it;
        of a mapping, ``language``'s text is :attr:`answer` (empty when it has none) and the
        others stay in :attr:`answers`. A plain text given beside a mapping wins."""
        answer, answers = _in_default(language, self.answer, self.answers)
        title, titles = _in_default(language, self.title, self.titles)
        examples, lines = self.examples, self.example_lines
        written = list(zip(self.other_examples, self._other_lines(), strict=True))
        if not examples:  # given per language
            found = [(texts, at) for (code, texts), at in written if code == language]
            examples, lines = found[0] if found else ((), ())
        kept = [(item, at) for item, at in written if item[0] != language]
        return replace(
            self,
            answer=answer,
            title=title,
            answers=answers,
            titles=titles,
            language=language,
            examples=examples,
            example_lines=lines,
            other_examples=tuple(item for item, _ in kept),
            other_example_lines=tuple(at for _, at in kept),
        )

    def examples_in(self, languages: Iterable[str]) -> tuple[str, ...]:
        """The default language's examples, then those of ``languages`` (in the file's order)."""
        return tuple(example for example, _ in self.placed_examples(languages))

    def all_examples(self) -> list[tuple[str, int | None]]:
        """Every example in every language, with its line (None: not read from a file)."""
        return self.placed_examples(None)

    def placed_examples(self, languages: Iterable[str] | None) -> list[tuple[str, int | None]]:
        """The default language's examples, then those of ``languages`` (None: every one),
        each with its line (None: not read from a file)."""
        wanted = None if languages is None else set(languages)
        groups = [(self.examples, self.example_lines)]
        written = zip(self.other_examples, self._other_lines(), strict=True)
        groups += [(t, at) for (code, t), at in written if wanted is None or code in wanted]
        placed: list[tuple[str, int | None]] = []
        for texts, lines in groups:
            # not read from a file, or the examples replaced since: no lines
            at: tuple[int | None, ...] = lines if len(lines) == len(texts) else (None,) * len(texts)
            placed += zip(texts, at, strict=True)
        return placed

    def _other_lines(self) -> tuple[tuple[int, ...], ...]:
        """:attr:`other_example_lines`, or none for each language (not read from a file)."""
        return self.other_example_lines or ((),) * len(self.other_examples)


def _in_default(language: str, text: str, texts: Texts) -> tuple[str, Texts]:
    """A text field's default-language text, and its texts in the other languages."""
    return text or dict(texts).get(language, ""), tuple((c, t) for c, t in texts if c != language)


@dataclass(frozen=True)
class IntentSet:
    """The intents, and the ``out_of_scope`` messages no intent should answer (not examples)."""

    intents: tuple[Intent, ...]
    out_of_scope: tuple[str, ...] = ()
    # the languages besides the default whose examples are matched ([languages] detect)
    served: tuple[str, ...] = ()
    _by_id: dict[str, Intent] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {intent.id: intent for intent in self.intents})

    def __getitem__(self, intent_id: str) -> Intent:
        return self._by_id[intent_id]

    def __contains__(self, intent_id: object) -> bool:
        return intent_id in self._by_id

    def __len__(self) -> int:
        return len(self.intents)

    def examples(self) -> tuple[list[str], list[str]]:
        """All examples matched (the default language's and those of :attr:`served`) and,
        index for index, the id of the intent each belongs to."""
        texts: list[str] = []
        labels: list[str] = []
        for intent in self.intents:
            matched = intent.examples_in(self.served)
            texts += matched
            labels += [intent.id] * len(matched)
        return texts, labels

    def example_places(self) -> list[tuple[Path | None, int | None]]:
        """The file and line of each example :meth:`examples` gives, index for index."""
        return [
            (intent.file, line)
            for intent in self.intents
            for _, line in intent.placed_examples(self.served)
        ]

    def example_counts(self) -> list[int]:
        """How many examples of each intent are matched, in intent order."""
        return [len(intent.examples_in(self.served)) for intent in self.intents]


@dataclass(frozen=True)
class _FileContent:
    """What one file holds, and the size and time stamp it was read at."""

    stamp: tuple[int, int]
    intents: list[Intent]
    out_of_scope: list[_Located]
    problems: list[Problem]


class ParsedFiles:
    """Files read before, kept until they change: a reload parses only the edited files (YAML
    parsing is most of the time of reading 15,000 examples). With ``store``, what was parsed is
    also kept on disk, so a restart does not parse unchanged files again (a third of a cold
    start)."""

    def __init__(self, store: Path | None = None) -> None:
        self._files: dict[Path, _FileContent] = {}
        self._store = store

    def read(self, file: Path) -> _FileContent:
        info = file.stat()
        stamp = (info.st_mtime_ns, info.st_size)
        known = self._files.get(file) or self._stored(file, stamp)
        if known is not None and known.stamp == stamp:
            self._files[file] = known
            return known
        self._files[file] = self._parse(file, stamp)
        self._keep(file)
        return self._files[file]

    def _stored_path(self, file: Path) -> Path | None:
        if self._store is None:
            return None
        key = hashlib.sha256(f"{PARSED_FORMAT}:{file.resolve()}".encode()).hexdigest()[:24]
        return self._store / f"{key}.pickle"

    def _stored(self, file: Path, stamp: tuple[int, int]) -> _FileContent | None:
        path = self._stored_path(file)
        if path is None or not path.exists():
            return None
        try:
            content = pickle.loads(path.read_bytes())
        except Exception:  # a stale or damaged cache entry is parsed again
            return None
        return content if isinstance(content, _FileContent) and content.stamp == stamp else None

    def _keep(self, file: Path) -> None:
        path = self._stored_path(file)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                pickle.dump(self._files[file], handle, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("Could not keep the parsed %s in %s: %s", file, path.parent, exc)

    @staticmethod
    def _parse(file: Path, stamp: tuple[int, int]) -> _FileContent:
        problems: list[Problem] = []
        intents: list[Intent] = []
        out_of_scope: list[_Located] = []
        doc = _load_yaml(file, problems)
        if doc is not None and _has_shape(doc, file, problems):
            intents = _read_intents(doc, file, problems)
            out_of_scope = _read_out_of_scope(doc, file, problems)
        problems.sort(key=lambda p: p.line or 0)  # a file's problems in reading order
        return _FileContent(stamp, intents, out_of_scope, problems)

    def stale(self, directory: Path) -> bool:
        """True if the intent files under ``directory`` are not those last read (a file was
        added, removed or changed since)."""
        files = {p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml")}
        if files != set(self._files):
            return True
        for file in files:
            info = file.stat()
            if (info.st_mtime_ns, info.st_size) != self._files[file].stamp:
                return True
        return False


def read_intents(
    directory: Path,
    placeholders: Mapping[str, str] | None = None,
    parsed: ParsedFiles | None = None,
    *,
    language: str = "en",
    served: Iterable[str] = (),
) -> tuple[IntentSet, list[Problem]]:
    """Read every ``*.yaml``/``*.yml`` file under ``directory``; return the intents and problems.

    ``parsed`` keeps files between calls, so only files changed since are parsed again.
    ``language``: the default language (``[languages] default``), that of a plain answer and
    a plain list of examples; ``served``: the other languages whose examples are matched
    (``[languages] detect``)."""
    problems: list[Problem] = []
    if not directory.is_dir():
        missing = (
            "intents folder not found: create it (one YAML file per topic), or point "
            "[matcher] intents_dir in config.toml at yours"
        )
        return IntentSet(()), [Problem(directory, None, missing)]
    files = sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml"))
    if not files:
        problems.append(Problem(directory, None, "no intent files (*.yaml) in this folder"))
    if parsed is None:
        parsed = ParsedFiles()
    intents: list[Intent] = []
    out_of_scope: list[_Located] = []
    for file in files:
        content = parsed.read(file)
        intents.extend(intent.in_default(language) for intent in content.intents)
        out_of_scope.extend(content.out_of_scope)
        problems.extend(content.problems)
    problems.extend(_default_examples_problems(intents, language))
    problems.extend(_cross_file_problems(intents))
    problems.extend(_out_of_scope_problems(intents, out_of_scope))
    if placeholders is not None:
        problems.extend(_placeholder_problems(intents, placeholders))
    others = tuple(code for code in dict.fromkeys(served) if code != language)
    found = IntentSet(tuple(intents), tuple(o.text for o in out_of_scope), others)
    return found, problems


def load_intents(
    directory: Path,
    placeholders: Mapping[str, str] | None = None,
    parsed: ParsedFiles | None = None,
    *,
    language: str = "en",
    served: Iterable[str] = (),
) -> IntentSet:
    """Read the intents; raise :class:`IntentError` listing every error (warnings are ignored)."""
    intents, problems = read_intents(
        directory, placeholders, parsed, language=language, served=served
    )
    errors = [p for p in problems if p.severity is Severity.ERROR]
    if errors:
        listing = "\n  ".join(str(p) for p in errors)
        raise IntentError(
            f"{len(errors)} error(s) in intents under {directory}:\n  {listing}\n"
            "Run 'carebot intents check' after fixing them."
        )
    return intents


@dataclass(frozen=True, slots=True)
class _Located:
    text: str
    file: Path
    line: int


def _load_yaml(file: Path, problems: list[Problem]) -> Any:
    """The file's YAML document; None (with the problem) when it cannot be read. A syntax error
    stops the file there: it is explained (:mod:`carebot.nlu.yaml_syntax`), and the other files
    are read all the same."""
    try:
        text = file.read_text(encoding="utf-8")
        return YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        problems.extend(Problem(file, line, message) for line, message in explain(exc, text))
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(file, None, f"cannot read file: {exc}"))
    return None


TOP_LEVEL = ("intents", "out_of_scope")


def _has_shape(doc: Any, file: Path, problems: list[Problem]) -> bool:
    """A mapping with an ``intents:`` list, an ``out_of_scope:`` list, or both; every key that
    is not one of them, or not a list, is reported (what is right is still read)."""
    if not isinstance(doc, dict) or not any(key in doc for key in TOP_LEVEL):
        problems.append(Problem(file, 1, "expected a top-level 'intents:' list"))
        return False
    for key in doc:
        if key not in TOP_LEVEL:
            problems.append(
                Problem(
                    file,
                    _key_line(doc, key, 1),
                    f"unknown top-level key {key!r} (the keys are: {', '.join(TOP_LEVEL)})",
                )
            )
        elif not isinstance(doc[key], list):
            problems.append(
                Problem(file, _key_line(doc, key, 1), f"'{key}:' must be a list (got {doc[key]!r})")
            )
    return True


def _listed(doc: dict[str, Any], key: str) -> Any:
    """The list under ``key``; empty when it is missing or not a list (reported by the shape)."""
    value = doc.get(key)
    return value if isinstance(value, list) else []


def _read_out_of_scope(doc: dict[str, Any], file: Path, problems: list[Problem]) -> list[_Located]:
    items = _listed(doc, "out_of_scope")
    found = []
    for index, item in enumerate(items):
        line = items.lc.item(index)[0] + 1
        if isinstance(item, str) and item.strip():
            found.append(_Located(item.strip(), file, line))
        else:
            problems.append(
                Problem(file, line, f"out_of_scope entries must be non-empty texts (got {item!r})")
            )
    return found


def _read_intents(doc: dict[str, Any], file: Path, problems: list[Problem]) -> list[Intent]:
    nodes = _listed(doc, "intents")
    intents = []
    for index, node in enumerate(nodes):
        line = nodes.lc.item(index)[0] + 1
        intent = _parse_intent(node, file, line, problems)
        if intent is not None:
            intents.append(intent)
    return intents


def _parse_intent(node: Any, file: Path, line: int, problems: list[Problem]) -> Intent | None:
    if not isinstance(node, dict):
        problems.append(
            Problem(file, line, "each intent must be a mapping with id, examples (and answer)")
        )
        return None
    before = len(problems)
    for key in node:
        if key not in REQUIRED + OPTIONAL:
            known = ", ".join(REQUIRED + OPTIONAL)
            problems.append(
                Problem(
                    file, _key_line(node, key, line), f"unknown field {key!r} (fields are: {known})"
                )
            )
    for key in REQUIRED:
        if key not in node or node[key] in (None, "", []):
            what = node.get("id", "intent")
            problems.append(Problem(file, line, f"{what}: missing required field {key!r}"))
    intent_id: Any = node.get("id")
    examples: Any = node.get("examples")
    if intent_id is not None and (not isinstance(intent_id, str) or not intent_id.isidentifier()):
        problems.append(Problem(file, line, f"id {intent_id!r} must be a word like 'order_status'"))
    if isinstance(examples, str):
        problems.append(
            Problem(
                file,
                _key_line(node, "examples", line),
                f"{intent_id}: examples must be a list: put each example on its own line under "
                "`examples:`, starting with '- '",
            )
        )
    elif isinstance(examples, dict):
        _check_example_languages(examples, str(intent_id), file, line, problems)
    elif examples is not None and not _example_list(examples):
        problems.append(
            Problem(
                file,
                _key_line(node, "examples", line),
                f"{intent_id}: examples must be a list of non-empty texts (an example holding "
                "': ' must be in quotes), or such lists per language",
            )
        )
    _check_types(node, file, line, problems)
    if len(problems) > before:
        return None
    per_language: Examples = ()
    per_language_lines: tuple[tuple[int, ...], ...] = ()
    if isinstance(examples, dict):
        per_language = tuple((str(code), _stripped(texts)) for code, texts in examples.items())
        per_language_lines = tuple(_lines(texts) for texts in examples.values())
        examples = []
    lines = _lines(examples)
    answer, answers = _texts(node.get("answer"))
    title, titles = _texts(node.get("title"), strip=False)
    return Intent(
        id=intent_id,
        examples=_stripped(examples),
        other_examples=per_language,
        other_example_lines=per_language_lines,
        answer=answer,
        title=title,
        answers=answers,
        titles=titles,
        answer_threshold=node.get("answer_threshold"),
        draft_threshold=node.get("draft_threshold"),
        handoff=bool(node.get("handoff", False)),
        tags=tuple(str(t) for t in node.get("tags", ())),
        public=bool(node.get("public", False)),
        personal_data=bool(node.get("personal_data", False)),
        file=file,
        line=line,
        example_lines=lines,
    )


def _example_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(e, str) and e.strip() for e in value)


def _stripped(examples: list[str]) -> tuple[str, ...]:
    return tuple(e.strip() for e in examples)


def _lines(examples: Any) -> tuple[int, ...]:
    return tuple(examples.lc.item(i)[0] + 1 for i in range(len(examples)))


def _check_example_languages(
    examples: dict[Any, Any], intent_id: str, file: Path, line: int, problems: list[Problem]
) -> None:
    """``examples`` given per language: known codes, each a non-empty list of texts."""
    if not examples:
        problems.append(
            Problem(file, line, f"{intent_id}: examples: give a list, or lists per language")
        )
    known = language_codes()
    for code, texts in examples.items():
        at = _key_line(examples, code, line)
        if str(code) not in known:
            problems.append(_unknown_language(file, at, f"{intent_id}: examples", code))
        elif not texts or not _example_list(texts):
            problems.append(
                Problem(
                    file,
                    at,
                    f"{intent_id}: the {code} examples must be a list of non-empty texts (an "
                    "example holding ': ' must be in quotes)",
                )
            )


def _check_types(node: dict[str, Any], file: Path, line: int, problems: list[Problem]) -> None:
    for key in ("answer_threshold", "draft_threshold"):
        value = node.get(key)
        if value is not None and not (
            isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1
        ):
            problems.append(
                Problem(
                    file,
                    _key_line(node, key, line),
                    f"{key} must be a number from 0 to 1 (got {value!r})",
                )
            )
    for key in ("answer", "title"):
        _check_texts(node, key, file, line, problems)
    for flag in FLAGS:
        if flag in node and not isinstance(node[flag], bool):
            problems.append(
                Problem(
                    file,
                    _key_line(node, flag, line),
                    f"{flag} must be true or false (got {node[flag]!r})",
                )
            )
    if "tags" in node and not isinstance(node["tags"], list):
        problems.append(Problem(file, _key_line(node, "tags", line), "tags must be a list"))


def _texts(value: Any, *, strip: bool = True) -> tuple[str, Texts]:
    """A field that is one text, or a mapping of language to text (checked before)."""
    if isinstance(value, dict):
        texts = ((str(code), str(text)) for code, text in value.items())
        return "", tuple((code, text.strip() if strip else text) for code, text in texts)
    text = str(value if value is not None else "")
    return text.strip() if strip else text, ()


def _check_texts(
    node: dict[str, Any], key: str, file: Path, line: int, problems: list[Problem]
) -> None:
    """``answer`` or ``title``: a text, or a mapping of known language codes to texts."""
    value = node.get(key)
    where = _key_line(node, key, line)
    if value is None or (isinstance(value, str | int | float) and not isinstance(value, bool)):
        return
    if not isinstance(value, dict):
        problems.append(
            Problem(
                file,
                where,
                f"{node.get('id')}: {key} must be text, or a mapping of language code to text",
            )
        )
        return
    known = language_codes()
    key = f"{node.get('id')}: {key}"
    for code, text in value.items():
        at = _key_line(value, code, where)
        if str(code) not in known:
            problems.append(_unknown_language(file, at, key, code))
        elif not isinstance(text, str | int | float) or isinstance(text, bool) or not str(text):
            problems.append(Problem(file, at, f"{key}: the {code} text must be non-empty text"))


def _unknown_language(file: Path, line: int, where: str, code: object) -> Problem:
    return Problem(
        file,
        line,
        f"{where}: {code!r} is not a language code; use a two-letter ISO 639-1 code in lower "
        "case (en, de, fr, es, ...)",
    )


def _key_line(node: Any, key: str, default: int) -> int:
    try:
        return int(node.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, TypeError):
        return default


def _default_examples_problems(intents: list[Intent], language: str) -> Iterable[Problem]:
    """An intent given examples per language needs some in the default language: those are
    matched whatever languages are served."""
    for intent in intents:
        if not intent.examples and intent.other_examples:
            written = ", ".join(code for code, _ in intent.other_examples)
            yield Problem(
                intent.file or Path("?"),
                intent.line,
                f"{intent.id}: examples: none in {language} ([languages] default), only in "
                f"{written}; add a list under `{language}:`",
            )


def _cross_file_problems(intents: list[Intent]) -> Iterable[Problem]:
    seen_ids: dict[str, Intent] = {}
    seen_examples: dict[str, tuple[Intent, int | None]] = {}
    for intent in intents:
        first = seen_ids.setdefault(intent.id, intent)
        if first is not intent:
            yield Problem(
                intent.file or Path("?"),
                intent.line,
                f"duplicate id {intent.id!r} (first defined at {first.file}:{first.line})",
            )
        for example, line in intent.all_examples():
            key = " ".join(example.casefold().split())
            owner, owner_line = seen_examples.setdefault(key, (intent, line))
            if owner.id != intent.id:
                yield Problem(
                    intent.file or Path("?"),
                    line,
                    f"example {example!r} of {intent.id!r} is also an example of "
                    f"{owner.id!r} ({owner.file}:{owner_line})",
                )


def _out_of_scope_problems(
    intents: list[Intent], out_of_scope: list[_Located]
) -> Iterable[Problem]:
    examples = {
        " ".join(example.casefold().split()): intent
        for intent in intents
        for example, _ in intent.all_examples()
    }
    for item in out_of_scope:
        owner = examples.get(" ".join(item.text.casefold().split()))
        if owner is not None:
            yield Problem(
                item.file,
                item.line,
                f"out-of-scope text {item.text!r} is also an example of {owner.id!r} "
                f"({owner.file}:{owner.line}); evaluation counts it as out of scope",
                Severity.WARNING,
            )


def _placeholder_problems(
    intents: list[Intent], placeholders: Mapping[str, str]
) -> Iterable[Problem]:
    for intent in intents:
        for language, text in (("", intent.answer), *intent.answers):
            which = f"answer ({language})" if language else "answer"
            try:
                names = {name for _, name, _, _ in string.Formatter().parse(text) if name}
            except ValueError as exc:
                yield Problem(
                    intent.file or Path("?"),
                    intent.line,
                    f"{intent.id}: {which} has a stray brace ({exc}); write {{{{ for a literal {{",
                )
                continue
            for name in sorted(names - set(placeholders)):
                yield Problem(
                    intent.file or Path("?"),
                    intent.line,
                    f"{intent.id}: {which} uses {{{name}}}, which is not defined under "
                    "[placeholders] in config.toml",
                )
