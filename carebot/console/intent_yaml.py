"""Where each intent sits in an intents file's text, and one intent written in the file's style.

:func:`layout` finds each intent's span of lines (from its ``- `` line to its last line, not
counting the blank lines and the list-level comments after it, which belong to what follows) and
the file's style: indentation, answer style (``>-``, ``|``, plain, quoted), flow or block tags.
:func:`render` writes one intent in that style, quoting a text only when YAML needs it.

A field whose value an edit leaves as it was keeps its lines as written (its comments, quoting
and wrapping included); only changed fields are written anew. In those, comments are kept where
that is unambiguous:

- a comment line above a field (``title``, ``answer``...) stays above that field;
- a comment at the end of a field's first line (``handoff: true  # legal``) stays on it;
- a comment above or after an example stays with that example, as long as its text is kept;
- comment lines after the intent's last field, indented as its fields, stay at its end.

A block scalar ending in blank lines it keeps (``|+``) loses them when its field is written
as it was: the check that the file reads back then refuses the save (edit it by hand).

Comments of a removed field or example are dropped and listed (:attr:`Span.comments` tells which
were found; :func:`render` returns those it could not place), so the console can say so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

FIELD_ORDER = (
    "id",
    "title",
    "tags",
    "handoff",
    "public",
    "personal_data",
    "answer_threshold",
    "draft_threshold",
    "examples",
    "answer",
)
WIDTH = 100  # the shipped files wrap answers at about this column
_BLOCK_HEADER = re.compile(r"^([|>][-+0-9]*)(\s+#.*)?$")


class LayoutError(ValueError):
    """The file's intents cannot be edited in place (not a block list of mappings)."""


@dataclass(frozen=True)
class Style:
    """How a file writes its intents."""

    dash: int = 2  # column of an intent's '-'
    fields: int = 4  # column of its fields
    items: int = 6  # column of the '-' of its examples (and block tags)
    answer: str = ">-"  # a block header, or "plain", "'" or '"'
    flow_tags: bool = True
    quote: str = "'"  # the quote used when one is needed
    blank_between: bool = True  # a blank line between intents
    newline: str = "\n"


@dataclass
class Comments:
    """The comments of one intent, by what they sit next to."""

    above: dict[str, list[str]] = field(default_factory=dict)  # "field:x" / "example:text"
    end_of_line: dict[str, str] = field(default_factory=dict)
    trailing: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # next to nothing that can be told


@dataclass(frozen=True)
class Span:
    """One intent's lines: ``lines[start:end]`` of the file, its id and its own style."""

    intent_id: str
    start: int
    end: int
    style: Style
    keys: tuple[str, ...]
    comments: Comments
    values: dict[str, object] = field(default_factory=dict)  # as carebot's loader reads them
    verbatim: dict[str, list[str]] = field(default_factory=dict)  # each field's own lines


@dataclass(frozen=True)
class Layout:
    """A file's lines (with their line ends), its intents' spans and its style."""

    lines: list[str]
    spans: tuple[Span, ...]
    style: Style

    def span(self, intent_id: str) -> Span:
        for span in self.spans:
            if span.intent_id == intent_id:
                return span
        known = ", ".join(s.intent_id for s in self.spans)
        raise LayoutError(f"no intent {intent_id!r} in this file (it has: {known})")


@lru_cache(maxsize=1)
def _yaml() -> YAML:
    return YAML(typ="rt")


def load(text: str) -> Any:
    return _yaml().load(text)


def layout(text: str) -> Layout:
    """The spans and style of the intents in ``text``; :class:`LayoutError` when the file is not
    a block-style ``intents:`` list of mappings (edit such a file by hand)."""
    try:
        doc = load(text)
    except YAMLError as exc:
        raise LayoutError(f"the file is not valid YAML ({exc}); fix it by hand first") from exc
    items: Any = doc.get("intents") if isinstance(doc, dict) else None
    if not hasattr(items, "lc") or _flow(items):
        raise LayoutError("the file has no block-style 'intents:' list (one '- id:' per intent)")
    lines = text.splitlines(keepends=True)
    later_keys = [doc.lc.key(k)[0] for k in doc if doc.lc.key(k)[0] > doc.lc.key("intents")[0]]
    boundary = min(later_keys, default=len(lines))
    starts = [_dash_line(lines, items.lc.item(i)[0]) for i in range(len(items))]
    spans = []
    node: Any
    for i, node in enumerate(items):
        if not isinstance(node, dict) or _flow(node):
            raise LayoutError(f"intent number {i + 1} is not a block mapping: edit it by hand")
        start = starts[i]
        dash = _indent(lines[start])
        end = _trim(lines, start, starts[i + 1] if i + 1 < len(starts) else boundary, dash)
        style = _style(lines, node, dash, items.lc.item(i)[1], text)
        comments = _comments(lines, node, start, end, style)
        spans.append(
            Span(
                str(node.get("id")),
                start,
                end,
                style,
                tuple(node),
                comments,
                values=_values(node),
                verbatim=_verbatim(lines, node, end, style),
            )
        )
    style = spans[-1].style if spans else Style(newline=_newline(text))
    blank = len(starts) < 2 or not lines[starts[1] - 1].strip()
    answers = [s.style.answer for s in spans]
    common = max(answers, key=answers.count) if answers else style.answer
    file_style = Style(
        dash=style.dash,
        fields=style.fields,
        items=style.items,
        answer=common,
        flow_tags=style.flow_tags,
        quote=style.quote,
        blank_between=blank,
        newline=style.newline,
    )
    return Layout(lines, tuple(spans), file_style)


def _values(node: Any) -> dict[str, object]:
    """The intent's fields as :func:`carebot.nlu.intents.read_intents` reads them."""
    read: dict[str, Any] = {
        "id": node.get("id"),
        "title": _text(node.get("title", ""), strip=False),
        "tags": tuple(str(t) for t in node.get("tags") or ()),
        "handoff": node.get("handoff", False),
        "public": node.get("public", False),
        "personal_data": node.get("personal_data", False),
        "answer_threshold": node.get("answer_threshold"),
        "draft_threshold": node.get("draft_threshold"),
        "examples": _examples(node.get("examples")),
        "answer": _text(node.get("answer")),
    }
    return {k: v for k, v in read.items() if k in node}


def _examples(value: Any) -> object:
    """The examples as read: a tuple, or (language, examples) pairs when given per language."""
    if isinstance(value, dict):
        return tuple(
            (str(code), tuple(str(e).strip() for e in texts or ())) for code, texts in value.items()
        )
    return tuple(str(e).strip() for e in value or ())


def _text(value: Any, *, strip: bool = True) -> object:
    """A text field as read: its text, or (language, text) pairs when given per language."""
    if isinstance(value, dict):
        texts = ((str(code), str(text)) for code, text in value.items())
        return tuple((code, text.strip() if strip else text) for code, text in texts)
    text = str(value if value is not None else "")
    return text.strip() if strip else text


def _verbatim(lines: list[str], node: Any, end: int, style: Style) -> dict[str, list[str]]:
    """Each field's lines as written (its first without the intent's '- '), up to the next
    field, without the blank lines and the comments at the fields' level after it."""
    starts = sorted((node.lc.key(k)[0], k) for k in node)
    found = {}
    for (line, key), (stop, _) in zip(starts, [*starts[1:], (end, "")], strict=True):
        while stop > line + 1 and (
            not lines[stop - 1].strip()
            or (
                lines[stop - 1].lstrip().startswith("#")
                and _indent(lines[stop - 1]) <= style.fields
            )
        ):
            stop -= 1
        own = [text.rstrip("\r\n") for text in lines[line:stop]]
        own[0] = " " * style.fields + own[0][style.fields :]
        found[key] = own
    return found


def _flow(node: Any) -> bool:
    return bool(node.fa.flow_style())


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _dash_line(lines: list[str], line: int) -> int:
    while line > 0 and not lines[line].lstrip().startswith("-"):
        line -= 1
    return line


def _trim(lines: list[str], start: int, end: int, dash: int) -> int:
    """``end`` moved back over blank lines and comments at the list's level or less."""
    while end > start + 1:
        text = lines[end - 1]
        if text.strip() and not (text.lstrip().startswith("#") and _indent(text) <= dash):
            break
        end -= 1
    return end


def _style(lines: list[str], node: Any, dash: int, fields: int, text: str) -> Style:
    items = fields + 2
    examples = node.get("examples")
    if hasattr(examples, "lc") and len(examples) and not isinstance(examples, dict):
        items = _indent(lines[_dash_line(lines, examples.lc.item(0)[0])])
    answer = "plain"
    if "answer" in node:
        after = _after_colon(lines[node.lc.key("answer")[0]], "answer")
        header = _BLOCK_HEADER.match(after)
        quoted = after[:1] if after[:1] and after[:1] in "'\"" else "plain"
        answer = header.group(1) if header else quoted  # per language (nothing after): plain
    tags_line = _after_colon(lines[node.lc.key("tags")[0]], "tags") if "tags" in node else "["
    doubles, singles = len(re.findall(r"[:-] \"", text)), len(re.findall(r"[:-] '", text))
    return Style(
        dash=dash,
        fields=fields,
        items=items,
        answer=answer,
        flow_tags=tags_line.startswith("["),
        quote='"' if doubles > singles else "'",
        newline=_newline(text),
    )


def _after_colon(line: str, key: str) -> str:
    return line.split(f"{key}:", 1)[1].strip() if f"{key}:" in line else ""


def _comments(lines: list[str], node: Any, start: int, end: int, style: Style) -> Comments:
    anchors: dict[int, str] = {node.lc.key(k)[0]: f"field:{k}" for k in node}
    examples = node.get("examples")
    lists = list(examples.values()) if isinstance(examples, dict) else [examples]
    for listed in (found for found in lists if hasattr(found, "lc")):
        for i, example in enumerate(listed):
            anchors.setdefault(listed.lc.item(i)[0], f"example:{str(example).strip()}")
    found, pending, block = Comments(), list[str](), False
    for number in range(start, end):
        text = lines[number].rstrip("\r\n")
        anchor = anchors.get(number)
        if anchor is not None:
            found.above.setdefault(anchor, []).extend(pending)
            pending = []
            comment = _end_comment(text, node, anchor)
            if comment:
                found.end_of_line[anchor] = comment
            block = anchor == "field:answer" and style.answer[0] in "|>"
        elif not text.strip() or (block and _indent(text) > style.fields):
            continue
        elif text.lstrip().startswith("#"):
            pending.append(text.strip())
        else:  # the continuation of a text that spans lines
            found.lost.extend(pending)
            pending = []
    found.trailing = pending
    return found


def _end_comment(text: str, node: Any, anchor: str) -> str:
    """The `` # ...`` at the end of an anchor's line, with the spaces before it."""
    kind, _, name = anchor.partition(":")
    if kind == "field":
        value_col = node.lc.value(name)[1] if node.lc.value(name)[0] == node.lc.key(name)[0] else 0
        header = _BLOCK_HEADER.match(_after_colon(text, name))
        if header or not value_col:
            hit = re.search(r"\s+#.*$", text[text.index(":") + 1 :])
            return hit.group(0) if hit else ""
    else:
        value_col = text.index("-") + 1
    return _after_value(text, value_col)


def _after_value(text: str, col: int) -> str:
    """What follows a one-line value starting at ``col`` when it is a comment, else ''."""
    while col < len(text) and text[col] == " ":
        col += 1
    opener = text[col : col + 1]
    end = col
    if opener in ("'", '"'):
        end = _closing_quote(text, col)
    elif opener == "[":
        end = text.find("]", col) + 1 if "]" in text[col:] else len(text)
    hit = re.search(r"\s+#", text[end:]) if opener not in ("'", '"', "[") else None
    rest = text[end + hit.start() :] if hit else text[end:]
    return rest if rest.strip().startswith("#") else ""


def _closing_quote(text: str, col: int) -> int:
    quote, i = text[col], col + 1
    while i < len(text):
        if quote == '"' and text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            if quote == "'" and text[i + 1 : i + 2] == "'":
                i += 2
                continue
            return i + 1
        i += 1
    return len(text)
