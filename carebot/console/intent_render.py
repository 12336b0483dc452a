"""One intent as YAML lines in a file's own style (see :mod:`carebot.console.intent_yaml`).

A text is written plain when YAML reads it back as the same text, else quoted (the file's
quote, or double quotes with escapes for line breaks and control characters). A multi-line or
long answer is a block scalar as the file writes them (``>-`` folded, wrapped at about
:data:`~carebot.console.intent_yaml.WIDTH` columns, or ``|`` literal); a text a block scalar
cannot hold (a line starting with a space) is written double-quoted instead.
"""

from __future__ import annotations

import json

from carebot.console.intent_yaml import FIELD_ORDER, WIDTH, Comments, Style, load
from carebot.nlu.intents import Intent, Texts


def render(
    intent: Intent,
    style: Style,
    *,
    keys: tuple[str, ...] = (),
    comments: Comments | None = None,
    old: dict[str, object] | None = None,
    verbatim: dict[str, list[str]] | None = None,
    language: str = "en",
) -> tuple[str, list[str]]:
    """The intent's lines (ending with a line break) and the comments that had no place left.

    ``keys`` are the fields the intent was written with before (kept in that order, new ones
    after in :data:`FIELD_ORDER`); ``comments`` are those found in its old span; a field whose
    value equals ``old``'s is written as its ``verbatim`` lines (with the comments in them).
    ``language``: the default language, that of the plain title and answer; an intent with
    texts in other languages has its title or answer written per language, the default's
    first."""
    comments = comments or Comments()
    old, verbatim = old or {}, verbatim or {}
    values = _values(intent, keys, language)
    order = _order(keys, values)
    out: list[str] = []
    placed: set[str] = set()
    for key in order:
        anchor = f"field:{key}"
        if key in verbatim and old.get(key, ...) == values[key]:
            lines = verbatim[key]
            comments.end_of_line.pop(anchor, None)
            if key == "examples":
                _drop_example_comments(comments)
        else:
            lines = _field(key, values[key], intent, style)
            lines[0] += comments.end_of_line.get(anchor, "")
            if key == "examples":
                lines = lines[:1] + _examples(intent, language, style, comments)
        out.extend(" " * style.fields + c for c in comments.above.get(anchor, []))
        out.extend(lines)
        placed.add(anchor)
    out.extend(" " * style.fields + c for c in comments.trailing)
    out[0] = " " * style.dash + "- " + out[0].lstrip(" ")
    lost = list(comments.lost) + [
        c
        for anchor, texts in [*comments.above.items(), *comments.end_of_line.items()]
        if anchor not in placed
        for c in ([texts] if isinstance(texts, str) else texts)
    ]
    return "".join(line + style.newline for line in out), lost


def _order(keys: tuple[str, ...], values: dict[str, object]) -> list[str]:
    """The fields to write: those written before in their order, each new one before the first
    that comes after it in :data:`FIELD_ORDER`."""
    order = [k for k in keys if k in values]
    for key in (k for k in FIELD_ORDER if k in values and k not in order):
        rank = FIELD_ORDER.index(key)
        later = [i for i, k in enumerate(order) if k in FIELD_ORDER and FIELD_ORDER.index(k) > rank]
        order.insert(later[0] if later else len(order), key)
    return order


def _drop_example_comments(comments: Comments) -> None:
    """Forget the examples' comments: the examples are kept as written, comments and all."""
    for found in (comments.above, comments.end_of_line):
        for anchor in [a for a in found if a.startswith("example:")]:
            del found[anchor]


def _text(language: str, text: str, others: Texts) -> str | Texts:
    """A title or answer as written: plain, or per language when it has other languages."""
    if not others:
        return text
    return ((language, text), *others) if text else others


def _values(intent: Intent, keys: tuple[str, ...], language: str) -> dict[str, object]:
    values: dict[str, object] = {"id": intent.id}
    if intent.titles:
        values["title"] = _text(language, intent.title, intent.titles)
    elif intent.title:
        values["title"] = intent.title
    if intent.tags or "tags" in keys:
        values["tags"] = intent.tags
    for flag in ("handoff", "public", "personal_data"):
        if getattr(intent, flag) or flag in keys:
            values[flag] = getattr(intent, flag)
    for key in ("answer_threshold", "draft_threshold"):
        if getattr(intent, key) is not None:
            values[key] = getattr(intent, key)
    values["examples"] = _examples_value(intent, language)
    if intent.answers:
        values["answer"] = _text(language, intent.answer, intent.answers)
    elif intent.answer:
        values["answer"] = intent.answer
    return values


def _field(key: str, value: object, intent: Intent, style: Style) -> list[str]:
    pad = " " * style.fields
    if key == "tags":
        tags = [str(t) for t in intent.tags]
        if style.flow_tags or not tags:
            return [f"{pad}tags: [{', '.join(scalar(t, style, flow=True) for t in tags)}]"]
        return [f"{pad}tags:"] + [f"{' ' * style.items}- {scalar(t, style)}" for t in tags]
    if key in ("handoff", "public", "personal_data"):
        return [f"{pad}{key}: {'true' if value else 'false'}"]
    if key in ("answer_threshold", "draft_threshold"):
        return [f"{pad}{key}: {value!r}"]
    if key == "examples":
        return [f"{pad}examples:" if value else f"{pad}examples: []"]
    if isinstance(value, tuple):  # per language: answer or title
        inner = style.fields + 2
        lines = [f"{pad}{key}:"]
        for code, text in value:
            if key == "answer":
                lines.extend(_answer(text, style, name=code, indent=inner))
            else:
                lines.append(f"{' ' * inner}{code}: {scalar(text, style)}")
        return lines
    if key == "answer":
        return _answer(intent.answer, style)
    return [f"{pad}{key}: {scalar(str(value), style)}"]


def _examples_value(intent: Intent, language: str) -> object:
    """The examples as written: a list, or (language, examples) pairs when given per language,
    the default's first."""
    if not intent.other_examples:
        return intent.examples
    others = intent.other_examples
    return ((language, intent.examples), *others) if intent.examples else others


def _examples(intent: Intent, language: str, style: Style, comments: Comments) -> list[str]:
    """The examples' lines (a list under ``examples:``, or a list under each language)."""
    if not intent.other_examples:
        return _example_items(intent.examples, " " * style.items, style, comments)
    lists = [(language, intent.examples)] if intent.examples else []
    lists += list(intent.other_examples)
    lines: list[str] = []
    for code, texts in lists:
        lines.append(f"{' ' * (style.fields + 2)}{code}:")
        lines.extend(_example_items(texts, " " * (style.fields + 4), style, comments))
    return lines


def _example_items(
    examples: tuple[str, ...], pad: str, style: Style, comments: Comments
) -> list[str]:
    lines: list[str] = []
    for example in examples:
        anchor = f"example:{example}"
        lines.extend(pad + c for c in comments.above.pop(anchor, []))
        lines.append(f"{pad}- {scalar(example, style)}{comments.end_of_line.pop(anchor, '')}")
    return lines


def scalar(text: str, style: Style, *, flow: bool = False) -> str:
    """``text`` plain when YAML reads it back unchanged, else quoted."""
    plain = text and text == text.strip() and "\n" not in text and "\r" not in text
    if plain:
        probe = f"k: [{text}]\n" if flow else f"k: {text}\n"
        try:
            plain = load(probe) == {"k": [text] if flow else text}
        except Exception:  # any YAML error: not writable plain
            plain = False
    if plain:
        return text
    if style.quote == "'" and text.isprintable():
        return "'" + text.replace("'", "''") + "'"
    return json.dumps(text, ensure_ascii=False)


def _answer(answer: str, style: Style, *, name: str = "answer", indent: int = -1) -> list[str]:
    """``name: answer`` at ``indent`` (default: the fields' column), in the file's answer style."""
    indent = style.fields if indent < 0 else indent
    pad = " " * indent
    head = f"{pad}{name}:"
    one_line = "\n" not in answer and len(head) + 1 + len(answer) <= WIDTH
    if style.answer in ("plain", "'", '"') and one_line:
        return [f"{head} {scalar(answer, style)}"]
    block = style.answer if style.answer[0] in "|>" else ">-"
    body = _folded(answer) if block.startswith(">") else _literal(answer)
    if body is None:
        return [f"{head} {json.dumps(answer, ensure_ascii=False)}"]
    inner = " " * (indent + 2)
    return [f"{head} {block}"] + [inner + line if line else "" for line in body]


def _folded(answer: str) -> list[str] | None:
    """The lines of a folded block holding ``answer``; None when folding cannot hold it."""
    parts = answer.split("\n")
    if any(p != p.strip() or "\t" in p or "  " in p for p in parts):
        return None
    lines: list[str] = []
    for index, part in enumerate(parts):
        if index:
            lines.append("")
        lines.extend(_wrap(part, WIDTH - 6))
    return lines


def _wrap(part: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in part.split(" ") if part else []:
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def _literal(answer: str) -> list[str] | None:
    parts = answer.split("\n")
    if parts[0].startswith((" ", "\t")) or any(p.rstrip() != p for p in parts):
        return None
    return parts
