"""Labelled data in, intent files out: ``carebot intents import``, and the reader ``carebot eval``
uses for its test rows.

Two input formats, told apart by their first character (``{``/``[`` is JSON):

* CSV with a header row: a ``text`` column and an ``intent`` column (``category`` or ``label``
  are accepted for it, so BANKING77's files load as they are); an optional ``answer`` column
  gives the intent's answer (the first non-empty one wins); other columns are ignored.
* JSON in the CLINC150 layout: an object whose values are lists of ``[text, intent]`` pairs.
  Import reads the ``train`` and ``oos_train`` keys, evaluation ``test`` and ``oos_test`` (the
  second key is optional). A bare list of pairs is read as is.

A row whose intent is ``oos`` or empty is out of scope: no intent should answer it. Intent names
are made into valid ids (``Card Arrival`` -> ``card_arrival``), the same way for import and
evaluation, so test labels keep matching the imported ids.

Import writes one ``imported.yaml`` for a small set (up to ``SMALL_SET`` intents); a larger set
is grouped by the first word of the id (``card_arrival``, ``card_linking`` -> ``card.yaml``), and
an intent sharing its first word with no other gets its own file. Out-of-scope texts go to
``out_of_scope.yaml``. A text seen before (case and spacing ignored) is dropped, whatever its
intent: the first row wins, as one example under two intents is an error in intent files.
"""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from carebot.exceptions import DataError

TRAIN_KEYS = ("train", "oos_train")
TEST_KEYS = ("test", "oos_test")
INTENT_COLUMNS = ("intent", "category", "label")
OUT_OF_SCOPE_LABEL = "oos"
OUT_OF_SCOPE_FILE = "out_of_scope.yaml"
SMALL_SET = 20


@dataclass(frozen=True, slots=True)
class LabelledRow:
    """One message and its intent id (``None``: out of scope); ``where`` locates it in the file."""

    text: str
    intent: str | None
    answer: str = ""
    where: str = ""


@dataclass(frozen=True)
class LabelledData:
    """The rows of one file, and every intent name that was changed into a valid id."""

    source: Path
    rows: tuple[LabelledRow, ...]
    renamed: dict[str, str] = field(default_factory=dict)
    empty_texts: int = 0


def read_labelled(path: Path, json_keys: tuple[str, str] = TRAIN_KEYS) -> LabelledData:
    """Read a CSV or CLINC150-style JSON file; raise :class:`DataError` naming file and row."""
    try:
        content = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the file: {exc}") from exc
    if path.suffix.lower() == ".json" or content.lstrip()[:1] in ("{", "["):
        raw = _json_rows(path, content, json_keys)
    else:
        raw = _csv_rows(path, content)
    renamed: dict[str, str] = {}
    rows, empty = [], 0
    for text, label, answer, where in raw:
        if not text.strip():
            empty += 1
            continue
        intent = _intent_id(path, label, where, renamed)
        rows.append(LabelledRow(" ".join(text.split()), intent, answer.strip(), where))
    return LabelledData(path, tuple(rows), renamed, empty)


_Raw = tuple[str, str, str, str]  # text, intent label, answer, where


def _csv_rows(path: Path, content: str) -> Iterator[_Raw]:
    reader = csv.reader(StringIO(content, newline=""), strict=True)
    try:
        header = [name.strip().lower() for name in next(reader, [])]
        if not header:
            raise DataError(f"{path}: empty file; expected a header row 'text,intent'")
        text_at, intent_at, answer_at = _columns(path, header)
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            cells = record + [""] * (len(header) - len(record))
            answer = cells[answer_at] if answer_at is not None else ""
            yield cells[text_at], cells[intent_at], answer, f"line {reader.line_num}"
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from exc


def _columns(path: Path, header: list[str]) -> tuple[int, int, int | None]:
    intent = next((name for name in INTENT_COLUMNS if name in header), None)
    if "text" not in header or intent is None:
        missing = "text" if "text" not in header else "intent"
        raise DataError(
            f"{path}:1: no '{missing}' column (columns: {', '.join(header)}); expected a "
            "header 'text,intent' (intent may be called category or label; answer is optional)"
        )
    answer = header.index("answer") if "answer" in header else None
    return header.index("text"), header.index(intent), answer


def _json_rows(path: Path, content: str, keys: tuple[str, str]) -> Iterator[_Raw]:
    try:
        data = json.loads(content)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    if isinstance(data, list):
        yield from _pairs(path, "", data)
        return
    if not isinstance(data, dict) or keys[0] not in data:
        found = ", ".join(repr(k) for k in data) if isinstance(data, dict) else "none"
        raise DataError(
            f"{path}: expected a JSON object with the key {keys[0]!r} (and optionally "
            f"{keys[1]!r}) holding [text, intent] pairs, as in CLINC150; keys found: {found}"
        )
    for key in keys:
        if key in data:
            if not isinstance(data[key], list):
                raise DataError(f"{path}: {key!r} must be a list of [text, intent] pairs")
            yield from _pairs(path, key, data[key])


def _pairs(path: Path, key: str, items: list[Any]) -> Iterator[_Raw]:
    for index, item in enumerate(items):
        where = f"{key}[{index}]"
        if not (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and (item[1] is None or isinstance(item[1], str))
        ):
            raise DataError(f"{path}: {where}: expected [text, intent], got {item!r:.80}")
        yield item[0], item[1] or "", "", where


def _intent_id(path: Path, label: str, where: str, renamed: dict[str, str]) -> str | None:
    """The valid intent id for a label; ``None`` for an out-of-scope row."""
    label = label.strip()
    if not label or label.casefold() == OUT_OF_SCOPE_LABEL:
        return None
    intent = re.sub(r"\W+", "_", label).strip("_").lower()
    if not intent:
        raise DataError(f"{path}: {where}: intent {label!r} has no letters or digits for an id")
    if not intent.isidentifier():
        intent = f"intent_{intent}"
    if intent != label:
        renamed.setdefault(label, intent)
    return intent


@dataclass
class ImportResult:
    """What an import found and wrote."""

    source: Path
    intents: dict[str, list[str]] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)
    out_of_scope: list[str] = field(default_factory=list)
    duplicates: int = 0
    conflicting: int = 0  # duplicates whose intent differed from the first row's
    empty_texts: int = 0
    renamed: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    others: list[Path] = field(default_factory=list)  # intent files already in the folder

    @property
    def examples(self) -> int:
        return sum(len(texts) for texts in self.intents.values())


def collect(data: LabelledData) -> ImportResult:
    """Group rows into intents and out-of-scope texts, dropping repeated texts (first wins)."""
    result = ImportResult(data.source, empty_texts=data.empty_texts, renamed=dict(data.renamed))
    owners: dict[str, str | None] = {}
    for row in data.rows:
        key = " ".join(row.text.casefold().split())
        if key in owners:
            result.duplicates += 1
            result.conflicting += owners[key] != row.intent
            continue
        owners[key] = row.intent
        if row.intent is None:
            result.out_of_scope.append(row.text)
            continue
        result.intents.setdefault(row.intent, []).append(row.text)
        if row.answer and not result.answers.get(row.intent):
            result.answers[row.intent] = row.answer
    return result


def import_intents(source: Path, out: Path, *, force: bool = False) -> ImportResult:
    """Read ``source`` and write intent files into ``out``; refuse to overwrite without force."""
    result = collect(read_labelled(source, TRAIN_KEYS))
    if not result.intents:
        raise DataError(f"{source}: no in-scope rows, so no intents to write")
    files = {out / name: ids for name, ids in group_files(list(result.intents)).items()}
    targets = [*files, *([out / OUT_OF_SCOPE_FILE] if result.out_of_scope else [])]
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        names = ", ".join(p.name for p in existing[:5]) + (" ..." if len(existing) > 5 else "")
        raise DataError(
            f"{out}: would overwrite {len(existing)} file(s) ({names}); use --force to replace"
        )
    out.mkdir(parents=True, exist_ok=True)
    result.others = sorted(
        p for p in out.rglob("*") if p.suffix in (".yaml", ".yml") and p not in targets
    )
    for path, ids in files.items():
        intents = [_intent_node(i, result.intents[i], result.answers.get(i, "")) for i in ids]
        _write(
            path, {"intents": intents}, _header(source, any(not n.get("answer") for n in intents))
        )
    if result.out_of_scope:
        header = (
            _header(source, False) + "# Messages no intent should answer; used by carebot eval.\n"
        )
        _write(out / OUT_OF_SCOPE_FILE, {"out_of_scope": result.out_of_scope}, header)
    result.files = targets
    return result


def group_files(ids: list[str]) -> dict[str, list[str]]:
    """File name -> intent ids, in first-seen order (see the module docstring)."""
    if len(ids) <= SMALL_SET:
        return {"imported.yaml": ids}
    groups: dict[str, list[str]] = defaultdict(list)
    for intent in ids:
        groups[intent.split("_")[0]].append(intent)
    return {
        f"{prefix if len(members) > 1 else members[0]}.yaml": members
        for prefix, members in groups.items()
    }


def _intent_node(intent: str, examples: list[str], answer: str) -> dict[str, Any]:
    node: dict[str, Any] = {"id": intent, "examples": examples}
    if answer:
        node["answer"] = answer
    return node


def _header(source: Path, answerless: bool) -> str:
    text = f"# Imported from {source.name} by 'carebot intents import'. Edit freely.\n"
    if answerless:
        text += (
            "# Add an 'answer:' to each intent: without one it is evaluated, but handed to a\n"
            "# person instead of answered. Then run 'carebot intents check'.\n"
        )
    return text


def _write(path: Path, document: dict[str, Any], header: str) -> None:
    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # one example per line, however long
    buffer = StringIO()
    yaml.dump(document, buffer)
    path.write_text(header + buffer.getvalue(), encoding="utf-8")
