"""Customer-specific details in a text, flagged before the text can be published.

:func:`find_personal_data` returns where a reply names a customer's e-mail address, phone
number, order number, card or bank account, postal address or name; :func:`redacted` replaces
each finding with a placeholder such as ``[email]``. Plain regular expressions with validation
(Luhn, IBAN mod-97, digit counts); English and German conventions. Recall is measured on a
seeded set by ``bench/personal_data.py``.

Detected (``Finding.kind``):

* ``email``: ``local@domain.tld`` (letters, digits and ``._%+-`` before the ``@``).
* ``phone``: international numbers starting ``+`` or ``00`` with 8-15 digits (``+49 (0)30
  1234567``, ``0044 20 7946 0958``); national numbers starting ``0`` with 9-12 digits and
  blanks, ``-`` or ``/`` between groups (``030 1234567``, ``0171/1234567``, ``07700 900123``);
  North American ``(555) 123-4567``, ``555-123-4567``, ``555.123.4567``.
* ``order``: the patterns of :class:`PersonalDataSettings` (by default ``#12345``, ``order
  123456``, ``order no. 48213``, ``Bestellnummer 48213`` and ``NW-2026-00123``); only the number
  is flagged, not the word before it.
* ``payment``: card numbers of 13-19 digits starting 2-6, contiguous or in groups of four
  (Amex 4-6-5), passing the Luhn check; IBANs (two capital letters, two check digits, 11-30
  letters or digits, blanks allowed) passing mod-97. Digits inside an IBAN-shaped string that
  fails mod-97 are flagged as nothing.
* ``address``: a house number and street in English (``221B Baker Street``, ``12 Oak Rd.``) or
  German (``Hauptstraße 5``, ``Berliner Straße 12a``, ``Lindenweg 3``); a German postcode and
  city at the start of a line or after a comma (``10115 Berlin``); a UK postcode (``SW1A 1AA``);
  a US state and ZIP after a comma (``, IL 62704``). Parts of one address separated by a comma
  or a line break become one finding.
* ``name``: one or two capitalised words after a greeting (``Hi Anna,``, ``Dear Mr. Smith``,
  ``Hallo Frau Müller``), after a title anywhere (``Mr Smith``, ``Herr Weber``), after a
  sign-off (``Thanks, Tom``, ``Kind regards,\\nAnna Schmidt``), and every occurrence of the
  ``known_names`` given (the customer's profile name: the whole name in any case, each part of
  three letters or more when capitalised); a name found after a greeting, title or sign-off is
  flagged wherever else the text repeats it (``Dear Mr Evans, ... Jonas Evans, could you``).

Not detected: names anywhere else in running text (``I spoke to Anna yesterday``), lower-case
names, street names without a number, addresses without a street word (``Am Markt 3``), towns
without a postcode, phone numbers written in words or without a leading ``0``/``+`` (other than
the North American shapes), order numbers in formats the settings do not name, card numbers
failing Luhn, IBANs failing mod-97 or written in lower case, dates of birth, customer ids,
IP addresses. Nothing inside a URL except e-mail addresses (a tracking link is not personal).
Not flagged as phones: dates (``12.03.2026``, ``2026-03-12``), times (``10:00-18:00``), prices
(``€12.99``, ``1.299,00 EUR``) and quantities (``2 x 500 g``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Kind = Literal["email", "phone", "order", "payment", "address", "name"]
KINDS: tuple[Kind, ...] = ("email", "phone", "order", "payment", "address", "name")

# A finding of an earlier kind wins over an overlapping one of a later kind.
_PRIORITY: dict[str, int] = {
    kind: rank
    for rank, kind in enumerate(("email", "payment", "order", "phone", "address", "name"))
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One piece of personal data: its kind and ``text[start:end]``."""

    kind: Kind
    start: int
    end: int
    text: str


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


DEFAULT_ORDER_PATTERNS: tuple[str, ...] = (
    r"(?<![\w#&])#\d{4,10}\b",
    r"(?i:\b(?:order|bestellung|bestellnummer|auftrag|auftragsnummer)\b"
    r"(?:\s*(?:no\.?|nr\.?|number|num\.?|id|#))?(?:\s+is)?\s*[:#]?\s*)"
    r"(?P<id>(?:[A-Z]{1,4}-?)?\d{4,12})\b",
    r"\b[A-Z]{2,4}-\d{4}-\d{3,6}\b",
)

DEFAULT_NOT_NAMES: frozenset[str] = frozenset(
    _words(
        "there all everyone everybody team folks friend friends customer customers sir madam "
        "again and the our your you we they it this that thanks thank kunde kundin zusammen "
        "monday tuesday wednesday thursday friday saturday sunday support service care "
        "northwind goods shop store"
    )
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonalDataSettings:
    """What counts as an order number, and words never taken for a name.

    ``order_patterns`` are regular expressions; the group named ``id``, when present, is the
    part flagged (else the whole match). ``not_names`` are compared in lower case.
    """

    order_patterns: tuple[str, ...] = DEFAULT_ORDER_PATTERNS
    not_names: frozenset[str] = DEFAULT_NOT_NAMES

    def compiled_orders(self) -> list[re.Pattern[str]]:
        """The order patterns compiled; an invalid one names itself."""
        compiled = []
        for pattern in self.order_patterns:
            try:
                compiled.append(re.compile(pattern))
            except re.error as error:
                raise ValueError(
                    f"order pattern {pattern!r} is not a valid regular expression ({error}); "
                    "fix it in PersonalDataSettings.order_patterns"
                ) from error
        return compiled


_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)
_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)

_PHONE_INTL = re.compile(
    r"(?<![\w+])(?:\+|00)[1-9]\d{0,2}(?:[ \-./]?(?:\(0\)|\(\d{1,4}\)|\d{1,6})){2,8}(?![\w])"
)
_PHONE_NATIONAL = re.compile(
    r"(?<![\w+.,/])(?:\(0\d{2,5}\)|0\d{2,5})(?:[ \-/]?\d{2,8}){1,4}(?![\w:/]|[.,]\d)"
)
_PHONE_NANP = re.compile(r"(?<![\w+.,])(?:\(\d{3}\)\s?|\d{3}[-. ])\d{3}[-. ]\d{4}(?![\w:]|[.,]\d)")

_CARD = re.compile(
    r"(?<![\w+-])(?:\d{4}(?:[ -]\d{4}){2,3}(?:[ -]\d{1,3})?|\d{4}[ -]\d{6}[ -]\d{5}|\d{13,19})"
    r"(?![\w-])"
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")

_UPPER = "A-ZÄÖÜ"
_LOWER = "a-zäöüß"
_WORD = rf"[{_UPPER}][{_LOWER}]+"
_STREET_EN = re.compile(
    rf"\b\d{{1,5}}[A-Za-z]?,?\s+(?:{_WORD}\s+){{1,3}}"
    r"(?:Street|St\.|Road|Rd\.?|Avenue|Ave\.?|Lane|Ln\.?|Drive|Dr\.?|Boulevard|Blvd\.?|Way|"
    r"Court|Ct\.?|Place|Pl\.?|Close|Crescent|Terrace|Square|Gardens|Row|Hill|Park)(?![\w])"
)
_STREET_DE = re.compile(
    rf"\b(?:{_WORD}[- ])?(?:[{_UPPER}][{_LOWER}]*(?:straße|strasse|str\.|weg|gasse|platz|allee|"
    rf"ring|damm|ufer|chaussee|steig|pfad)|(?:{_WORD}(?:er|e)?) (?:Straße|Strasse|Str\.|Weg|"
    rf"Gasse|Platz|Allee|Ring|Damm|Ufer))\s*\d{{1,4}}\s?[a-zA-Z]?(?![\w])"
)
_POSTCODE_DE = re.compile(rf"(?:^|(?<=[\n,]))[ \t]*\d{{5}} {_WORD}(?:[ -]{_WORD})*")
_POSTCODE_UK = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}\b")
_ZIP_US = re.compile(r"(?<=, )[A-Z]{2} \d{5}(?:-\d{4})?\b")

_ADDRESS_GAP = re.compile(rf"[ \t]*(?:,[ \t]*\n?|\n)[ \t]*(?:{_WORD}[ \t]+){{0,2}}")
_NAME = rf"(?:[{_UPPER}]['\u2019])?{_WORD}(?:[{_UPPER}][{_LOWER}]+)?(?:-{_WORD})?"
_TITLE = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Herr|Frau)\.?"
_GREETING = re.compile(
    r"\b(?:Hi|Hello|Hey|Dear|Hallo|Liebe|Lieber|Sehr geehrte[r]?|Guten (?:Morgen|Tag|Abend)|"
    r"Good (?:morning|afternoon|evening)|Morning|Welcome)[ \t]*,?[ \t]+"
    rf"(?:{_TITLE}\s+)?(?P<name>{_NAME}(?: {_NAME})?)"
)
_TITLED = re.compile(rf"\b{_TITLE}\s+(?P<name>{_NAME}(?: {_NAME})?)")
_SIGN_OFF = re.compile(
    r"\b(?:Thanks|Thank you|Many thanks|Cheers|Best|Best wishes|Best regards|Kind regards|"
    r"Warm regards|Regards|Sincerely|Yours|Danke|Vielen Dank|Viele Grüße|Beste Grüße|"
    r"Liebe Grüße|Mit freundlichen Grüßen|Gruß|Grüße)\s*[,!.]?[ \t]*\n?[ \t]*"
    rf"(?P<name>{_NAME}(?: {_NAME})?)(?=\s*(?:[,.!)(\n]|$))"
)


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check of card numbers."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """Whether an IBAN (blanks allowed) passes the mod-97 check."""
    compact = iban.replace(" ", "")
    if not 15 <= len(compact) <= 34 or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _card_valid(digits: str) -> bool:
    # 13-19 digits, issuer ranges 2-6 (Mastercard 2/5, Amex 3, Visa 4, Discover 6), Luhn.
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_valid(digits)


def _digits(text: str) -> str:
    return "".join(char for char in text if char.isdigit())


def _find(kind: Kind, text: str, pattern: re.Pattern[str], group: str | int = 0) -> list[Finding]:
    found = []
    for match in pattern.finditer(text):
        start, end = match.span(group)
        found.append(Finding(kind, start, end, text[start:end]))
    return found


def _phones(text: str) -> list[Finding]:
    found = []
    for finding in _find("phone", text, _PHONE_INTL):
        if 8 <= len(_digits(finding.text.replace("(0)", ""))) <= 15:
            found.append(finding)
    for finding in _find("phone", text, _PHONE_NATIONAL):
        if 9 <= len(_digits(finding.text)) <= 12:
            found.append(finding)
    found += _find("phone", text, _PHONE_NANP)
    return found


def _payments(text: str) -> list[Finding]:
    cards = [f for f in _find("payment", text, _CARD) if _card_valid(_digits(f.text))]
    ibans = []
    for match in _IBAN.finditer(text):
        candidate = match.group()
        # The pattern may run into a following capitalised word: shorten until valid.
        while len(candidate.replace(" ", "")) >= 15 and not iban_valid(candidate):
            candidate = candidate[:-1].rstrip()
        if iban_valid(candidate):
            start = match.start()
            ibans.append(Finding("payment", start, start + len(candidate), candidate))
    return cards + ibans


def _addresses(text: str) -> list[Finding]:
    parts: list[Finding] = []
    for pattern in (_STREET_EN, _STREET_DE, _POSTCODE_UK, _ZIP_US):
        parts += _find("address", text, pattern)
    for finding in _find("address", text, _POSTCODE_DE):
        offset = len(finding.text) - len(finding.text.lstrip())
        parts.append(Finding("address", finding.start + offset, finding.end, finding.text[offset:]))
    merged: list[Finding] = []
    for part in _non_overlapping(parts):
        if merged and _ADDRESS_GAP.fullmatch(text[merged[-1].end : part.start]):
            start = merged[-1].start
            merged[-1] = Finding("address", start, part.end, text[start : part.end])
        else:
            merged.append(part)
    return merged


def _inside(finding: Finding, spans: Iterable[tuple[int, int]]) -> bool:
    return any(start <= finding.start and finding.end <= end for start, end in spans)


def _names(
    text: str, known_names: Iterable[str], not_names: frozenset[str], addresses: list[Finding]
) -> list[Finding]:
    found = []
    for pattern in (_GREETING, _TITLED, _SIGN_OFF):
        for match in pattern.finditer(text):
            if any(a.start <= match.start() < a.end for a in addresses):
                continue  # "12 Oak Dr. Springfield": the street's "Dr." is no title
            words = match.group("name").split(" ")
            # Keep the leading words that are names; "Hi Anna Your order" -> "Anna".
            kept = []
            for word in words:
                if word.lower() in not_names:
                    break
                kept.append(word)
            if kept:
                start = match.start("name")
                end = start + len(" ".join(kept))
                found.append(Finding("name", start, end, text[start:end]))
    # A name seen in a greeting or sign-off is flagged wherever else the text repeats it.
    for name in {*known_names, *(finding.text for finding in found)}:
        found += _find("name", text, _known_name_pattern(name))
    return found


def _known_name_pattern(name: str) -> re.Pattern[str]:
    whole = re.escape(name.strip())
    parts = [re.escape(part) for part in name.split() if len(part) >= 3 and part[0].isupper()]
    alternatives = [f"(?i:{whole})", *parts]
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)")


def _non_overlapping(findings: Iterable[Finding]) -> list[Finding]:
    """The findings without overlaps (earlier kinds first, then longer), in text order."""
    ranked = sorted(findings, key=lambda f: (_PRIORITY[f.kind], -(f.end - f.start), f.start))
    kept: list[Finding] = []
    for finding in ranked:
        if all(finding.end <= other.start or finding.start >= other.end for other in kept):
            kept.append(finding)
    return sorted(kept, key=lambda f: f.start)


def find_personal_data(
    text: str,
    *,
    known_names: Sequence[str] = (),
    settings: PersonalDataSettings | None = None,
) -> list[Finding]:
    """The personal data in ``text``, in text order, without overlaps (see the module doc for
    what is and is not detected). ``known_names``: the customer's profile name(s), flagged
    wherever they occur."""
    settings = settings or PersonalDataSettings()
    addresses = _addresses(text)
    found = _find("email", text, _EMAIL) + _payments(text) + _phones(text) + addresses
    for pattern in settings.compiled_orders():
        found += _find("order", text, pattern, "id" if "id" in pattern.groupindex else 0)
    known = [name for name in known_names if name.strip()]
    found += _names(text, known, settings.not_names, addresses)
    urls = [match.span() for match in _URL.finditer(text)]
    # Digits inside an IBAN-shaped string are no card or phone, whether the IBAN is valid or not.
    iban_shaped = [match.span() for match in _IBAN.finditer(text)]
    found = [
        f
        for f in found
        if f.kind == "email"
        or not (_inside(f, urls) or (_inside(f, iban_shaped) and not f.text[:1].isalpha()))
    ]
    return _non_overlapping(found)


def redacted(text: str, findings: Iterable[Finding]) -> str:
    """``text`` with each finding replaced by ``[kind]``; of overlapping findings, the one
    starting first (the longer at the same start) is replaced."""
    pieces = []
    position = 0
    for finding in sorted(findings, key=lambda f: (f.start, -f.end)):
        if finding.start < position:
            continue
        pieces.append(text[position : finding.start])
        pieces.append(f"[{finding.kind}]")
        position = finding.end
    pieces.append(text[position:])
    return "".join(pieces)
