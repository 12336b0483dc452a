"""Hypothesis strategies made from the JSON schemas of carebot/openapi.yaml, and the ways of
breaking what they make.

:class:`Schemas` turns a schema (the subset the spec uses: ``$ref``, ``allOf``, ``oneOf``,
``anyOf``, ``const``, ``enum``, ``type`` (one or a list), object ``properties`` /
``required`` / ``additionalProperties``, array ``items`` / ``minItems`` / ``maxItems``,
string ``minLength`` / ``maxLength`` / ``pattern`` / ``format`` (``date-time``, ``date``),
number bounds) into a strategy of valid-shaped values. Strings are mostly what people write
(customer phrases, names, digits) and sometimes any Unicode text, NUL bytes included.

:func:`broken_json` and :func:`broken_form` then break a valid value in one of the ways a
careless or hostile sender would: a field of the wrong type or missing, huge or negative
numbers (dates before 1970, past 9999), NUL bytes and lone surrogates in strings, deep
nesting, a very long string, the same key twice, a body that is not JSON (or not UTF-8) at
all. Each returns the body as bytes and the name of what was done (``valid`` when nothing).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import quote

import yaml
from hypothesis import strategies as st

Json = Any
Draw = Callable[[st.SearchStrategy[Any]], Any]
MAX_INT = 2**53 - 1
PHRASES = (
    "where is my order",
    "where is my order, I will call my lawyer",
    "I want a refund now, this is a disgrace",
    "how do I return an item",
    "delete my account",
    "thanks!",
    "can I talk to a person",
    "return item label",
    "/start",
    "ok",
    "Grüße aus München 📦",
    "مرحبا، أين طلبي؟",
    "注文はどこですか",
)
NASTY = (
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "\ufeff",
    "\u202e",
    "\r\n",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "{{7*7}}",
    "%s%n",
    "../../etc/passwd",
    "\U0001d573\U0001d58a\U0001d591\U0001d591\U0001d594",  # "Hello" in Fraktur
)


@cache
def spec() -> dict[str, Any]:
    """carebot/openapi.yaml, as the installed package ships it."""
    text = resources.files("carebot").joinpath("openapi.yaml").read_text(encoding="utf-8")
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def words(min_size: int = 0, max_size: int | None = None) -> st.SearchStrategy[str]:
    """Text as the doors get it: mostly phrases and plain words, sometimes any Unicode."""
    most = max_size if max_size is not None else 60
    plain = st.one_of(
        st.sampled_from(PHRASES),
        st.text(st.characters(codec="ascii", categories=["L", "Nd"]), min_size=1, max_size=12),
        st.integers(0, 10**12).map(str),
    )
    anything = st.text(max_size=max(min_size, min(most, 40)), min_size=min_size)
    found = st.one_of(plain, plain, plain, anything, st.sampled_from(NASTY))
    return found.filter(lambda s: min_size <= len(s) <= most)


class Schemas:
    """Strategies for the schemas of ``document`` (an OpenAPI document)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self._document = document

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in schema:
            node: Any = self._document
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[int(part)] if isinstance(node, list) else node[part]
            schema = node
        return schema

    def merged(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        """An ``allOf`` as one object schema: the properties and required fields of all."""
        whole: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in schema["allOf"]:
            part = self.resolve(part)
            if "allOf" in part:
                part = self.merged(part)
            whole["properties"] = {**whole["properties"], **part.get("properties", {})}
            whole["required"] = [*whole["required"], *part.get("required", [])]
        return whole

    def of(self, schema: Mapping[str, Any]) -> st.SearchStrategy[Json]:
        """Valid-shaped values of ``schema``."""
        schema = self.resolve(schema)
        if "allOf" in schema:
            return self.of(self.merged(schema))
        for key in ("oneOf", "anyOf"):
            if key in schema:
                return st.one_of([self.of(branch) for branch in schema[key]])
        if "const" in schema:
            return st.just(schema["const"])
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        kind = schema.get("type")
        if isinstance(kind, list):
            return st.one_of([self.of({**schema, "type": one}) for one in kind])
        maker = {
            "object": self._object,
            "array": self._array,
            "string": _string,
            "integer": _integer,
            "number": _number,
            "boolean": lambda _s: st.booleans(),
            "null": lambda _s: st.none(),
        }.get(kind or "", lambda _s: json_values())
        return maker(schema)

    def _object(self, schema: Mapping[str, Any]) -> st.SearchStrategy[Json]:
        properties = schema.get("properties", {})
        required = set(schema.get("required", ()))
        if not properties:
            extra = schema.get("additionalProperties")
            values = self.of(extra) if isinstance(extra, Mapping) else json_values()
            return st.dictionaries(words(1, 12), values, max_size=3)
        return st.fixed_dictionaries(
            {name: self.of(properties.get(name, {})) for name in sorted(required)},
            optional={
                name: self.of(sub) for name, sub in properties.items() if name not in required
            },
        )

    def _array(self, schema: Mapping[str, Any]) -> st.SearchStrategy[Json]:
        items = self.of(schema.get("items", {}))
        least = schema.get("minItems", 0)
        return st.lists(items, min_size=least, max_size=schema.get("maxItems", least + 3))


def _string(schema: Mapping[str, Any]) -> st.SearchStrategy[str]:
    form = schema.get("format")
    if form == "date-time":
        return st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1)).map(
            lambda moment: moment.replace(tzinfo=UTC).isoformat()
        )
    if form == "date":
        return st.dates().map(lambda day: day.isoformat())
    if "pattern" in schema:
        return st.from_regex(_anchored(schema["pattern"]), fullmatch=True)
    return words(schema.get("minLength", 0), schema.get("maxLength"))


def _anchored(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern.removeprefix("^").removesuffix("$"))


def _integer(schema: Mapping[str, Any]) -> st.SearchStrategy[int]:
    low, high = schema.get("minimum", -MAX_INT), schema.get("maximum", MAX_INT)
    return st.one_of(st.integers(low, min(high, low + 100)), st.integers(low, high))


def _number(schema: Mapping[str, Any]) -> st.SearchStrategy[float]:
    low, high = schema.get("minimum", -1e9), schema.get("maximum", 1e9)
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


def json_values() -> st.SearchStrategy[Json]:
    """Any small JSON value."""
    leaves = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), words(0, 20))
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(words(1, 8), inner, max_size=3),
        max_leaves=6,
    )


# --- breaking a body ---------------------------------------------------------------------------

DEEP = "\x00deep\x00"  # stands where the deep nesting goes, until the body is serialised
JSON_BREAKS = (
    "wrong-type",
    "missing-field",
    "huge-number",
    "negative-number",
    "nul-byte",
    "lone-surrogate",
    "deep-nesting",
    "long-string",
    "duplicate-key",
    "other-root",
    "not-json",
    "not-utf8",
    "empty-body",
)
FORM_BREAKS = (
    "missing-field",
    "repeated-field",
    "nul-byte",
    "lone-surrogate",
    "not-utf8",
    "long-string",
    "huge-number",
    "json-body",
    "not-a-form",
    "empty-body",
)
OTHER_TYPES: tuple[Json, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1.5,
    "",
    "text",
    [],
    {},
    [1, "a"],
    {"a": {}},
)
HUGE = (10**20, -(10**20), 2**63, -(2**63) - 1, 2**64, 10**300, 1e308, -1e308)
NEGATIVE = (-1, -86400, -(10**10), -(10**13), "-1", "-100000000000")


def paths(value: Json, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every node of a JSON value, by its path of keys and indexes (the root is ``()``)."""
    found = [here]
    if isinstance(value, dict):
        for key, sub in value.items():
            found.extend(paths(sub, (*here, key)))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            found.extend(paths(sub, (*here, index)))
    return found


def _get(value: Json, path: tuple[Any, ...]) -> Json:
    for part in path:
        value = value[part]
    return value


def _replaced(value: Json, path: tuple[Any, ...], new: Json) -> Json:
    if not path:
        return new
    copy = json.loads(json.dumps(value))
    node = _get(copy, path[:-1])
    node[path[-1]] = new
    return copy


def _without(value: Json, path: tuple[Any, ...]) -> Json:
    copy = json.loads(json.dumps(value))
    node = _get(copy, path[:-1])
    del node[path[-1]]
    return copy


def _spoilt(text: str, draw: Draw) -> str:
    """``text`` with a NUL byte or a lone surrogate in it."""
    bad = draw(st.sampled_from(("\x00", "\ud800", "\udfff", "\udc80")))
    cut = draw(st.integers(0, len(text)))
    return text[:cut] + bad + text[cut:]


def broken_json(draw: Draw, value: Json) -> tuple[bytes, str]:
    """``value`` as a JSON body, broken in one way (or not: ``valid``)."""
    kind = draw(st.sampled_from(("valid",) * 6 + JSON_BREAKS))
    nodes = paths(value)
    path = draw(st.sampled_from(nodes))
    node = _get(value, path)
    if kind == "wrong-type":
        value = _replaced(value, path, draw(st.sampled_from(OTHER_TYPES)))
    elif kind == "missing-field":
        keyed = [p for p in nodes if p and isinstance(_get(value, p[:-1]), dict)]
        if keyed:
            value = _without(value, draw(st.sampled_from(keyed)))
    elif kind in ("huge-number", "negative-number"):
        numeric = [p for p in nodes if _numeric(_get(value, p))] or [path]
        choices = HUGE if kind == "huge-number" else NEGATIVE
        value = _replaced(value, draw(st.sampled_from(numeric)), draw(st.sampled_from(choices)))
    elif kind in ("nul-byte", "lone-surrogate"):
        texts = [p for p in nodes if isinstance(_get(value, p), str)] or [path]
        where = draw(st.sampled_from(texts))
        text = _get(value, where) if isinstance(_get(value, where), str) else ""
        bad = "\x00" if kind == "nul-byte" else draw(st.sampled_from(("\ud800", "\udfff")))
        cut = draw(st.integers(0, len(text)))
        value = _replaced(value, where, text[:cut] + bad + text[cut:])
    elif kind == "deep-nesting":
        value = _replaced(value, path, DEEP)
    elif kind == "long-string":
        value = _replaced(value, path, draw(st.sampled_from(PHRASES)) * 10_000)
    elif kind == "other-root":
        value = draw(st.sampled_from(OTHER_TYPES))
    if kind == "not-json":
        raw = draw(st.sampled_from((b"not json", b"{", b"{'a': 1}", b"NaN", b"[1,]", b"\x00")))
        return raw + json.dumps(node)[:20].encode(errors="surrogatepass"), kind
    if kind == "not-utf8":
        return json.dumps(value, ensure_ascii=False).encode(errors="surrogatepass") + b"\xff", kind
    if kind == "empty-body":
        return b"", kind
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    if kind == "deep-nesting":
        depth = draw(st.sampled_from((64, 1_000, 5_000, 100_000)))
        opened, closed = ("[" * depth, "]" * depth) if draw(st.booleans()) else _objects(depth)
        text = text.replace(json.dumps(DEEP), opened + "0" + closed)
    if kind == "duplicate-key" and text.startswith("{") and len(text) > 2:
        text = '{"object": null, "id": 1, ' + text[1:]
    return text.encode(errors="surrogatepass"), kind


def _objects(depth: int) -> tuple[str, str]:
    return '{"a":' * depth, "}" * depth


def _numeric(node: Json) -> bool:
    if isinstance(node, bool):
        return False
    return isinstance(node, int | float) or (isinstance(node, str) and node.isdigit())


def form_body(fields: Mapping[str, Json]) -> list[tuple[str, str]]:
    """A form's fields as strings, as a browser posts them."""
    found = []
    for name, value in fields.items():
        if isinstance(value, dict | list):
            value = json.dumps(value)
        found.append((name, "" if value is None else str(value)))
    return found


def encoded(fields: list[tuple[str, str]]) -> bytes:
    """``application/x-www-form-urlencoded``, lone surrogates as the bytes they would be."""
    return "&".join(
        f"{quote(name, errors='surrogatepass')}={quote(value, errors='surrogatepass')}"
        for name, value in fields
    ).encode()


def broken_form(draw: Draw, fields: list[tuple[str, str]]) -> tuple[bytes, str, str]:
    """The form as a body, broken in one way (or not: ``valid``); its content type."""
    form = "application/x-www-form-urlencoded"
    kind = draw(st.sampled_from(("valid",) * 6 + FORM_BREAKS))
    if kind == "missing-field" and fields:
        fields = [f for f in fields if f != draw(st.sampled_from(fields))]
    elif kind == "repeated-field" and fields:
        name, _ = draw(st.sampled_from(fields))
        fields = [*fields, (name, draw(words(0, 20)))]
    elif kind in ("nul-byte", "lone-surrogate", "long-string", "huge-number") and fields:
        at = draw(st.integers(0, len(fields) - 1))
        name, value = fields[at]
        if kind == "long-string":
            value = value + "x" * 200_000
        elif kind == "huge-number":
            value = draw(st.sampled_from(("9" * 30, "-1", "1e309", str(2**63))))
        else:
            bad = "\x00" if kind == "nul-byte" else "\ud800"
            value = value[: len(value) // 2] + bad + value[len(value) // 2 :]
        fields = [*fields[:at], (name, value), *fields[at + 1 :]]
    if kind == "not-utf8":
        return encoded(fields) + b"&text=%FF%FE", kind, form
    if kind == "json-body":
        return json.dumps(dict(fields)).encode(errors="surrogatepass"), kind, form
    if kind == "not-a-form":
        body = draw(st.sampled_from((b"\x00\x01\x02", b"a=%zz&b", b"=&&==", b"%")))
        content = draw(st.sampled_from((form, "multipart/form-data; boundary=x", "text/plain")))
        return body, kind, content
    if kind == "empty-body":
        return b"", kind, form
    return encoded(fields), kind, form


def broken_query(draw: Draw, params: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], str]:
    """Query parameters, sometimes broken (a NUL byte or a lone surrogate in a value); and a
    raw suffix for the query string (``&q=%FF``: bytes that are not UTF-8), or ""."""
    kind = draw(st.sampled_from(("valid",) * 4 + ("nul-byte", "lone-surrogate", "not-utf8")))
    if kind in ("nul-byte", "lone-surrogate") and params:
        at = draw(st.integers(0, len(params) - 1))
        name, value = params[at]
        params = [*params[:at], (name, _spoilt(value, draw)), *params[at + 1 :]]
    return params, "&q=%FF" if kind == "not-utf8" else ""


def percent(text: str) -> str:
    """``text`` percent-encoded for a URL, lone surrogates as the bytes they would be."""
    return quote(text, safe="", errors="surrogatepass")
