"""The personal-data guard on public replies (carebot/public/guard.py): each kind and each
unsure rule refused, ordinary brand replies passed, the agent's message masked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carebot.public.guard import GUARDED, UNSURE, Refusal, check_public_text

SEEDED_SET = Path(__file__).resolve().parent.parent / "bench" / "public_guard_set.jsonl"


def _refused(text: str, **kwargs: object) -> Refusal:
    refusal = check_public_text(text, **kwargs)  # type: ignore[arg-type]
    assert refusal is not None, text
    return refusal


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("We've sent the voucher to jane.doe@gmail.com!", "email"),
        ("We'll call you back on +44 7700 900 123 today.", "phone"),
        ("Our courier will ring 0171 2345678 first.", "phone"),
        ("Order #48213 left our warehouse this morning.", "order"),
        ("We've checked order NW-2026-00123 for you.", "order"),
        ("Refunded to 4242-4242-4242-4242 just now.", "payment"),
        ("Sent to IBAN DE89 3704 0044 0532 0130 00 today.", "payment"),
        ("We'll reship to Hauptstraße 5, 10115 Berlin.", "address"),
        ("It is waiting at 221B Baker Street, London NW1 6XE.", "address"),
    ],
)
def test_each_guarded_kind_is_refused(text: str, kind: str) -> None:
    refusal = _refused(text)
    assert [f.kind for f in refusal.findings] == [kind]
    assert refusal.unsure == ()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("We'll call you at 7700 900 789 after lunch.", "digits"),
        ("The invoice for purchase 2026/118834 is attached.", "digits"),
        ("Your return for order ref 88231907 is approved.", "id"),
        ("We found the parcel for AB12345678 at the depot.", "id"),
        ("Order #A1B2C3D4E5 was cancelled as you asked.", "id"),
        ("We can see jane dot doe at gmail dot com on the booking.", "spelled-email"),
        ("The invoice went to anna(at)posteo.de.", "spelled-email"),
        ("Our team wrote to chris @ hotmail.com yesterday.", "spelled-email"),
        ("We've sent it to jane.doe@gmail as asked.", "spelled-email"),
        ("Your address is Rue de Rivoli, Paris, we've updated it.", "address-phrase"),
        ("Deine Adresse lautet Gartenweg, stimmt das?", "address-phrase"),
        ("The courier left it at 14 elm grove yesterday.", "street"),
        ("Wir liefern an Am Markt 3 morgen.", "street"),
        ("Ship it to PO Box 4471 instead?", "street"),
        ("Wir haben die Lieferung nach 80331 München umgeleitet.", "postcode"),
        ("Die Erstattung geht an de89 3704 0044 0532 0130 00.", "iban"),
        ("Thanks! We've refunded the card ending 4242.", "card"),
        ("We can see the last four digits on the payment.", "card"),
        ("Your Visa •••• •••• •••• 4242 has been refunded.", "card"),
        ("Please never post the CVV here.", "card"),
        ("Reset it at https://example.com/reset?token=abc123", "link"),
        ("See https://example.com/login?email=lisa%40example.com", "link"),
        ("Track it: https://shop.example.com/orders/884213", "link"),
        ("We left a voicemail on zero seven seven zero zero nine.", "spoken-number"),
    ],
)
def test_each_unsure_rule_refuses(text: str, reason: str) -> None:
    refusal = _refused(text)
    assert refusal.findings == ()
    assert reason in refusal.unsure
    assert UNSURE[reason] in refusal.message
    assert "when unsure, carebot does not post" in refusal.message


@pytest.mark.parametrize(
    "text",
    [
        "Thanks for the love! The hoodie is back in stock at €12.99.",
        "Der Artikel kostet 1.299,00 EUR, ab dem 12.04.2026 wieder da.",
        "Our stores are open Mon-Sat 9:00-20:00 and Sunday 10:00-16:00.",
        "The winter collection drops on 2026-11-01 at 18:00.",
        "Season tickets 2025/2026 and the 2026/27 catalogue are out now.",
        "The order # is on your confirmation e-mail; please DM it to us.",
        "Version 4.2.1 of the app fixes it; the firmware 2.0.14 too.",
        "It holds 1,250 ml and fits the 40 x 30 x 20 cm compartment.",
        "Happy birthday to us! 10,000 thanks to our 250,000 followers.",
        "The WH-1000XM5 is compatible; use code SPRING25 for 25% off.",
        "See https://www.example.com/size-guide or https://example.com/terms?lang=en",
        "The starter kit (SKU 100245) is €19.95.",
        "Thanks @markus_b, glad you like it!",
        "Our shop on Main Street is open till 6pm.",
        "Our Berlin store has moved, check the store finder.",
        "Please check your address is correct in your account.",
        "Make sure your delivery address: still up to date?",
        "Bitte prüf, ob deine Adresse noch stimmt.",
    ],
)
def test_ordinary_brand_replies_pass(text: str) -> None:
    assert check_public_text(text) is None


@pytest.mark.parametrize(
    ("text", "known_names"),
    [
        ("Hi Anna, thanks for the kind words!", ()),
        ("Dear Mr. Smith, we're sorry, we've sent you a DM.", ()),
        ("Thanks so much, anna schmidt, see you soon!", ("Anna Schmidt",)),
        ("Vielen Dank, Frau Müller!\nViele Grüße, Tom", ()),
    ],
)
def test_names_are_not_refused(text: str, known_names: tuple[str, ...]) -> None:
    assert check_public_text(text, known_names=known_names) is None


def test_the_message_names_what_was_found_in_masked_form() -> None:
    refusal = _refused("Hi Anna, order #48213 went to anna.schmidt@example.com.")
    assert refusal.message == (
        "Not posted in public. The reply contains an order number (#48…) and an e-mail "
        "address (an…@…com). Reply privately instead, or remove it."
    )


def test_the_brands_own_phone_number_is_refused_too() -> None:
    refusal = _refused("Give our hotline a call on 0800 123 4567!")
    assert [f.kind for f in refusal.findings] == ["phone"]
    assert "even when they are the brand's own" in refusal.message


def test_findings_and_unsure_reasons_are_both_explained() -> None:
    refusal = _refused("Card 4242 4242 4242 4242 refunded; we found AB12345678 too.")
    assert [f.kind for f in refusal.findings] == ["payment"]
    assert refusal.unsure == ("id",)
    assert "a card number (424…)" in refusal.message
    assert "It also looks like it may contain an order, customer or account id" in (refusal.message)


def test_a_lower_case_iban_is_reported_as_an_iban_not_a_phone() -> None:
    refusal = _refused("Die Erstattung geht an de89 3704 0044 0532 0130 00.")
    assert refusal.findings == ()
    assert refusal.unsure == ("iban",)


def test_order_patterns_come_from_the_brand() -> None:
    patterns = (r"\bA(?P<id>\d{6})\b",)
    refusal = _refused("Case A123456 is closed.", order_patterns=patterns)
    assert [(f.kind, f.text) for f in refusal.findings] == [("order", "123456")]
    # "#4821" is no order number in this brand's patterns, and too short to be unsure about.
    assert check_public_text("We're #4821 in the ranking!", order_patterns=patterns) is None


def test_an_invalid_order_pattern_names_itself() -> None:
    with pytest.raises(ValueError, match=r"'\(unclosed'"):
        check_public_text("x", order_patterns=("(unclosed",))


def test_guarded_kinds() -> None:
    assert GUARDED == ("email", "phone", "order", "payment", "address")


def _seeded_rows() -> list[dict[str, str]]:
    lines = SEEDED_SET.read_text(encoding="utf-8").splitlines()
    return [row for row in map(json.loads, filter(None, lines)) if row["kind"] != "clean"]


def test_no_message_on_the_seeded_set_quotes_a_whole_value() -> None:
    for row in _seeded_rows():
        refusal = _refused(row["text"])
        for finding in refusal.findings:
            assert finding.text not in refusal.message, row["text"]
        assert refusal.message.endswith("Reply privately instead, or remove it.")
