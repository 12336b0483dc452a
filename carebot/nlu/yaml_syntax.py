"""YAML syntax errors in intent files, in words ops staff can act on.

The YAML parser says where it gave up and what it expected (``expected <block end>, but found
'-'``), which is where a mistake became impossible to read past, not what the mistake was. The
mistakes people make in intent files are few: an indentation that does not line up, a quote
never closed, a tab, a ``:`` inside an unquoted text, a field given twice. :func:`explain`
recognises them and says which line to look at and what to do; the parser's own words follow
in brackets, for anything it did not recognise.
"""

from __future__ import annotations

import re

from ruamel.yaml.error import MarkedYAMLError

LIST_ITEMS = "list items under `examples:` start with '- ' indented the same"
FIELDS = "an intent's fields (id, examples, answer...) line up under its id"
TABS = "YAML allows only spaces there: replace the tab with spaces"
_INDENTATION_PROBLEMS = (
    "expected <block end>",
    "did not find expected key",
    "did not find expected '-' indicator",
    "mapping values are not allowed here",
    "could not find expected ':'",
)
# ``key: value`` where the value holds ``: `` again (or ends with ``:``): YAML reads a mapping.
_SECOND_COLON = re.compile(r"^\s*(?:-\s+)?[^\s'\"#][^:#]*:\s+[^'\"\s].*?:(\s|$)")


def explain(exc: MarkedYAMLError, text: str) -> list[tuple[int | None, str]]:
    """What went wrong, as (line, message) pairs: one per tab-indented line for a tab, else one.
    Every message starts with ``YAML syntax:``."""
    lines = text.splitlines()
    detail = _parser_words(exc)
    if "'\\t'" in (exc.problem or ""):
        tabs = [n for n, line in enumerate(lines, start=1) if "\t" in _indentation(line)]
        if tabs:
            return [(n, f"YAML syntax: line {n} is indented with a tab; {TABS}") for n in tabs]
    line, hint = _hint(exc, lines)
    if hint is None:
        return [(line, f"YAML syntax: {detail}")]
    if (exc.problem or "").startswith("found duplicate key"):
        return [(line, f"YAML syntax: {hint}")]
    return [(line, f"YAML syntax: {hint} (YAML: {exc.problem or exc.context})")]


def _hint(exc: MarkedYAMLError, lines: list[str]) -> tuple[int | None, str | None]:
    """The line to look at and what to do there; None when the mistake is not a known one."""
    problem, context = exc.problem or "", exc.context or ""
    at = exc.problem_mark.line + 1 if exc.problem_mark else None
    opened = exc.context_mark.line + 1 if exc.context_mark else None
    quote = _unclosed_quote(lines, max(at or 0, opened or 0))
    if "quoted scalar" in context:
        quote = quote or opened
    if quote is not None and ("quoted scalar" in context or "expected <block end>" in problem):
        return quote, (
            f"a quote opened on line {quote} is never closed: end the text with the same "
            "quote, or leave the quotes out"
        )
    if "flow sequence" in context and opened is not None:
        return opened, f"a '[' opened on line {opened} is never closed with ']'"
    if problem.startswith("found duplicate key") and at is not None:
        key = problem.split('"')[1] if '"' in problem else "a field"
        first = _first_key_line(lines, key, opened or 1, at)
        twice = f"lines {first} and {at}" if first else f"line {at}"
        return at, f"{key!r} is given twice ({twice}): keep one"
    if "could not find expected ':'" in problem and opened is not None:
        return opened, (
            f"line {opened} needs ':' after its field name (like `answer: ...`); if it has "
            f"one, check its indentation: {LIST_ITEMS}"
        )
    if any(p in problem for p in _INDENTATION_PROBLEMS) and at is not None:
        if "mapping values" in problem and _SECOND_COLON.match(_line(lines, at)):
            return at, (
                f"the text on line {at} holds ': ', which YAML reads as a new field: put the "
                'whole text in quotes, like answer: "Open: 9 to 5"'
            )
        return at, f"check the indentation of line {at}: {LIST_ITEMS}, and {FIELDS}"
    return at or opened, None


def _parser_words(exc: MarkedYAMLError) -> str:
    if exc.context and exc.context_mark and exc.problem:
        return f"{exc.problem} ({exc.context} started on line {exc.context_mark.line + 1})"
    return str(exc.problem or exc.context)


def _indentation(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _line(lines: list[str], number: int) -> str:
    return lines[number - 1] if 0 < number <= len(lines) else ""


def _unclosed_quote(lines: list[str], last: int) -> int | None:
    """The first line up to ``last`` whose text opens a quote it does not close. The parser
    names where it noticed, which is later than the mistake when the quote left open swallowed
    the next lines up to another quote."""
    for number in range(1, last + 1):
        text = _line(lines, number).strip()
        text = text[2:].lstrip() if text.startswith("- ") else text
        text = _VALUE.sub("", text, count=1)
        text = re.sub(r"(['\"])\s+#.*$", r"\1", text)  # a comment after the closing quote
        if text[:1] in ("'", '"') and (len(text) == 1 or not text.endswith(text[0])):
            return number
    return None


_VALUE = re.compile(r"^[A-Za-z_][\w ]*:\s+")  # a ``key: `` before the value


def _first_key_line(lines: list[str], key: str, start: int, end: int) -> int | None:
    pattern = re.compile(rf"^\s*(?:-\s+)?{re.escape(key)}\s*:")
    for number in range(start, end):
        if pattern.match(_line(lines, number)):
            return number
    return None
