"""The personal-data guard on everything carebot or an agent posts in public (issue 18, §2).

:func:`check_public_text` returns ``None`` when a text may be posted in public, or a
:class:`Refusal` saying what was found and what to do, shown to the agent in the inbox and on
Slack; a refused text is never posted. It builds on the learning loop's detector
(:func:`carebot.nlu.personal_data.find_personal_data`, unchanged) and adds, because a public
reply that leaks a detail cannot be taken back, **when unsure, refuse**: rules for text that
looks like it might hold personal data the detector does not parse.

Refused for certain (``Refusal.findings``, the kinds of :data:`GUARDED`): e-mail addresses,
phone numbers, order numbers (the brand's ``order_patterns``), card numbers and IBANs, postal
addresses, as the detector documents them. **A phone number is a phone number**: the brand's
own hotline is refused too (the guard cannot tell whose number it is); link to the contact
page instead.

Refused as unsure (``Refusal.unsure``, one word per reason, see :data:`UNSURE`):

* ``digits``: a run of 6 or more digits (blanks, ``-`` or ``/`` between groups allowed) that
  is not a price, date, time, year (``2025/2026``, ``2026/27``), version number or
  thousands-grouped quantity, nor an
  article number after ``SKU``/``EAN``/``GTIN``/``ISBN``/``Artikelnummer``;
* ``id``: a code of letters and digits with 6 or more digits or a run of 5 (``AB12345678``),
  and any code with 4 or more digits after ``order``, ``ticket``, ``ref``, ``RMA``,
  ``invoice``, ``Rechnung``, ``Kundennummer`` ... (``Order #A1B2C3D4E5``);
* ``spelled-email``: an address written out (``jane dot doe at gmail dot com``,
  ``anna(at)posteo.de``, ``tobi{at}gmx.de``, ``chris @ hotmail.com``, ``jane.doe@gmail``);
* ``address-phrase``: ``my/your address is ...``, ``Ihre Adresse lautet ...``;
* ``street``: a house number with a street word in any case (``12 oak road``, ``14 Elm
  Grove``), ``Am Markt 3``, ``Flat 4``, ``PO Box 4471``, ``Postfach 1234``;
* ``postcode``: a postcode and town in running text (``nach 80331 München``), a UK postcode in
  lower case, a US state and ZIP (``Springfield IL 62704``);
* ``iban``: an IBAN-shaped string in any case or failing its check (``de89 3704 ...``);
* ``card``: ``card ending 4242``, ``last four digits``, ``letzten vier Ziffern``,
  ``Karte mit Endziffern``, masked card
  digits (``•••• 4242``), a CVV or security code;
* ``link``: a URL carrying an e-mail address (``%40``), a token-like query parameter
  (``?token=``, ``?email=``, ``?order=`` ...) or an id after ``/orders/``, ``/account/``,
  ``/track/``, ``/parcel/`` ... (a customer's tracking link shows their parcel to everyone);
* ``spoken-number``: six or more number words in a row (``zero seven seven ...``).

**Names are not refused**: a public reply may greet the commenter by the name they post under
(``Hi Anna``); ``known_names`` is passed to the detector only so callers can hand over the same
arguments as to the learning loop, and the names it finds are dropped.

Kept as clean (measured in ``bench/public_guard.py``): prices (``€12.99``, ``1.299,00 EUR``),
dates, times, opening hours, years, ``order #`` without digits, version numbers (``app
4.2.1``), sizes and quantities, links without ids or tokens, @handles.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from carebot.nlu.personal_data import (
    DEFAULT_ORDER_PATTERNS,
    Finding,
    PersonalDataSettings,
    find_personal_data,
)

GUARDED: tuple[str, ...] = ("email", "phone", "order", "payment", "address")

# Each reason for refusing when unsure, and how the agent's message explains it; where hits
# overlap, the earlier reason is kept.
UNSURE: dict[str, str] = {
    "spelled-email": "an e-mail address written out in words",
    "link": "a link carrying an e-mail address, an order or a login token",
    "iban": "a bank account number (IBAN)",
    "card": "the digits of a payment card",
    "address-phrase": "a postal address (the text says what an address is)",
    "street": "a street and house number",
    "postcode": "a postcode and town",
    "spoken-number": "a phone or order number written out in words",
    "id": "an order, customer or account id (letters and digits)",
    "digits": "an account, order or phone number (a long run of digits)",
}

_NOUNS = {
    "email": "an e-mail address",
    "phone": "a phone number",
    "order": "an order number",
    "address": "a postal address",
}


@dataclass(frozen=True)
class Refusal:
    """Why a text was not posted in public: what the detector found, the reasons it looked
    personal without being parsed (words of :data:`UNSURE`), and the message for the agent
    (values quoted in masked form only)."""

    findings: tuple[Finding, ...]
    unsure: tuple[str, ...]
    message: str


@dataclass(frozen=True, slots=True)
class _Suspect:
    reason: str
    start: int
    end: int
    text: str


_TLD = r"(?:com|net|org|de|at|ch|uk|ie|fr|nl|es|it|eu|info|io|co|me|biz)"
_MAIL_PROVIDER = r"(?:gmail|googlemail|gmx|web|yahoo|outlook|hotmail|icloud|posteo|t-online|aol)"
_AT = r"(?:\s*[\[({<]\s*at\s*[\])}>]\s*|\s+at\s+|\s+@\s*|\s*@\s+)"
_DOT = r"(?:\s*[\[({<]\s*(?:dot|punkt)\s*[\])}>]\s*|\s+(?:dot|punkt)\s+|\.)"
_LOCAL = r"[\w%+-]+(?:(?:\s+(?:dot|punkt)\s+|\s*[\[({<](?:dot|punkt)[\])}>]\s*|[.'])[\w%+-]+)*"
_IBAN_ANY_CASE = re.compile(r"(?i)\b[a-z]{2}\d{2}(?:\s?[a-z0-9]{4}){2,7}(?:\s?[a-z0-9]{1,3})?\b")
_WORDS_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "spelled-email",
        re.compile(rf"(?i)(?<![\w@]){_LOCAL}{_AT}[\w-]+(?:{_DOT}[\w-]+)*{_DOT}{_TLD}\b"),
    ),
    ("spelled-email", re.compile(rf"(?i)(?<![\w@])[\w.%+-]+(?:@|{_AT}){_MAIL_PROVIDER}\b")),
    (
        "address-phrase",
        re.compile(
            r"(?i)\b(?:my|your|his|her|their|our customer's)\s+(?:new\s+|postal\s+|home\s+|"
            r"delivery\s+|shipping\s+|billing\s+)*address\s*(?:(?:is|was|as)\b|:)"
            r"(?!\s*(?:correct|right|complete|valid|wrong|incorrect|missing|still|not|up to date|"
            r"in|on|saved|changed|updated|verified)\b)(?=[^\n]{0,40}(?-i:[\dA-ZÄÖÜ]))"
        ),
    ),
    (
        "address-phrase",
        re.compile(
            r"(?i)\b(?:meine|deine|ihre|seine|eure)\s+(?:neue\s+)?(?:Liefer|Rechnungs|Post)?"
            r"adresse\s*(?:(?:ist|lautet)\b|:)"
            r"(?!\s*(?:korrekt|richtig|falsch|vollständig|noch|nicht)\b)"
        ),
    ),
    (
        "street",
        re.compile(
            r"(?i)\b\d{1,5}[a-z]?,?\s+(?:[a-zäöüß]+\s+){1,3}(?:street|st|road|rd|avenue|ave|"
            r"lane|ln|drive|boulevard|blvd|way|court|place|close|crescent|terrace|square|"
            r"gardens|row|hill|park|grove|mews|walk|parade|green|rise|view|vale|wharf|quay|"
            r"yard|end|gate|circus)\b\.?"
        ),
    ),
    (
        "street",
        re.compile(
            r"(?i)\b[a-zäöüß]{3,}(?:straße|strasse|str\.|weg|gasse|platz|allee|damm|ufer)"
            r"\s*\d{1,4}\s?[a-z]?\b"
        ),
    ),
    (
        "street",
        re.compile(
            r"\b(?:Am|An der|An den|Im|In der|Auf der|Auf dem|Zum|Zur|Unter den)\s+"
            r"[A-ZÄÖÜ][a-zäöüß]+\s+\d{1,4}\s?[a-z]?\b"
        ),
    ),
    (
        "street",
        re.compile(
            r"(?i)\b(?:flat|apartment|apt\.?|unit|suite|wohnung)\s+\d{1,4}[a-z]?\b|"
            r"\b(?:P\.?\s?O\.?\s?Box|Postfach)\s+\d{2,6}\b"
        ),
    ),
    (
        "postcode",
        re.compile(
            r"(?:\b(?:in|nach|to|at|an|aus|from|bei|near|von|für)\s+|[,(]\s*)"
            r"\d{5}\s+[A-ZÄÖÜ][a-zäöüß]+"
        ),
    ),
    ("postcode", re.compile(r"(?i)\b[a-z]{1,2}\d[a-z\d]?\s\d[a-z]{2}\b")),
    ("postcode", re.compile(r"\b[A-Z][a-z]+,?\s+[A-Z]{2}\s+\d{5}(?:-\d{4})?\b")),
    ("iban", _IBAN_ANY_CASE),
    (
        "card",
        re.compile(
            r"(?i)\b(?:card|karte|visa|mastercard|amex|konto|account)\b[^.\n]{0,30}?"
            r"\b(?:ending|ends|endet|endend|endziffern?)\b|\bending\s+(?:in|with)\s+\d{4}\b|"
            r"\blast\s+(?:four|4)\b|\bletzten\s+(?:vier|4)\b|"
            r"(?:[x*•·]{4}[\s-]?){1,3}\d{4}\b|\b(?:cvv|cvc|cvv2|security code|"
            r"sicherheitscode|kartenprüfnummer|expiry date|ablaufdatum)\b"
        ),
    ),
    (
        "id",
        re.compile(
            r"(?i)\b(?:order|bestellung|bestellnummer|auftrag|ticket|case|ref|reference|"
            r"referenz|rma|invoice|rechnung|kundennummer|customer)\b"
            r"(?:\s*(?:no\.?|nr\.?|number|id|#|:))*\s*#?\s*"
            r"(?=[\w-]*(?:\d[\w-]*){4})[A-Za-z0-9][\w-]*"
        ),
    ),
    (
        "spoken-number",
        re.compile(
            r"(?i)\b(?:(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|double|triple|"
            r"null|eins|zwei|drei|vier|fünf|sechs|sieben|acht|neun)[\s,-]+){5,}"
            r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|null|eins|zwei|drei|"
            r"vier|fünf|sechs|sieben|acht|neun)\b"
        ),
    ),
)

_URL = re.compile(r"(?i)\b(?:https?://|www\.)\S+")
_SENSITIVE_PARAM = re.compile(
    r"(?i)[?&;](?:token|access_token|auth|key|api_key|session|sid|code|reset|email|e-mail|mail|"
    r"phone|tel|order|order_id|orderid|order_no|invoice|customer|customer_id|user|user_id|uid|"
    r"account|tracking|parcel|iban)=[^&#\s]+"
)
_TOKEN_VALUE = re.compile(r"=(?=[^&#\s]*\d)(?=[^&#\s]*[A-Za-z])[A-Za-z0-9_-]{16,}")
_ID_PATH = re.compile(
    r"(?i)/(?:orders?|account|accounts|invoices?|tracking|track|parcels?|shipments?|"
    r"bestellung(?:en)?|customers?|users?|reset|returns?)/[^/?#\s]*\d"
)

# Harmless number shapes, blanked before the digit rules look for long runs.
_HARMLESS = re.compile(
    r"(?i)(?:[€$£]\s?|\b(?:EUR|USD|GBP|CHF)\s?)\d[\d.,]*"
    r"|\b\d[\d.,]*\s?(?:€|EUR\b|USD\b|GBP\b|CHF\b|euros?\b|dollars?\b|pounds?\b)"
    r"|\b\d{1,2}[./-]\d{1,2}[./-](?:\d{4}|\d{2})\b|\b\d{4}-\d{2}-\d{2}\b"
    r"|\b\d{1,2}[:.]\d{2}(?:\s?-\s?\d{1,2}[:.]\d{2})?\b"
    r"|\b\d+(?:\.\d+){2,}\b|\b(?:19|20)\d\d/\d\d\b"
    r"|\b\d{1,3}(?:,\d{3}){1,2}(?:\.\d{1,2})?\b|\b\d{1,3}(?:\.\d{3}){1,2}(?:,\d{1,2})?\b"
    r"|\b(?:SKU|EAN|GTIN|ISBN|Artikelnummer|Art\.-Nr\.|article number|item number)"
    r"[\s:#.]*[\d -]+\d"
)
_DIGIT_RUN = re.compile(r"(?<![\w.,])\d+(?:(?:[ /-]|\s/\s)\d+)*(?![\w])")
_YEAR = re.compile(r"(?:19|20)\d\d")
_CODE = re.compile(r"(?<![\w@/#.-])(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9][\w-]{5,}(?![\w@])")
_RUN_OF_FIVE = re.compile(r"\d{5}")


def _rule_hits(text: str) -> list[_Suspect]:
    found = []
    for reason, pattern in _WORDS_RULES:
        found += [_Suspect(reason, m.start(), m.end(), m.group()) for m in pattern.finditer(text)]
    return found


def _link_hits(text: str) -> list[_Suspect]:
    found = []
    for match in _URL.finditer(text):
        url = match.group()
        if (
            "%40" in url
            or _SENSITIVE_PARAM.search(url)
            or _TOKEN_VALUE.search(url)
            or _ID_PATH.search(url)
        ):
            found.append(_Suspect("link", match.start(), match.end(), url))
    return found


def _blanked(text: str) -> str:
    """``text`` with URLs and harmless number shapes replaced by blanks of the same length."""
    for pattern in (_URL, _HARMLESS):
        text = pattern.sub(lambda m: " " * len(m.group()), text)
    return text


def _number_hits(text: str) -> list[_Suspect]:
    blank = _blanked(text)
    found = []
    for match in _DIGIT_RUN.finditer(blank):
        groups = re.findall(r"\d+", match.group())
        if sum(map(len, groups)) >= 6 and not all(_YEAR.fullmatch(g) for g in groups):
            found.append(_Suspect("digits", match.start(), match.end(), match.group()))
    for match in _CODE.finditer(blank):
        code = match.group()
        if sum(c.isdigit() for c in code) >= 6 or _RUN_OF_FIVE.search(code):
            found.append(_Suspect("id", match.start(), match.end(), code))
    return found


def _inside(finding: Finding, spans: Iterable[tuple[int, int]]) -> bool:
    return any(start <= finding.start and finding.end <= end for start, end in spans)


def _overlaps(a_start: int, a_end: int, spans: Iterable[tuple[int, int]]) -> bool:
    return any(a_start < end and start < a_end for start, end in spans)


def _suspects(text: str, findings: Sequence[Finding]) -> list[_Suspect]:
    """The unsure rules' hits that no finding already covers, one per reason and place."""
    covered = [(f.start, f.end) for f in findings]
    kept: list[_Suspect] = []
    for hit in sorted(_rule_hits(text) + _link_hits(text) + _number_hits(text), key=_order):
        if not _overlaps(hit.start, hit.end, covered):
            kept.append(hit)
            covered.append((hit.start, hit.end))
    return sorted(kept, key=lambda s: s.start)


def _order(hit: _Suspect) -> tuple[int, int]:
    return (list(UNSURE).index(hit.reason), hit.start)


def check_public_text(
    text: str,
    *,
    order_patterns: Sequence[str] = DEFAULT_ORDER_PATTERNS,
    known_names: Sequence[str] = (),
) -> Refusal | None:
    """``None`` when ``text`` may be posted in public, else the :class:`Refusal` to show the
    agent. ``order_patterns``: the brand's order number patterns (regular expressions, as in
    :class:`~carebot.nlu.personal_data.PersonalDataSettings`; an invalid one raises
    ``ValueError`` naming it). Names are never refused (see the module doc)."""
    settings = PersonalDataSettings(order_patterns=tuple(order_patterns))
    # The detector reads the digits of a lower-case IBAN as a phone: leave it to the rule.
    ibans = [m.span() for m in _IBAN_ANY_CASE.finditer(text)]
    findings = tuple(
        f
        for f in find_personal_data(text, known_names=known_names, settings=settings)
        if f.kind in GUARDED and (f.kind == "payment" or not _inside(f, ibans))
    )
    suspects = _suspects(text, findings)
    if not findings and not suspects:
        return None
    unsure = tuple(dict.fromkeys(s.reason for s in suspects))
    return Refusal(findings, unsure, _message(findings, suspects))


def masked(value: str, kind: str = "") -> str:
    """A hint of ``value`` for the agent's message, never the whole of it: an e-mail address
    as ``an…@…com``, anything else as its first characters (at most 3, under half) and ``…``."""
    value = value.strip()
    if kind == "email" and "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:2]}…@…{domain.rsplit('.', 1)[-1]}"
    keep = max(1, min(3, len(value) // 2))
    return value[:keep].rstrip() + "…"


def _noun(finding: Finding) -> str:
    if finding.kind == "payment":
        return "a bank account number (IBAN)" if finding.text[:1].isalpha() else "a card number"
    return _NOUNS[finding.kind]


def _listed(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _message(findings: Sequence[Finding], suspects: Sequence[_Suspect] = ()) -> str:
    """The message shown to the agent: what was found (masked) and what to do."""
    parts = ["Not posted in public."]
    if findings:
        quoted = [f"{_noun(f)} ({masked(f.text, f.kind)})" for f in findings]
        parts.append(f"The reply contains {_listed(quoted)}.")
        if any(f.kind == "phone" for f in findings):
            parts.append("Phone numbers are refused even when they are the brand's own.")
    if suspects:
        quoted = [f"{UNSURE[s.reason]} ({masked(s.text)})" for s in suspects]
        lead = "It also looks like it may contain" if findings else "It looks like it may contain"
        parts.append(f"{lead} {_listed(quoted)}; when unsure, carebot does not post.")
    parts.append("Reply privately instead, or remove it.")
    return " ".join(parts)
