"""Texts said in several languages: a settings table of customer-facing texts (``[messages]``,
``[webchat.texts]``) and its per-language tables (``[messages.de]``, ``[webchat.texts.fr]``).

A language's table gives some or all of the texts; a text it leaves out is said as the main
table writes it. Each table is checked as the main one is (placeholders, empty texts), and a key
the main table lacks is refused with the table's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, ClassVar, Self

from pydantic import BaseModel, Field, PrivateAttr, ValidationError, model_validator


@cache
def language_codes() -> tuple[str, ...]:
    """The ISO 639-1 codes (lower case) of the languages detection knows (carebot/nlu/
    language.py): those a config or an intent file may name."""
    from lingua import Language

    return tuple(sorted(language.iso_code_639_1.name.lower() for language in Language.all()))


def language_code(value: str) -> str:
    """An ISO 639-1 code that language detection knows, lower case."""
    code = value.strip().lower()
    known = language_codes()
    if code not in known:
        raise ValueError(
            f"{value!r} is not a language code detection knows; use a two-letter ISO 639-1 "
            f"code: {', '.join(known)}"
        )
    return code


class LanguageTables(BaseModel):
    """A table of texts with ``[<TABLE>.<code>]`` tables saying them in other languages (kept
    under ``languages``). Subclasses set ``TABLE`` to the name config.toml gives the table."""

    TABLE: ClassVar[str]

    # [<TABLE>.<code>] tables (ISO 639-1): these texts in another language; a text a table
    # leaves out is said as the main table writes it
    languages: Mapping[str, Mapping[str, str]] = Field(default_factory=dict)
    _in_language: dict[str, Self] = PrivateAttr(default_factory=dict)

    def in_language(self, code: str | None) -> Self:
        """These texts in ``code``: its table's texts, and the others as they are; themselves
        for a language without a table (and for None)."""
        return self._in_language.get(code or "", self)

    def texts(self) -> dict[str, str]:
        """Every text by its key (the language tables left out)."""
        return {name: getattr(self, name) for name in self.text_names()}

    def untranslated(self, code: str) -> list[str]:
        """The texts ``code``'s table does not give (said as the main table writes them); an
        empty text (a notice turned off) needs no translation."""
        given = self.languages.get(code, {})
        return [name for name, text in self.texts().items() if text and name not in given]

    @classmethod
    def text_names(cls) -> list[str]:
        return [name for name in cls.model_fields if name != "languages"]

    @model_validator(mode="before")
    @classmethod
    def _gather_languages(cls, data: Any) -> Any:
        """``[messages.de]`` arrives as a table inside ``[messages]``: kept under ``languages``."""
        if not isinstance(data, dict):
            return data
        tables = {key: value for key, value in data.items() if isinstance(value, dict)}
        if not tables:
            return data
        texts = {key: value for key, value in data.items() if key not in tables}
        return {**texts, "languages": {**texts.get("languages", {}), **tables}}

    @model_validator(mode="after")
    def _build_languages(self) -> Self:
        own = self.texts()
        for code, texts in self.languages.items():
            table = f"[{self.TABLE}.{code}]"
            try:
                if language_code(code) != code:
                    raise ValueError(f"write the code in lower case: [{self.TABLE}.{code.lower()}]")
            except ValueError as exc:
                raise ValueError(f"{table}: {exc}") from None
            unknown = sorted(set(texts) - set(own))
            if unknown:
                raise ValueError(
                    f"{table} {unknown[0]!r}: unknown key; the keys are those of [{self.TABLE}]"
                )
            try:
                said = type(self).model_validate({**own, **texts})
            except ValidationError as exc:
                first = exc.errors()[0]
                field = ".".join(str(part) for part in first["loc"])
                message = first["msg"].removeprefix("Value error, ")
                raise ValueError(f"{table} {field!r}: {message}") from None
            self._in_language[code] = said
        return self
