"""The personal data detector (carebot/nlu/personal_data.py): each kind found, look-alikes not."""

from __future__ import annotations

import pytest

from carebot.nlu.personal_data import (
    Finding,
    PersonalDataSettings,
    find_personal_data,
    iban_valid,
    luhn_valid,
    redacted,
)


def _found(text: str, **kwargs: object) -> list[tuple[str, str]]:
    return [(f.kind, f.text) for f in find_personal_data(text, **kwargs)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("Write to anna.schmidt@example.com please.", "email", "anna.schmidt@example.com"),
        ("Copy sent to t.obrien+shop@mail.co.uk.", "email", "t.obrien+shop@mail.co.uk"),
        ("Call her on +49 30 1234567.", "phone", "+49 30 1234567"),
        ("Mobile: +49 (0)171 2345678", "phone", "+49 (0)171 2345678"),
        ("We tried 0044 20 7946 0958 twice.", "phone", "0044 20 7946 0958"),
        ("Reach me at 030 12345678.", "phone", "030 12345678"),
        ("Handy 0171/2345678 bitte", "phone", "0171/2345678"),
        ("UK mobile 07700 900123, thanks", "phone", "07700 900123"),
        ("Phone (555) 123-4567 any time", "phone", "(555) 123-4567"),
        # 13 digits that happen to pass Luhn: after "+" they are a phone, not a card.
        ("Call +4917621084665 today", "phone", "+4917621084665"),
        ("or 555.123.4567.", "phone", "555.123.4567"),
        ("Your order #48213 has shipped.", "order", "#48213"),
        ("I checked order 123456 for you.", "order", "123456"),
        ("Order no. 48213 was cancelled.", "order", "48213"),
        ("Ihre Bestellnummer: 482134 ist unterwegs.", "order", "482134"),
        ("Reference NW-2026-00123 is open.", "order", "NW-2026-00123"),
        ("Card 4111 1111 1111 1111 was charged.", "payment", "4111 1111 1111 1111"),
        ("Card 5555555555554444 was charged.", "payment", "5555555555554444"),
        ("Amex 3782 822463 10005 refunded.", "payment", "3782 822463 10005"),
        ("IBAN DE89 3704 0044 0532 0130 00 is on file.", "payment", "DE89 3704 0044 0532 0130 00"),
        ("to GB82WEST12345698765432 today", "payment", "GB82WEST12345698765432"),
        ("to DE89370400440532013000 THANKS", "payment", "DE89370400440532013000"),
        ("Sent to Hauptstraße 5 today.", "address", "Hauptstraße 5"),
        (
            "Ship to Berliner Straße 12a, 10115 Berlin.",
            "address",
            "Berliner Straße 12a, 10115 Berlin",
        ),
        ("Lindenweg 3\n80331 München", "address", "Lindenweg 3\n80331 München"),
        (
            "Address: 221B Baker Street, London NW1 6XE.",
            "address",
            "221B Baker Street, London NW1 6XE",
        ),
        ("at 12 Oak Rd. next week", "address", "12 Oak Rd."),
        ("in 742 Evergreen Terrace, IL 62704", "address", "742 Evergreen Terrace, IL 62704"),
        ("Hi Anna, your parcel left.", "name", "Anna"),
        ("Dear Mr. Smith, thank you.", "name", "Smith"),
        ("Hallo Frau Müller-Lüdenscheidt,", "name", "Müller-Lüdenscheidt"),
        ("Good morning Anna Schmidt, welcome back.", "name", "Anna Schmidt"),
        ("I spoke to Herr Weber yesterday.", "name", "Weber"),
        ("All done.\nThanks, Tom", "name", "Tom"),
        ("All done.\nKind regards,\nAnna Schmidt", "name", "Anna Schmidt"),
        ("Cheers, O'Neil!", "name", "O'Neil"),
        ("Dear Ms McDonald,", "name", "McDonald"),
    ],
)
def test_each_kind_is_found(text: str, kind: str, value: str) -> None:
    assert (kind, value) in _found(text)


@pytest.mark.parametrize(
    "text",
    [
        "The jacket costs €12.99, or 1.299,00 EUR for the set.",
        "It is back in stock on 12.03.2026, or 2026-03-12 in ISO.",
        "We are open 10:00-18:00, Saturday 09:00 - 14:00.",
        "The pack holds 2 x 500 g; we have 1,250 units and 20000 in the warehouse.",
        "Track it at https://track.example.com/parcel/00340434161094042557 today.",
        "See www.example.com/orders/123456789 for the conditions.",
        "Delivery takes 2-3 days in 98.5% of cases; version 2.14.3 fixes it.",
        "Article number 4006381333931 is the 2 x 500 g pack.",
        "Card 4111 1111 1111 1112 fails Luhn.",
        "IBAN DE89 3704 0044 0532 0130 01 fails mod-97.",
        "Hello,\nReturns are free within 30 days.",
        "Hi there, thanks for waiting.",
        "Dear Customer, thanks for your patience.",
        "Best wishes,\nThe Northwind team",
        "Thanks for your order, it ships Monday.",
        "The size chart lists 38, 40 and 42; sizes 0 to 12.",
        "Order 12 pieces to get the discount; #1 seller.",
        "Our street team visits Berlin in May.",
        "I spoke to anna yesterday.",
    ],
)
def test_look_alikes_are_not_flagged(text: str) -> None:
    assert _found(text) == []


def test_a_known_profile_name_is_flagged_wherever_it_occurs() -> None:
    text = "I told anna schmidt that Anna would hear from Schmidt & Co. Annabel is someone else."
    assert _found(text, known_names=["Anna Schmidt"]) == [
        ("name", "anna schmidt"),
        ("name", "Anna"),
        ("name", "Schmidt"),
    ]


def test_a_name_from_the_greeting_is_flagged_again_later() -> None:
    text = "Dear Mrs Evans,\nas agreed, Jonas Evans will collect it."
    assert _found(text) == [("name", "Evans"), ("name", "Evans")]


def test_findings_are_in_text_order_with_spans_into_the_text() -> None:
    text = "Hi Anna, order #48213 goes to anna@example.com, phone +44 20 7946 0958."
    findings = find_personal_data(text)
    assert [f.kind for f in findings] == ["name", "order", "email", "phone"]
    assert all(text[f.start : f.end] == f.text for f in findings)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The e-mail's digits are no order or phone; the order keyword is no name.
        ("Mail 0301234567@example.com", [("email", "0301234567@example.com")]),
        # An IBAN is one finding, not a phone inside it.
        ("IBAN DE89 3704 0044 0532 0130 00", [("payment", "DE89 3704 0044 0532 0130 00")]),
        # A street ending in "Dr." is an address, not the title of a name.
        ("to 12 Oak Dr. Springfield", [("address", "12 Oak Dr.")]),
        # "#48213" and "order #48213" overlap: one finding.
        ("order #48213", [("order", "#48213")]),
    ],
)
def test_overlapping_candidates_give_one_finding(
    text: str, expected: list[tuple[str, str]]
) -> None:
    assert _found(text) == expected


def test_redacted_replaces_each_finding_with_its_kind() -> None:
    text = "Hi Anna,\nyour order #48213 goes to Hauptstraße 5, 10115 Berlin.\nThanks, Tom"
    assert redacted(text, find_personal_data(text)) == (
        "Hi [name],\nyour order [order] goes to [address].\nThanks, [name]"
    )


def test_redacted_keeps_the_first_of_overlapping_findings() -> None:
    text = "abcdef"
    findings = [Finding("name", 3, 6, "def"), Finding("email", 0, 4, "abcd")]
    assert redacted(text, findings) == "[email]ef"
    assert redacted(text, []) == text


def test_order_patterns_are_configurable() -> None:
    settings = PersonalDataSettings(order_patterns=(r"\bA(?P<id>\d{6})\b",))
    assert _found("Case A123456 and #48213", settings=settings) == [("order", "123456")]


def test_an_invalid_order_pattern_names_itself() -> None:
    settings = PersonalDataSettings(order_patterns=("(unclosed",))
    with pytest.raises(ValueError, match=r"'\(unclosed'.*order_patterns"):
        find_personal_data("x", settings=settings)


@pytest.mark.parametrize(
    ("number", "valid"),
    [("4111111111111111", True), ("4111111111111112", False), ("79927398713", True)],
)
def test_luhn(number: str, valid: bool) -> None:
    assert luhn_valid(number) is valid


@pytest.mark.parametrize(
    ("iban", "valid"),
    [
        ("DE89 3704 0044 0532 0130 00", True),
        ("GB82 WEST 1234 5698 7654 32", True),
        ("GB82 WEST 1234 5698 7654 33", False),
        ("DE89", False),
    ],
)
def test_iban(iban: str, valid: bool) -> None:
    assert iban_valid(iban) is valid
